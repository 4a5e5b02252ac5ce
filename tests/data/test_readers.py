"""Tests for kerlm.data.readers, kerlm.data.classification and kerlm.data.uci_sentiment."""

import collections
import gzip
import importlib.util
import json
import os
import pickle
import re

import pytest

from conftest import ROOT as REPO
from kerlm.data import uci_sentiment
from kerlm.data.classification import LabelVocabulary, texts_and_labels
from kerlm.data.readers import DataError, Record, read_records



def write(path, text, gz=False):
    data = text.encode("utf-8") if isinstance(text, str) else text
    if gz:
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        with open(path, "wb") as f:
            f.write(data)
    return str(path)


def error_of(path, *args, **kwargs):
    with pytest.raises(DataError) as info:
        read_records(path, *args, **kwargs)
    return info.value


def jsonl(*objs):
    return "".join((o if isinstance(o, str) else json.dumps(o)) + "\n" for o in objs)


# ---------------------------------------------------------------------------
# DataError


def test_data_error_format_and_attributes():
    e = DataError("d/a.csv", 4, "boom")
    assert str(e) == "d/a.csv:4: boom"
    assert (e.path, e.line, e.reason) == ("d/a.csv", 4, "boom")
    assert isinstance(e, ValueError)
    assert str(DataError("a.csv", None, "boom")) == "a.csv: boom"
    copy = pickle.loads(pickle.dumps(e))
    assert (str(copy), copy.line) == (str(e), 4)


# ---------------------------------------------------------------------------
# Good files, every format


@pytest.mark.parametrize("gz", [False, True])
def test_jsonl_reads_records_with_lines_and_skips_blank_lines(tmp_path, gz):
    path = write(
        tmp_path / ("a.jsonl.gz" if gz else "a.jsonl"),
        jsonl({"text": "good", "label": "pos", "extra": [1, 2]}, "", "   ",
              {"text": "bad", "label": 0}),
        gz,
    )
    records = read_records(path, ["text", "label"])
    assert [r.line for r in records] == [1, 4]
    assert records[0] == Record({"text": "good", "label": "pos", "extra": [1, 2]}, path, 1)
    # Numbers in required fields are converted with str(); other fields keep their values.
    assert records[1].fields == {"text": "bad", "label": "0"}
    assert records[0].where() == f"{path}:1"


@pytest.mark.parametrize("name", ["a.csv", "a.csv.gz", "A.CSV"])
def test_csv_reads_records_with_quoting(tmp_path, name):
    text = 'text,label\n"first, ""quoted""",pos\n\n2nd,neg\n'
    path = write(tmp_path / name, text, gz=name.endswith(".gz"))
    records = read_records(path, ["text", "label"])
    assert [(r.fields, r.line) for r in records] == [
        ({"text": 'first, "quoted"', "label": "pos"}, 2),
        ({"text": "2nd", "label": "neg"}, 4),
    ]


@pytest.mark.parametrize("name", ["a.tsv", "a.tsv.gz", "a.TSV"])
def test_tsv_reads_records_quotes_are_literal(tmp_path, name):
    text = 'text\tlabel\n"Wow" is all, I said\tpos\n\nHe said "hi\tneg\n'
    path = write(tmp_path / name, text, gz=name.endswith(".gz"))
    records = read_records(path, ["text", "label"])
    assert [(r.fields, r.line) for r in records] == [
        ({"text": '"Wow" is all, I said', "label": "pos"}, 2),
        ({"text": 'He said "hi', "label": "neg"}, 4),
    ]


def test_csv_multiline_field_keeps_start_line_and_crlf_and_bom(tmp_path):
    path = write(tmp_path / "a.csv",
                 '\ufefftext , label\r\n"line one\r\nline two",pos\r\nthird,neg\r\n')
    records = read_records(path, ["text", "label"])
    assert [r.line for r in records] == [2, 4]
    assert records[0].fields == {"text": "line one\r\nline two", "label": "pos"}


def test_required_fields_as_single_string_and_pathlib(tmp_path):
    path = tmp_path / "a.csv"
    write(path, "text\nhello\n")
    records = read_records(path, "text")
    assert records[0].fields == {"text": "hello"} and records[0].path == str(path)


# ---------------------------------------------------------------------------
# File-level errors


