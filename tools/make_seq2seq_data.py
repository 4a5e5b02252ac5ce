#!/usr/bin/env python3
"""Builds the three embedded seq2seq data sets under kerlm/data/ from ../shared/data.

Run once; the splits are recorded in the output files and never recomputed at
run time:

    python3 tools/make_seq2seq_data.py            # all three
    python3 tools/make_seq2seq_data.py --only bible_en_es

Outputs (JSONL, gzip with mtime=0 and no file name, so reruns are byte-identical):

* kerlm/data/bible_en_es/verses.jsonl.gz -- from translation/bible_en_es.jsonl.gz
  (World English Bible 2015 / Reina-Valera 1909, public domain). Rows
  {"id", "ref", "en", "es", "split"}. Text stripped; pairs with an empty side
  dropped. Split BY BOOK (the book is ``ref`` without its trailing
  `` chapter:verse``), never at random: parallel passages are near-duplicates,
  so the held-out books are ones without parallels elsewhere (no gospels,
  Samuel/Kings/Chronicles, Ephesians/Colossians, 2 Peter/Jude, Psalms).
  See TEST_BOOKS and DEV_BOOKS. Then the few dev/test verses that still
  repeat a train verse are dropped: same en or es text, or at least half of
  the English word 4-grams shared with one train verse (stock greetings and
  blessings, Mic 4:2 ~ Isa 2:3); they are listed in the output.
* kerlm/data/debian_en_de/descriptions.jsonl.gz -- from translation/ddtp_en_de.jsonl.gz
  (Debian package descriptions and their DDTP German translations). Rows
  {"id", "en", "de", "split"}. Each text: every line stripped with its runs
  of spaces collapsed, lines joined with one "\\n" (bullet lists stay one item
  a line), the whole stripped. Pairs with an empty side, English over 400
  words, or an exact copy of an earlier (en, de) pair dropped. Split ~90/5/5
  by md5 of a GROUP: the connected component (union-find) over two keys per
  pair, the English first line and the German first line, each lower-cased
  with digits removed, so texts shared by several packages (and their
  versioned variants, and English variants with one German translation) land
  in one split.
* kerlm/data/debian_summaries/descriptions.jsonl.gz -- from
  summarization/debian_descriptions.jsonl.gz (Debian long descriptions ->
  synopses). Rows {"id", "package", "document", "summary", "split"}. Document:
  every line stripped, the lines of a paragraph joined with " " (runs of
  spaces collapsed), paragraphs (blank lines) separated by one "\\n". Rows with
  an empty document or summary, or a document over 300 words, dropped. Split
  ~90/5/5 by md5 of a GROUP: the connected component (union-find) over three
  keys per record, the source package key (package name with common
  prefixes/suffixes/version digits stripped, see package_key), the document's
  first sentence lower-cased and the summary lower-cased, so related binary
  packages, shared boilerplate and shared synopses never cross splits.

ids are PREFIX-NNNNN with NNNNN the 1-based line number in the source file
(stable: they do not shift if a cleaning rule changes). Group assignment:
int(md5(key).hexdigest(), 16) % 100 -> < 5 test, < 10 dev, else train, with
key the group's smallest member key (so it does not depend on row order).

Everything removed is counted and printed, followed by per-split counts.
"""

from __future__ import annotations

import argparse
import collections
import gzip
import hashlib
import json
import os
import re
import sys

SPLITS = ("train", "dev", "test")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_DATA = os.path.join(os.path.dirname(REPO), "shared", "data")
DEFAULT_OUT = os.path.join(REPO, "kerlm", "data")

# Book codes as in the source's "ref" field (the source has no Ruth and no Acts).
TEST_BOOKS = ("Esth", "Eccl", "Song", "Jonah", "Mic", "Gal", "1John", "2John", "3John")
DEV_BOOKS = ("Lam", "Joel", "Nah", "Phil", "Titus")

DDTP_MAX_EN_WORDS = 400
SUMMARY_MAX_DOC_WORDS = 300
TEST_PERCENT, DEV_PERCENT = 5, 5  # of md5 buckets 0..99; train gets the rest


