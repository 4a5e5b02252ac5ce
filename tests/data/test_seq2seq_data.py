"""The embedded seq2seq data sets: sizes, clean fields, and splits that do not leak."""

import collections
import os
import re

import pytest

from kerlm.data import bible_en_es, debian_en_de, debian_summaries, embedded

SPLITS = ("train", "dev", "test")


@pytest.fixture(scope="module")
def bible():
    return bible_en_es.load()


@pytest.fixture(scope="module")
def ddtp():
    return debian_en_de.load()


@pytest.fixture(scope="module")
def summaries():
    return debian_summaries.load()


def by_split(records):
    out = collections.defaultdict(list)
    for r in records:
        out[r.fields["split"]].append(r)
    return out


def splits_of(records, key):
    """{key(record): set of splits it occurs in}."""
    seen = collections.defaultdict(set)
    for r in records:
        seen[key(r)].add(r.fields["split"])
    return seen


def crossing(records, key):
    """Keys that occur in more than one split (a leak), sorted, first 5."""
    return sorted(k for k, s in splits_of(records, key).items() if len(s) > 1)[:5]


def check_fields(records, module):
    assert records, module.__name__
    for r in records:
        assert tuple(r.fields) == module.FIELDS, r.where()
        for name in module.FIELDS:
            value = r.fields[name]
            assert isinstance(value, str) and value.strip(), f"{r.where()}: {name} empty"
            assert value == value.strip(), f"{r.where()}: {name} not stripped"
        assert r.fields["split"] in SPLITS, r.where()
    ids = [r.fields["id"] for r in records]
    assert len(set(ids)) == len(ids), "ids not unique"


# ---------------------------------------------------------------------------
# Bible en-es


def test_bible_sizes_and_fields(bible):
    check_fields(bible, bible_en_es)
    sizes = {s: len(rows) for s, rows in by_split(bible).items()}
    assert 800 <= sizes["test"] <= 1000, sizes
    assert 400 <= sizes["dev"] <= 600, sizes
    assert sizes["train"] > 27000, sizes
    assert all(r.fields["id"].startswith("bible-") for r in bible)


def test_bible_split_by_book(bible):
    books = splits_of(bible, lambda r: bible_en_es.book_of(r.fields["ref"]))
    assert not [b for b, s in books.items() if len(s) > 1], "a book in two splits"
    assert {b for b, s in books.items() if s == {"test"}} == set(bible_en_es.TEST_BOOKS)
    assert {b for b, s in books.items() if s == {"dev"}} == set(bible_en_es.DEV_BOOKS)
    # Books with parallel passages elsewhere stay in train.
    for book in ("Matt", "Mark", "Luke", "John", "1Kgs", "2Chr", "1Sam", "Ps", "Eph", "Col",
                 "2Pet", "Jude", "Isa"):
        assert books[book] == {"train"}, book
    assert all(re.fullmatch(r"\S+ \d+:\d+", r.fields["ref"]) for r in bible)


def test_bible_no_text_in_two_splits(bible):
    assert crossing(bible, lambda r: r.fields["en"]) == []
    assert crossing(bible, lambda r: r.fields["es"]) == []


# ---------------------------------------------------------------------------
# DDTP en-de


def test_ddtp_sizes_and_fields(ddtp):
    check_fields(ddtp, debian_en_de)
    sizes = {s: len(rows) for s, rows in by_split(ddtp).items()}
    total = len(ddtp)
    assert total > 30000
    for s in ("dev", "test"):
        assert 0.03 * total <= sizes[s] <= 0.07 * total, sizes
    assert all(len(r.fields["en"].split()) <= 400 for r in ddtp)


def test_ddtp_text_normalized(ddtp):
    multiline = 0
    for r in ddtp:
        for lang in ("en", "de"):
            lines = r.fields[lang].split("\n")
            assert all(line == " ".join(line.split()) for line in lines), r.where()
        multiline += "\n" in r.fields["en"]
    assert multiline > 500  # bullet lists keep one item a line


def test_ddtp_no_text_in_two_splits(ddtp):
    assert crossing(ddtp, lambda r: r.fields["en"]) == []
    assert crossing(ddtp, lambda r: r.fields["de"]) == []
    # The group key: first English line, lower-cased, without digits.
    first_line = lambda r: re.sub(r"\d", "", r.fields["en"].split("\n")[0].lower())  # noqa: E731
    assert crossing(ddtp, first_line) == []


# ---------------------------------------------------------------------------
# Debian summaries


def simple_package_key(package):
    """A weaker, independent version of the tool's source-package key."""
    key = package.lower()
    if key.startswith("lib"):
        key = key[3:]
    for suffix in ("-dev", "-doc"):
        if key.endswith(suffix):
            key = key[: -len(suffix)]
    return key


def test_summaries_sizes_and_fields(summaries):
    check_fields(summaries, debian_summaries)
    sizes = {s: len(rows) for s, rows in by_split(summaries).items()}
    total = len(summaries)
    assert total > 55000
    for s in ("dev", "test"):
        assert 0.03 * total <= sizes[s] <= 0.07 * total, sizes
    for r in summaries:
        document = r.fields["document"]
        assert len(document.split()) <= 300, r.where()
        assert "\n\n" not in document and "  " not in document, r.where()
        assert "\n" not in r.fields["summary"], r.where()


def test_summaries_no_leak_across_splits(summaries):
    assert crossing(summaries, lambda r: r.fields["document"]) == []
    assert crossing(summaries, lambda r: r.fields["summary"].lower()) == []
    assert crossing(summaries, lambda r: simple_package_key(r.fields["package"])) == []
    # Binary packages of one source package share a split.
    packages = splits_of(summaries, lambda r: r.fields["package"])
    for family in (("libxml2", "libxml2-dev", "libxml2-doc", "libxml2-utils"),
                   ("libcurl4", "libcurl4-doc", "libcurl4-openssl-dev", "libcurl3-gnutls"),
                   ("libsqlite3-0", "libsqlite3-dev"), ("libdpdk-dev", "dpdk", "dpdk-doc")):
        assert len(set().union(*(packages[p] for p in family))) == 1, family


# ---------------------------------------------------------------------------
# Files, loaders and the registry


def test_files_small():
    for module in (bible_en_es, debian_en_de, debian_summaries):
        assert os.path.getsize(module.PATH) < 7_000_000, module.PATH


def test_load_filters_by_split(bible):
    dev = bible_en_es.load("dev")
    assert [r.fields["id"] for r in dev] == [r.fields["id"] for r in by_split(bible)["dev"]]
    with pytest.raises(ValueError, match="split must be one of"):
        debian_en_de.load("validation")


def test_translation_pairs(bible):
    test = embedded.translation_pairs("es", "en", "test")
    assert [r.fields["id"] for r in test] == [r.fields["id"] for r in by_split(bible)["test"]]
    source, target = test[0].fields["es"], test[0].fields["en"]
    assert source and target and source != target
    assert embedded.TRANSLATION[("en", "de")] is debian_en_de
    assert embedded.TRANSLATION[("de", "en")] is debian_en_de
    with pytest.raises(ValueError, match="en-es") as info:
        embedded.translation_pairs("en", "fr", "train")
    assert "en-fr" in str(info.value) and "de-en" in str(info.value)


def test_summarization_registry(summaries):
    dev = embedded.summarization("dev")
    assert [r.fields["id"] for r in dev] == [r.fields["id"] for r in by_split(summaries)["dev"]]