@pytest.mark.parametrize("name", ["data.json", "data.txt", "data", "data.parquet.gz"])
def test_unknown_format(tmp_path, name):
    path = write(tmp_path / name, '{"text": "x"}\n')
    e = error_of(path, ["text"])
    assert e.line is None
    assert str(e).startswith(f"{path}: unknown file format")
    assert "supported: .jsonl, .csv, .tsv (optionally .gz)" in str(e)


@pytest.mark.parametrize("name", ["missing.jsonl", "missing.csv.gz"])
def test_missing_file(tmp_path, name):
    path = str(tmp_path / name)
    e = error_of(path, ["text"])
    assert str(e) == f"{path}: no such file"


def test_directory_is_an_error(tmp_path):
    path = tmp_path / "dir.csv"
    path.mkdir()
    assert "is a directory" in str(error_of(path, ["text"]))


def test_not_gzip(tmp_path):
    path = write(tmp_path / "a.jsonl.gz", '{"text": "x"}\n')
    e = error_of(path, ["text"])
    assert str(e).startswith(f"{path}: not a valid gzip file")


@pytest.mark.parametrize("name,text", [
    ("a.jsonl", ""), ("a.jsonl", "\n  \n"), ("a.csv", ""), ("a.tsv", "\n"), ("a.jsonl.gz", ""),
])
def test_empty_file(tmp_path, name, text):
    path = write(tmp_path / name, text, gz=name.endswith(".gz"))
    e = error_of(path, ["text", "label"])
    assert e.line is None
    assert str(e).startswith(f"{path}: ")
    assert "empty" in e.reason


@pytest.mark.parametrize("name,text,line", [
    ("a.csv", "text,label\n", 1), ("a.csv", "text,label\n\n\n", 1),
    ("a.tsv", "\ntext\tlabel\n", 2), ("a.csv.gz", "text,label\r\n", 1),
])
@pytest.mark.parametrize("skip", [False, True])
def test_header_without_rows_says_so(tmp_path, name, text, line, skip):
    path = write(tmp_path / name, text, gz=name.endswith(".gz"))
    assert str(error_of(path, ["text", "label"], skip_bad_rows=skip)) == (
        f"{path}: no records: the file has a header row (line {line}: text, label) and no "
        "rows after it")


@pytest.mark.parametrize("name,sep", [("a.csv", ","), ("a.tsv", "\t"), ("a.csv.gz", ",")])
def test_header_missing_required_field(tmp_path, name, sep):
    path = write(tmp_path / name, f"\nsentence{sep}label\nhi{sep}pos\n", gz=name.endswith(".gz"))
    e = error_of(path, ["text", "label"])
    assert str(e) == f"{path}:2: header has no field 'text' (header fields: 'sentence', 'label')"
    # Still raised with skip_bad_rows: it is a file-level problem.
    assert str(error_of(path, ["text", "label"], skip_bad_rows=True)) == str(e)


def test_header_with_wrong_delimiter_gets_a_hint(tmp_path):
    path = write(tmp_path / "a.tsv", "text,label\nhi,pos\n")
    e = error_of(path, ["text", "label"])
    assert str(e).startswith(f"{path}:1: header has no field 'text' (header fields: 'text,label')")
    assert "delimiter" in str(e)


def test_duplicate_header_field(tmp_path):
    path = write(tmp_path / "a.csv", "text,text\nhi,ho\n")
    assert str(error_of(path, ["text"])) == (
        f"{path}:1: header names field 'text' twice (header fields: 'text', 'text')")


# ---------------------------------------------------------------------------
# Row-level errors, JSONL


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("bad_line,expected", [
    ('{"text": "x", "label": }', "malformed JSON: Expecting value (column 24)"),
    ('{"text": "x"', "malformed JSON: Expecting ',' delimiter (column 13)"),
    ('["x", "pos"]', "expected a JSON object, found a list"),
    ('"just a string"', "expected a JSON object, found str"),
    ('{"text": "x"}', "missing required field 'label' (fields present: 'text')"),
    ('{}', "missing required field 'text' (fields present: none)"),
    ('{"text": "x", "label": null}', "field 'label' is null"),
    ('{"text": "  \\t ", "label": "pos"}', "field 'text' is empty"),
    ('{"text": "", "label": "pos"}', "field 'text' is empty"),
    ('{"text": ["a"], "label": "pos"}', "field 'text' must be a string or a number, not a list"),
    ('{"text": {"a": 1}, "label": "pos"}',
     "field 'text' must be a string or a number, not an object"),
])
def test_jsonl_row_errors(tmp_path, gz, bad_line, expected):
    name = "rows.jsonl.gz" if gz else "rows.jsonl"
    path = write(tmp_path / name, jsonl({"text": "ok", "label": "pos"}, "", bad_line), gz)
    e = error_of(path, ["text", "label"])
    assert str(e) == f"{path}:3: {expected}"
    assert (e.path, e.line, e.reason) == (path, 3, expected)