# ---------------------------------------------------------------------------
# Shared helpers


def read_jsonl_gz(path):
    """(1-based line number, object) for each non-blank line of a .jsonl.gz file."""
    rows = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if line.strip():
                rows.append((number, json.loads(line)))
    return rows


def bucket_split(key):
    """"train", "dev" or "test" from md5(key) (stable across runs and Python versions)."""
    bucket = int(hashlib.md5(key.encode("utf-8")).hexdigest(), 16) % 100
    if bucket < TEST_PERCENT:
        return "test"
    if bucket < TEST_PERCENT + DEV_PERCENT:
        return "dev"
    return "train"


def write_jsonl_gz(objs, path):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    data = "".join(json.dumps(o, ensure_ascii=False) + "\n" for o in objs).encode("utf-8")
    with open(path, "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=0) as f:
            f.write(data)
    print(f"wrote {len(objs)} rows to {path} ({os.path.getsize(path):,} bytes)")


def split_table(rows, group_of=None):
    """Markdown table of records (and groups, if group_of is given) per split."""
    head = "| split | records |" + (" groups |" if group_of else "")
    out = [head, "|---|---|" + ("---|" if group_of else "")]
    for s in SPLITS + ("all",):
        sel = [r for r in rows if s == "all" or r["split"] == s]
        line = f"| {s} | {len(sel)} |"
        if group_of:
            line += f" {len({group_of(r) for r in sel})} |"
        out.append(line)
    return "\n".join(out)


def report_groups(rows):
    sizes = collections.Counter(r["group"] for r in rows)
    largest = ", ".join(f"{g[:60]!r} {n}" for g, n in sizes.most_common(5))
    print(f"{len(sizes)} groups; largest: {largest}")


def cross_split_duplicates(rows, field):
    """Number of distinct `field` texts that occur in more than one split."""
    splits = collections.defaultdict(set)
    for r in rows:
        splits[r[field]].add(r["split"])
    return sum(1 for s in splits.values() if len(s) > 1)


# ---------------------------------------------------------------------------
# Bible en-es


def book_of(ref):
    """"1John 4:2" -> "1John"."""
    return ref.rsplit(" ", 1)[0]


def word_4grams(text):
    words = re.findall(r"\w+", text.lower())
    return {tuple(words[i:i + 4]) for i in range(len(words) - 3)}


def drop_held_out_repeats(rows, min_shared=0.5):
    """Drops dev/test verses whose en or es text occurs in train, or whose English
    shares at least `min_shared` of its word 4-grams with a single train verse."""
    train = [r for r in rows if r["split"] == "train"]
    texts = {(f, r[f]) for r in train for f in ("en", "es")}
    index = collections.defaultdict(list)
    for i, r in enumerate(train):
        for gram in word_4grams(r["en"]):
            index[gram].append(i)
    kept = []
    for r in rows:
        if r["split"] != "train":
            if ("en", r["en"]) in texts or ("es", r["es"]) in texts:
                print(f"dropped {r['ref']} ({r['split']}): same text in train: {r['en']!r}")
                continue
            grams = word_4grams(r["en"])
            shared = collections.Counter(i for g in grams for i in index.get(g, ()))
            if shared:
                i, n = shared.most_common(1)[0]
                if n >= min_shared * len(grams):
                    print(f"dropped {r['ref']} ({r['split']}): {n}/{len(grams)} English 4-grams "
                          f"shared with {train[i]['ref']}: {r['en']!r}")
                    continue
        kept.append(r)
    return kept


def make_bible(source, output):
    rows = []
    dropped = 0
    for number, obj in read_jsonl_gz(source):
        en, es = obj["en"].strip(), obj["es"].strip()
        if not en or not es:
            dropped += 1
            continue
        rows.append({"id": f"bible-{number:05d}", "ref": obj["ref"].strip(), "en": en, "es": es})
    print(f"bible_en_es: read {len(rows) + dropped} rows from {source}; "
          f"dropped {dropped} with an empty side")
    books = collections.Counter(book_of(r["ref"]) for r in rows)
    print("verses per book: " + ", ".join(f"{b} {n}" for b, n in books.items()))
    missing = [b for b in TEST_BOOKS + DEV_BOOKS if b not in books]
    if missing:
        sys.exit(f"book codes not in the source: {missing}")
    for r in rows:
        book = book_of(r["ref"])
        r["split"] = "test" if book in TEST_BOOKS else "dev" if book in DEV_BOOKS else "train"
    for s, chosen in (("test", TEST_BOOKS), ("dev", DEV_BOOKS)):
        print(f"{s} books: " + ", ".join(f"{b} ({books[b]})" for b in chosen))
    rows = drop_held_out_repeats(rows)
    for field in ("en", "es"):
        n = cross_split_duplicates(rows, field)
        print(f"distinct {field} texts in more than one split: {n}")
    write_jsonl_gz([{k: r[k] for k in ("id", "ref", "en", "es", "split")} for r in rows], output)
    print(split_table(rows, group_of=lambda r: book_of(r["ref"])).replace("groups", "books"))
    return rows


# ---------------------------------------------------------------------------
# DDTP en-de


def normalize_lines(text):
    """Lines stripped, runs of spaces collapsed, joined with "\\n"; the whole stripped."""
    return "\n".join(" ".join(line.split()) for line in text.split("\n")).strip()


def first_line_key(text):
    """The first line, lower-cased, digits removed, runs of spaces collapsed."""
    return " ".join(re.sub(r"\d", "", text.split("\n", 1)[0].lower()).split())


def make_ddtp(source, output):
    rows, seen = [], set()
    drops = collections.Counter()
    source_rows = read_jsonl_gz(source)
    for number, obj in source_rows:
        en, de = normalize_lines(obj["en"]), normalize_lines(obj["de"])
        if not en or not de:
            drops["empty side"] += 1
        elif len(en.split()) > DDTP_MAX_EN_WORDS:
            drops[f"English over {DDTP_MAX_EN_WORDS} words"] += 1
        elif (en, de) in seen:
            drops["exact duplicate pair"] += 1
        else:
            seen.add((en, de))
            rows.append({"id": f"ddtp-{number:05d}", "en": en, "de": de})
    print(f"debian_en_de: read {len(source_rows)} rows from {source}; dropped {dict(drops)}")
    groups = UnionFind()
    for r in rows:
        groups.union("en:" + first_line_key(r["en"]), "de:" + first_line_key(r["de"]))
    for r in rows:
        r["group"] = groups.find("en:" + first_line_key(r["en"]))
        r["split"] = bucket_split(r["group"])
    report_groups(rows)
    for field in ("en", "de"):
        n = cross_split_duplicates(rows, field)
        print(f"distinct {field} texts in more than one split: {n}")
    write_jsonl_gz([{k: r[k] for k in ("id", "en", "de", "split")} for r in rows], output)
    print(split_table(rows, group_of=lambda r: r["group"]))
    return rows


# ---------------------------------------------------------------------------
# Debian summaries

PACKAGE_PREFIXES = ("python3-", "python-", "r-cran-", "r-bioc-", "golang-", "node-", "ruby-",
                    "php-", "texlive-", "fonts-", "gir1.2-", "lib", "ghc-", "rust-")
PACKAGE_SUFFIXES = ("-dev", "-doc", "-dbg", "-dbgsym", "-common", "-data", "-utils", "-tools",
                    "-bin", "-examples", "-perl", "-java", "-plugins", "-plugin", "-prof", "-cil")
_VERSION_TAIL = re.compile(r"[-.]?\d+(?:\.\d+)*[a-z]?$")


def package_key(package):
    """Source-package-like key: common prefixes, suffixes and version digits stripped, repeatedly.

    >>> [package_key(p) for p in ("libgtk-3-0", "libgtk-3-dev", "gir1.2-gtk-3.0", "libfoo-perl",
    ...                           "python3-numpy-doc", "libboost1.83-dev", "libqt5core5a")]
    ['gtk', 'gtk', 'gtk', 'foo', 'numpy', 'boost', 'qt5core']
    """
    key = package.lower()
    while True:
        before = key
        for prefix in PACKAGE_PREFIXES:
            if key.startswith(prefix) and len(key) > len(prefix):
                key = key[len(prefix):]
                break
        for suffix in PACKAGE_SUFFIXES:
            if key.endswith(suffix) and len(key) > len(suffix):
                key = key[: -len(suffix)]
                break
        key = _VERSION_TAIL.sub("", key) or key
        if key == before:
            return key


def normalize_paragraphs(text):
    """Lines stripped; a paragraph's lines joined with " "; paragraphs separated by one "\\n"."""
    paragraphs, current = [], []
    for line in text.split("\n"):
        line = " ".join(line.split())
        if line:
            current.append(line)
        elif current:
            paragraphs.append(" ".join(current))
            current = []
    if current:
        paragraphs.append(" ".join(current))
    return "\n".join(paragraphs)


def first_sentence(document):
    """The first paragraph's text up to the first . ! or ? followed by a space, lower-cased."""
    paragraph = document.split("\n", 1)[0]
    match = re.match(r"(.+?[.!?])(?:\s|$)", paragraph)
    return (match.group(1) if match else paragraph).lower()


class UnionFind:
    def __init__(self):
        self.parent = {}

    def find(self, x):
        root = x
        while self.parent.setdefault(root, root) != root:
            root = self.parent[root]
        while self.parent[x] != root:  # path compression
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, a, b):
        a, b = self.find(a), self.find(b)
        if a != b:  # the smaller key is the root, so a group's name is its smallest key
            self.parent[max(a, b)] = min(a, b)


