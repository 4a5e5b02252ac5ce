#!/usr/bin/env python3
"""Builds kerlm/data/uci_sentiment/sentences.jsonl.gz from the UCI sentiment JSONL.

Run once; the split is recorded in the output file and never recomputed at run
time:

    python3 tools/make_uci_sentiment_split.py \\
        ../shared/data/sentiment/uci_sentiment_labelled.jsonl

Input: JSONL rows {"text", "label", "domain"} (UCI "Sentiment Labelled
Sentences", Kotzias et al., KDD 2015, CC BY 4.0).

Steps:
  1. Drop rows whose text is empty or whitespace only.
  2. Remove exact duplicate texts: keep the first occurrence; if the copies of
     a text disagree on the label, drop the text entirely.
  3. id = "uci-NNNN", NNNN the 1-based line number in the input file (stable:
     it does not shift if the cleaning rules change).
  4. Split 80/10/10 train/dev/test with random.Random(SEED), stratified by
     (label, domain): groups in sorted order, each group shuffled in id order,
     test = first round(10%), dev = next round(10%), train = the rest.
  5. Write one JSON object per line {"id","text","label","domain","split"} in
     input order, gzip with mtime=0 and no file name (byte-identical reruns).

Everything removed is printed, followed by a Markdown table of the counts.
"""

from __future__ import annotations

import argparse
import collections
import gzip
import json
import os
import random
import sys

SEED = 13
FRACTIONS = {"dev": 0.1, "test": 0.1}  # train gets the rest
SPLITS = ("train", "dev", "test")
LABELS = ("negative", "positive")
DOMAINS = ("amazon", "imdb", "yelp")
DEFAULT_OUTPUT = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    "kerlm", "data", "uci_sentiment", "sentences.jsonl.gz",
)


def read_source(path):
    """Rows of the input as dicts with "line" added; exits on anything unexpected."""
    rows = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            row = json.loads(line)
            for key, allowed in (("label", LABELS), ("domain", DOMAINS)):
                if row.get(key) not in allowed:
                    sys.exit(f"{path}:{number}: {key} {row.get(key)!r} not in {allowed}")
            if not isinstance(row.get("text"), str):
                sys.exit(f"{path}:{number}: text is not a string")
            rows.append({"line": number, "text": row["text"], "label": row["label"],
                         "domain": row["domain"]})
    return rows


def clean(rows, log=print):
    """Drops empty texts and exact duplicates (see module docstring); returns kept rows."""
    kept = []
    for row in rows:
        if not row["text"].strip():
            log(f"removed line {row['line']}: empty text ({row['label']}, {row['domain']})")
        else:
            kept.append(row)
    by_text = collections.defaultdict(list)
    for row in kept:
        by_text[row["text"]].append(row)
    result = []
    for row in kept:
        copies = by_text[row["text"]]
        if len(copies) == 1:
            result.append(row)
            continue
        where = ", ".join(f"line {c['line']} ({c['label']}, {c['domain']})" for c in copies)
        if len({c["label"] for c in copies}) > 1:
            if row is copies[0]:
                log(f"removed conflicting labels {row['text']!r}: {where}")
            continue
        if row is copies[0]:
            result.append(row)
            log(f"removed duplicate {row['text']!r}: kept line {row['line']}; copies at {where}")
    return result


def split(rows, seed=SEED):
    """Sets row["split"] for every row, stratified by (label, domain)."""
    rng = random.Random(seed)
    groups = collections.defaultdict(list)
    for row in rows:
        groups[(row["label"], row["domain"])].append(row)
    for key in sorted(groups):
        group = sorted(groups[key], key=lambda r: r["line"])
        rng.shuffle(group)
        n_test = round(len(group) * FRACTIONS["test"])
        n_dev = round(len(group) * FRACTIONS["dev"])
        for i, row in enumerate(group):
            row["split"] = "test" if i < n_test else "dev" if i < n_test + n_dev else "train"
    return rows


def write(rows, path):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    lines = []
    for row in sorted(rows, key=lambda r: r["line"]):
        obj = {"id": f"uci-{row['line']:04d}", "text": row["text"], "label": row["label"],
               "domain": row["domain"], "split": row["split"]}
        lines.append(json.dumps(obj, ensure_ascii=False) + "\n")
    data = "".join(lines).encode("utf-8")
    with open(path, "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=0) as f:
            f.write(data)


def counts_table(rows):
    """Markdown table: one row per split, columns label/domain, with totals."""
    count = collections.Counter((r["split"], r["label"], r["domain"]) for r in rows)
    cols = [(l, d) for l in LABELS for d in DOMAINS]
    out = ["| split | " + " | ".join(f"{l[:3]} {d}" for l, d in cols) + " | negative | positive | total |",
           "|---" * (len(cols) + 4) + "|"]
    for s in SPLITS + ("all",):
        def n(label=None, domain=None):
            return sum(v for (sp, l, d), v in count.items()
                       if (s == "all" or sp == s) and label in (None, l) and domain in (None, d))
        cells = [str(n(l, d)) for l, d in cols] + [str(n("negative")), str(n("positive")), str(n())]
        out.append(f"| {s} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", help="uci_sentiment_labelled.jsonl")
    parser.add_argument("--output", default=DEFAULT_OUTPUT, help="default: %(default)s")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    rows = read_source(args.source)
    print(f"read {len(rows)} rows from {args.source}")
    rows = split(clean(rows), seed=args.seed)
    write(rows, args.output)
    print(f"wrote {len(rows)} rows to {args.output}")
    print(counts_table(rows))


if __name__ == "__main__":
    main()