@pytest.mark.parametrize("name", ["a.jsonl", "a.jsonl.gz"])
def test_jsonl_invalid_utf8(tmp_path, name):
    data = b'{"text": "ok", "label": "pos"}\n{"text": "caf\xe9", "label": "pos"}\n'
    path = write(tmp_path / name, data, gz=name.endswith(".gz"))
    assert str(error_of(path, ["text", "label"])) == f"{path}:2: invalid UTF-8 (byte 14 of the line)"


# ---------------------------------------------------------------------------
# Row-level errors, CSV / TSV


@pytest.mark.parametrize("name,sep", [("a.csv", ","), ("a.tsv", "\t"), ("a.tsv.gz", "\t")])
@pytest.mark.parametrize("row,expected", [
    ("only-one", "expected 2 columns (text, label), found 1"),
    ("a{sep}b{sep}c", "expected 2 columns (text, label), found 3"),
    ("{sep}pos", "field 'text' is empty"),
    ("   {sep}pos", "field 'text' is empty"),
    ("hello{sep}", "field 'label' is empty"),
])
def test_delimited_row_errors(tmp_path, name, sep, row, expected):
    text = f"text{sep}label\nfine{sep}pos\n{row.format(sep=sep)}\n"
    path = write(tmp_path / name, text, gz=name.endswith(".gz"))
    e = error_of(path, ["text", "label"])
    assert str(e) == f"{path}:3: {expected}"


def test_csv_error_line_is_where_multiline_record_starts(tmp_path):
    path = write(tmp_path / "a.csv", 'text,label\n"two\nlines",pos,extra\nok,pos\n')
    assert str(error_of(path, ["text", "label"])) == (
        f"{path}:2: expected 2 columns (text, label), found 3; "
        "the record runs from line 2 to 3: is a quote left open?")


def test_csv_unclosed_quote(tmp_path):
    path = write(tmp_path / "a.csv", 'text,label\nok,pos\n"unclosed,pos\nmore,neg\n')
    assert str(error_of(path, ["text", "label"])) == (
        f"{path}:3: expected 2 columns (text, label), found 1; "
        "the record runs from line 3 to 4: is a quote left open?")


@pytest.mark.parametrize("name", ["a.csv", "a.tsv.gz"])
def test_delimited_invalid_utf8(tmp_path, name):
    sep = "," if ".csv" in name else "\t"
    data = f"text{sep}label\nok{sep}pos\n".encode() + b"\xff\xfe" + f"{sep}neg\n".encode()
    path = write(tmp_path / name, data, gz=name.endswith(".gz"))
    assert str(error_of(path, ["text", "label"])) == f"{path}:3: invalid UTF-8 (byte 1 of the line)"


def test_invalid_utf8_in_header_is_file_level(tmp_path):
    path = write(tmp_path / "a.csv", b"te\xffxt,label\nok,pos\n")
    assert str(error_of(path, ["text"], skip_bad_rows=True)) == (
        f"{path}:1: invalid UTF-8 (byte 3 of the line)")


def test_optional_empty_field_is_fine(tmp_path):
    path = write(tmp_path / "a.csv", "text,label,note\nhi,pos,\n")
    assert read_records(path, ["text", "label"])[0].fields == {"text": "hi", "label": "pos",
                                                               "note": ""}


# ---------------------------------------------------------------------------
# skip_bad_rows


def test_skip_bad_rows_jsonl_counts_and_logs_one_summary(tmp_path, monkeypatch):
    from absl import logging

    path = write(tmp_path / "a.jsonl", jsonl(
        {"text": "a", "label": "pos"}, "{broken", {"text": "b"}, {"text": "c", "label": "neg"},
        "[1]", {"text": "", "label": "neg"}))
    warnings = []
    monkeypatch.setattr(logging, "warning", lambda msg, *args: warnings.append(msg % args))
    skipped = []
    records = read_records(path, ["text", "label"], skip_bad_rows=True, skipped=skipped)
    assert [r.fields["text"] for r in records] == ["a", "c"]
    assert [r.line for r in records] == [1, 4]
    assert [(e.line, e.path) for e in skipped] == [(2, path), (3, path), (5, path), (6, path)]
    assert warnings == [
        f"Skipped 4 bad rows in {path} (first: {path}:2: malformed JSON: "
        "Expecting property name enclosed in double quotes (column 2))"]