def make_summaries(source, output):
    rows = []
    drops = collections.Counter()
    source_rows = read_jsonl_gz(source)
    for number, obj in source_rows:
        package = obj["package"].strip()
        document = normalize_paragraphs(obj["document"])
        summary = " ".join(obj["summary"].split())
        if not document or not summary or not package:
            drops["empty field"] += 1
        elif len(document.split()) > SUMMARY_MAX_DOC_WORDS:
            drops[f"document over {SUMMARY_MAX_DOC_WORDS} words"] += 1
        else:
            rows.append({"id": f"debsum-{number:05d}", "package": package, "document": document,
                         "summary": summary})
    print(f"debian_summaries: read {len(source_rows)} rows from {source}; dropped {dict(drops)}")
    groups = UnionFind()
    for r in rows:
        package = "package:" + package_key(r["package"])
        groups.union(package, "sentence:" + first_sentence(r["document"]))
        groups.union(package, "summary:" + r["summary"].lower())
    for r in rows:
        r["group"] = groups.find("package:" + package_key(r["package"]))
        r["split"] = bucket_split(r["group"])
    report_groups(rows)
    for field in ("document", "summary"):
        n = cross_split_duplicates(rows, field)
        print(f"distinct {field} texts in more than one split: {n}")
    fields = ("id", "package", "document", "summary", "split")
    write_jsonl_gz([{k: r[k] for k in fields} for r in rows], output)
    print(split_table(rows, group_of=lambda r: r["group"]))
    return rows


# ---------------------------------------------------------------------------

BUILDERS = {
    "bible_en_es": (make_bible, "translation/bible_en_es.jsonl.gz", "bible_en_es/verses.jsonl.gz"),
    "debian_en_de": (make_ddtp, "translation/ddtp_en_de.jsonl.gz",
                     "debian_en_de/descriptions.jsonl.gz"),
    "debian_summaries": (make_summaries, "summarization/debian_descriptions.jsonl.gz",
                         "debian_summaries/descriptions.jsonl.gz"),
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=DEFAULT_DATA,
                        help="the shared data folder (default: %(default)s)")
    parser.add_argument("--out", default=DEFAULT_OUT, help="kerlm/data (default: %(default)s)")
    parser.add_argument("--only", choices=sorted(BUILDERS), action="append",
                        help="build only this set (repeatable); default: all")
    args = parser.parse_args(argv)
    for name in args.only or BUILDERS:
        build, source, output = BUILDERS[name]
        print(f"== {name}")
        build(os.path.join(args.data, source), os.path.join(args.out, output))
        print()


if __name__ == "__main__":
    main()