@pytest.mark.parametrize("name", ["a.csv", "a.tsv", "a.csv.gz"])
def test_skip_bad_rows_delimited(tmp_path, name, monkeypatch):
    from absl import logging

    sep = "\t" if ".tsv" in name else ","
    text = f"text{sep}label\nx{sep}pos\ny\n{sep}neg\nz{sep}neg\n"
    path = write(tmp_path / name, text, gz=name.endswith(".gz"))
    warnings = []
    monkeypatch.setattr(logging, "warning", lambda msg, *args: warnings.append(msg % args))
    skipped = []
    records = read_records(path, ["text", "label"], skip_bad_rows=True, skipped=skipped)
    assert [(r.fields["text"], r.line) for r in records] == [("x", 2), ("z", 5)]
    assert [e.line for e in skipped] == [3, 4]
    assert warnings == [f"Skipped 2 bad rows in {path} (first: {path}:3: "
                        "expected 2 columns (text, label), found 1)"]


def test_no_warning_when_nothing_skipped(tmp_path, monkeypatch):
    from absl import logging

    path = write(tmp_path / "a.csv", "text\nx\n")
    warnings = []
    monkeypatch.setattr(logging, "warning", lambda *a: warnings.append(a))
    skipped = []
    assert len(read_records(path, ["text"], skip_bad_rows=True, skipped=skipped)) == 1
    assert skipped == [] and warnings == []


def test_skip_bad_rows_all_bad_raises(tmp_path):
    path = write(tmp_path / "a.jsonl", jsonl("{oops", {"text": ""}))
    e = error_of(path, ["text"], skip_bad_rows=True)
    assert e.line is None
    assert str(e).startswith(f"{path}: no good records: all 2 rows are bad (first: {path}:1: ")


def test_skip_bad_rows_file_level_errors_still_raise(tmp_path):
    assert "unknown file format" in str(error_of(tmp_path / "a.json", ["t"], skip_bad_rows=True))
    assert "no such file" in str(error_of(tmp_path / "b.csv", ["t"], skip_bad_rows=True))


def test_without_skip_first_bad_row_raises_and_skipped_untouched(tmp_path):
    path = write(tmp_path / "a.jsonl", jsonl({"text": "a"}, "{bad", "{bad"))
    skipped = []
    assert error_of(path, ["text"], skipped=skipped).line == 2
    assert skipped == []


# ---------------------------------------------------------------------------
# Classification helpers


def recs(path, *labels, start=2):
    return [Record({"text": f"t{i}", "label": l}, path, start + i) for i, l in enumerate(labels)]


def test_label_vocabulary_from_records_sorted_and_encode():
    train = recs("train.csv", "pos", "neg", "pos", "neutral")
    vocab = LabelVocabulary.from_records(train, "label")
    assert vocab.labels == ["neg", "neutral", "pos"] and len(vocab) == 3
    assert vocab.encode(train, "label") == [2, 0, 2, 1]
    assert vocab.decode([0, 2]) == ["neg", "pos"]
    assert vocab.index("neutral") == 1


def test_label_vocabulary_round_trip(tmp_path):
    vocab = LabelVocabulary(["négatif", "positive", "a"])  # order kept, not re-sorted
    path = tmp_path / "labels.json"
    vocab.save(path)
    assert json.loads(path.read_text(encoding="utf-8")) == {"labels": ["négatif", "positive", "a"]}
    loaded = LabelVocabulary.load(path)
    assert loaded == vocab and loaded.labels == ["négatif", "positive", "a"]


def test_label_vocabulary_unseen_label():
    vocab = LabelVocabulary.from_records(recs("train.jsonl", "pos", "neg"), "label")
    dev = recs("dev.jsonl", "pos", "mixed", start=10)
    with pytest.raises(DataError) as info:
        vocab.encode(dev, "label")
    assert str(info.value) == ("dev.jsonl:11: label 'mixed' never appears in the training data "
                               "(known labels: neg, pos)")


def test_known_keeps_records_of_training_labels_or_names_the_unseen_one():
    vocab = LabelVocabulary.from_records(recs("train.jsonl", "pos", "neg"), "label")
    dev = recs("dev.jsonl", "pos", "mixed", "neg", start=10)
    assert vocab.known(dev[::2], "label") == dev[::2]
    with pytest.raises(DataError) as info:
        vocab.known(dev, "label")  # without skip_bad_rows: the one line encode gives
    assert str(info.value) == ("dev.jsonl:11: label 'mixed' never appears in the training data "
                               "(known labels: neg, pos)")


def test_known_with_skip_bad_rows_skips_counts_and_logs_one_line_per_file(monkeypatch):
    from absl import logging

    vocab = LabelVocabulary.from_records(recs("train.jsonl", "pos", "neg"), "label")
    dev = recs("dev.jsonl", "pos", "mixed", "neg", "meh", start=10) + recs("b.csv", "x", "pos")
    warnings = []
    monkeypatch.setattr(logging, "warning", lambda msg, *args: warnings.append(msg % args))
    skipped = []
    kept = vocab.known(dev, "label", skip_bad_rows=True, skipped=skipped)
    assert [(r.path, r.line) for r in kept] == [("dev.jsonl", 10), ("dev.jsonl", 12),
                                                ("b.csv", 3)]
    assert vocab.encode(kept, "label") == [1, 0, 1]
    assert [(e.path, e.line) for e in skipped] == [("dev.jsonl", 11), ("dev.jsonl", 13),
                                                   ("b.csv", 2)]
    assert warnings == [
        "Skipped 2 bad rows in dev.jsonl (first: dev.jsonl:11: label 'mixed' never appears in "
        "the training data (known labels: neg, pos))",
        "Skipped 1 bad rows in b.csv (first: b.csv:2: label 'x' never appears in the training "
        "data (known labels: neg, pos))"]
    with pytest.raises(DataError, match=r"^dev\.jsonl: no good records: all 2 rows have labels "
                                        r"training never saw \(first: dev\.jsonl:10: label 'a'"):
        vocab.known(recs("dev.jsonl", "a", "b", start=10), "label", skip_bad_rows=True)


def test_label_vocabulary_needs_two_classes():
    with pytest.raises(DataError) as info:
        LabelVocabulary.from_records(recs("train.csv", "pos", "pos"), "label")
    assert str(info.value).startswith("train.csv: field 'label' has only 1 distinct label ('pos')")
    assert "at least 2 classes" in str(info.value)


def test_label_vocabulary_missing_label_field():
    bad = [Record({"text": "x"}, "train.csv", 5)]
    with pytest.raises(DataError, match=r"^train\.csv:5: missing required field 'label'"):
        LabelVocabulary.from_records(bad, "label")


def test_label_vocabulary_rejects_duplicates_and_bad_files(tmp_path):
    with pytest.raises(ValueError, match="unique"):
        LabelVocabulary(["a", "b", "a"])
    bad = tmp_path / "labels.json"
    bad.write_text('{"labels": "pos"}')
    with pytest.raises(DataError, match=re.escape(f"{bad}: not a label file")):
        LabelVocabulary.load(bad)
    with pytest.raises(DataError, match="no such file"):
        LabelVocabulary.load(tmp_path / "nope.json")


def test_texts_and_labels_with_numeric_jsonl_labels(tmp_path):
    path = write(tmp_path / "a.jsonl", jsonl({"text": "good", "label": 1}, {"text": "bad", "label": 0}))
    records = read_records(path, ["text", "label"])
    texts, labels = texts_and_labels(records, "text", "label")
    assert (texts, labels) == (["good", "bad"], ["1", "0"])
    vocab = LabelVocabulary.from_records(records, "label")
    assert vocab.labels == ["0", "1"] and vocab.encode(records, "label") == [1, 0]


# ---------------------------------------------------------------------------
# Embedded UCI sentiment data


@pytest.fixture(scope="module")
def uci_all():
    return uci_sentiment.load()


def test_uci_counts_and_splits(uci_all):
    splits = {s: uci_sentiment.load(s) for s in uci_sentiment.SPLITS}
    assert {s: len(r) for s, r in splits.items()} == {"train": 2384, "dev": 299, "test": 299}
    assert sum(len(r) for r in splits.values()) == len(uci_all) == 2982
    for name, records in splits.items():
        assert {r.fields["split"] for r in records} == {name}
        assert {r.fields["label"] for r in records} == set(uci_sentiment.LABELS)
        assert {r.fields["domain"] for r in records} == set(uci_sentiment.DOMAINS)


def test_uci_no_duplicate_texts_or_ids(uci_all):
    texts = [r.fields["text"] for r in uci_all]
    assert len(set(texts)) == len(texts)  # so no text is in two splits either
    ids = [r.fields["id"] for r in uci_all]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"uci-\d{4}", i) for i in ids)
    assert all(r.fields["text"].strip() for r in uci_all)
    by_split = collections.defaultdict(set)
    for r in uci_all:
        by_split[r.fields["split"]].add(r.fields["text"])
    assert not (by_split["train"] & by_split["dev"]) and not (by_split["train"] & by_split["test"])
    assert not (by_split["dev"] & by_split["test"])


def test_uci_split_is_stratified(uci_all):
    count = collections.Counter((r.fields["split"], r.fields["label"], r.fields["domain"])
                                for r in uci_all)
    for label in uci_sentiment.LABELS:
        for domain in uci_sentiment.DOMAINS:
            total = sum(count[(s, label, domain)] for s in uci_sentiment.SPLITS)
            for s in ("dev", "test"):
                assert abs(count[(s, label, domain)] - total / 10) <= 1


def test_uci_domain_filter():
    cross_train = uci_sentiment.load("train", domains=["amazon", "yelp"])
    assert {r.fields["domain"] for r in cross_train} == {"amazon", "yelp"}
    assert len(cross_train) == 1588
    imdb_test = uci_sentiment.load("test", domains=["imdb"])
    assert {r.fields["domain"] for r in imdb_test} == {"imdb"} and len(imdb_test) == 100
    assert len(uci_sentiment.load(domains="imdb")) == 996
    with pytest.raises(ValueError, match="domains"):
        uci_sentiment.load(domains=["twitter"])
    with pytest.raises(ValueError, match="split"):
        uci_sentiment.load("validation")


def test_uci_records_point_at_packaged_file(uci_all):
    assert os.path.isfile(uci_sentiment.PATH)
    assert uci_sentiment.PATH.startswith(os.path.dirname(uci_sentiment.__file__))
    assert uci_all[0].path == uci_sentiment.PATH and uci_all[0].line == 1
    assert uci_all[0].fields["id"] == "uci-0001"


def test_uci_readme_table_matches_data(uci_all):
    readme = open(os.path.join(os.path.dirname(uci_sentiment.PATH), "README.md"),
                  encoding="utf-8").read()
    tool = _load_tool()
    rows = [dict(r.fields, line=int(r.fields["id"][4:])) for r in uci_all]
    assert tool.counts_table(rows) in readme
    assert "CC BY 4.0" in readme and "Kotzias" in readme


# ---------------------------------------------------------------------------
# The split tool, on a small synthetic input


def _load_tool():
    spec = importlib.util.spec_from_file_location(
        "make_uci_sentiment_split", os.path.join(REPO, "tools", "make_uci_sentiment_split.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_split_tool_dedups_and_is_deterministic(tmp_path, capsys):
    tool = _load_tool()
    rows = []
    for i in range(40):
        label = "positive" if i % 2 else "negative"
        rows.append({"text": f"sentence {i}", "label": label, "domain": "imdb"})
    rows += [{"text": "sentence 1", "label": "positive", "domain": "yelp"},    # duplicate
             {"text": "conflict", "label": "positive", "domain": "imdb"},
             {"text": "conflict", "label": "negative", "domain": "imdb"},      # both dropped
             {"text": " ", "label": "negative", "domain": "yelp"}]             # empty
    source = write(tmp_path / "src.jsonl", jsonl(*rows))
    out1, out2 = str(tmp_path / "one.jsonl.gz"), str(tmp_path / "two.jsonl.gz")
    tool.main([source, "--output", out1])
    printed = capsys.readouterr().out
    assert "removed duplicate 'sentence 1'" in printed
    assert "removed conflicting labels 'conflict'" in printed
    assert "removed line 44: empty text" in printed
    tool.main([source, "--output", out2])
    assert open(out1, "rb").read() == open(out2, "rb").read()
    written = read_records(out1, ["id", "text", "label", "domain", "split"])
    assert len(written) == 40
    assert written[0].fields["id"] == "uci-0001"
    assert collections.Counter(r.fields["split"] for r in written) == {
        "train": 32, "dev": 4, "test": 4}
