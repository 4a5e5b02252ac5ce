"""Tests for kerlm.data.corpus and kerlm.data.state_of_the_union."""

import gzip
import hashlib
import json
import os

import pytest

from kerlm.data import corpus, state_of_the_union
from kerlm.data.corpus import iter_documents, read_documents, resolve_files, sample, scan
from kerlm.data.readers import DataError


def write(path, text, gz=False):
    data = text.encode("utf-8") if isinstance(text, str) else text
    with (gzip.open(path, "wb") if gz else open(path, "wb")) as f:
        f.write(data)
    return str(path)


def jsonl(*objs):
    return "".join((o if isinstance(o, str) else json.dumps(o)) + "\n" for o in objs)


def write_tfrecord(path, texts, gz=False, field="text"):
    import tensorflow as tf

    with tf.io.TFRecordWriter(str(path), options="GZIP" if gz else None) as writer:
        for text in texts:
            value = text.encode("utf-8") if isinstance(text, str) else text
            feature = {field: tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))}
            writer.write(tf.train.Example(
                features=tf.train.Features(feature=feature)).SerializeToString())
    return str(path)


def error_of(path, **kwargs):
    with pytest.raises(DataError) as info:
        list(read_documents(path, **kwargs))
    message = str(info.value)
    assert "\n" not in message
    return message


TEXT = "  First document,\r\nspanning   three\n  lines.  \n\n\n \t\nSecond.\n\nThird one\n"


# ---------------------------------------------------------------------------
# Formats


def test_txt_blank_line_separated(tmp_path):
    path = write(tmp_path / "a.txt", TEXT)
    assert list(read_documents(path)) == [
        "First document, spanning   three lines.", "Second.", "Third one"]


def test_txt_one_per_line(tmp_path):
    path = write(tmp_path / "a.txt", TEXT)
    assert list(read_documents(path, one_per_line=True)) == [
        "First document,", "spanning   three", "lines.", "Second.", "Third one"]


def test_txt_gz_bom_and_no_final_newline(tmp_path):
    path = write(tmp_path / "a.TXT.gz", "\ufeffÜber alles\n\nzwei", gz=True)
    assert list(read_documents(path)) == ["Über alles", "zwei"]


def test_jsonl_and_text_field(tmp_path):
    path = write(tmp_path / "a.jsonl", jsonl({"text": "one", "body": "uno"}, "",
                                             {"text": "two", "body": "  "},
                                             {"text": " 3 ", "body": "tres\n"}))
    assert list(read_documents(path)) == ["one", "two", " 3 "]
    # whitespace-only documents are skipped; texts are kept as stored
    assert list(read_documents(path, text_field="body")) == ["uno", "tres\n"]


def test_jsonl_gz(tmp_path):
    path = write(tmp_path / "a.jsonl.gz", jsonl({"text": "één"}, {"text": "два"}), gz=True)
    assert list(read_documents(path)) == ["één", "два"]


def test_tfrecord_and_tfrecord_gz(tmp_path):
    plain = write_tfrecord(tmp_path / "a.tfrecord", ["héllo wörld", " ", "second"])
    zipped = write_tfrecord(tmp_path / "b.tfrecord.gz", ["gz one", "gz two"], gz=True)
    body = write_tfrecord(tmp_path / "c.tfrecord", ["in body"], field="body")
    assert list(read_documents(plain)) == ["héllo wörld", "second"]
    assert list(read_documents(zipped)) == ["gz one", "gz two"]
    assert list(read_documents(body, text_field="body")) == ["in body"]


def test_read_documents_streams(tmp_path):
    path = write(tmp_path / "a.txt", b"one\n\ntwo\n\n\xff\n")
    documents = read_documents(path)
    assert next(documents) == "one"
    assert next(documents) == "two"  # the bad line further on is not read yet
    with pytest.raises(DataError):
        next(documents)


# ---------------------------------------------------------------------------
# Errors


def test_invalid_utf8(tmp_path):
    path = write(tmp_path / "a.txt", b"ok\n\nab\xffc\n")
    assert error_of(path) == f"{path}:3: not valid UTF-8 (byte offset 6)"
    path = write(tmp_path / "b.jsonl.gz", b'{"text": "x"}\n{"text": "\xc3"}\n', gz=True)
    assert error_of(path) == f"{path}:2: not valid UTF-8 (byte offset 24)"


def test_invalid_utf8_in_tfrecord(tmp_path):
    path = write_tfrecord(tmp_path / "a.tfrecord", ["ok", b"ab\xff"])
    assert error_of(path) == f"{path}: record 2: not valid UTF-8 (byte offset 2)"


def test_jsonl_errors(tmp_path):
    cases = [
        ('{"text": "a"}\n{"text": ', ":2: malformed JSON: Expecting value (column 10)"),
        ('["a"]\n', ":1: expected a JSON object, found a list"),
        ('\n{"body": "a", "id": 1}\n', ":2: no field 'text' (fields present: 'body', 'id')"),
        ('{"text": 3}\n', ":1: field 'text' must be a string, not int"),
        ('{"text": null}\n', ":1: field 'text' must be a string, not null"),
        ('{"text": ["a"]}\n', ":1: field 'text' must be a string, not a list"),
    ]
    for i, (text, expected) in enumerate(cases):
        path = write(tmp_path / f"e{i}.jsonl", text)
        assert error_of(path) == path + expected


def test_tfrecord_field_errors(tmp_path):
    import tensorflow as tf

    path = write_tfrecord(tmp_path / "a.tfrecord", ["x"], field="body")
    assert error_of(path) == f"{path}: record 1: no feature 'text' (features present: 'body')"
    path = str(tmp_path / "b.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        feature = {"text": tf.train.Feature(int64_list=tf.train.Int64List(value=[3]))}
        writer.write(tf.train.Example(features=tf.train.Features(feature=feature))
                     .SerializeToString())
    assert error_of(path) == f"{path}: record 1: feature 'text' is int64_list, expected bytes_list"


def test_empty_files(tmp_path):
    for name, data in [("a.txt", ""), ("b.txt", "\n \n\t\n"), ("c.jsonl", jsonl({"text": " "})),
                       ("d.txt.gz", None)]:
        path = write(tmp_path / name, data or "", gz=data is None)
        assert error_of(path) == f"{path}: empty file (no documents)"
    path = write_tfrecord(tmp_path / "e.tfrecord", [])
    assert error_of(path) == f"{path}: empty file (no documents)"


def test_unknown_format_and_missing_file(tmp_path):
    path = write(tmp_path / "a.csv", "text\nx\n")
    with pytest.raises(DataError) as info:
        read_documents(path)  # checked at the call, before any next()
    assert str(info.value) == (f"{path}: unknown file format (.csv); supported: "
                               ".txt, .jsonl, .tfrecord (optionally .gz)")
    missing = str(tmp_path / "missing.txt")
    with pytest.raises(DataError, match=r"missing\.txt: no such file$"):
        read_documents(missing)


def test_corrupt_gzip(tmp_path):
    path = write(tmp_path / "a.txt.gz", "plain text, not gzip\n")
    message = error_of(path)
    assert message.startswith(f"{path}: not a valid gzip file (")
    whole = gzip.compress(b"x\n" * 50_000)
    path = write(tmp_path / "b.txt.gz", whole[: len(whole) // 2])  # truncated
    assert error_of(path).startswith(f"{path}: not a valid gzip file (")


def test_corrupt_tfrecord(tmp_path):
    path = write(tmp_path / "a.tfrecord", "this is not a TFRecord file, just text\n")
    assert error_of(path).startswith(f"{path}: record 1: not valid TFRecord data (")
    path = write(tmp_path / "b.tfrecord.gz", "not gzip")
    assert error_of(path).startswith(f"{path}: record 1: not valid gzipped TFRecord data (")
    good = write_tfrecord(tmp_path / "c.tfrecord", ["one", "two"])
    with open(good, "rb") as f:
        data = f.read()
    path = write(tmp_path / "d.tfrecord", data[:-5])
    assert error_of(path).startswith(f"{path}: record 2: not valid TFRecord data (")


# ---------------------------------------------------------------------------
# File lists


def test_resolve_files_order_globs_and_duplicates(tmp_path):
    for name in ["b2.txt", "b1.txt", "a.jsonl", "b10.txt"]:
        write(tmp_path / name, "x\n")
    os.mkdir(tmp_path / "b_dir.txt")  # a directory matched by the glob is left out
    d = str(tmp_path)
    spec = f"{d}/a.jsonl, {d}/b*.txt ,{d}/b1.txt,,{d}/a.jsonl"
    assert [os.path.basename(f) for f in resolve_files(spec)] == [
        "a.jsonl", "b1.txt", "b10.txt", "b2.txt"]
    spec = f"{d}/b2.txt,{d}/*.txt"
    assert [os.path.basename(f) for f in resolve_files(spec)] == ["b2.txt", "b1.txt", "b10.txt"]


def test_resolve_files_errors(tmp_path):
    write(tmp_path / "a.txt", "x\n")
    d = str(tmp_path)
    with pytest.raises(DataError) as info:
        resolve_files(f"{d}/a.txt,{d}/*.jsonl")
    assert str(info.value) == f"{d}/*.jsonl: no file matches this pattern"
    with pytest.raises(DataError) as info:
        resolve_files(f"{d}/a.txt,{d}/b.txt")
    assert str(info.value) == f"{d}/b.txt: no such file"
    with pytest.raises(DataError) as info:
        resolve_files(d)
    assert str(info.value).startswith(f"{d}: is a directory, not a file")
    for spec in ["", " , "]:
        with pytest.raises(DataError, match="no file given"):
            resolve_files(spec)


def test_iter_documents_chains_files_in_order(tmp_path):
    a = write(tmp_path / "a.txt", "a1\n\na2\n")
    b = write(tmp_path / "b.jsonl", jsonl({"text": "b1"}))
    assert list(iter_documents([b, a])) == ["b1", "a1", "a2"]
    assert list(iter_documents(f"{tmp_path}/*")) == ["a1", "a2", "b1"]  # a spec string
    c = write(tmp_path / "c.txt", "c1\nc2\n")
    assert list(iter_documents([a, c], one_per_line=True)) == ["a1", "a2", "c1", "c2"]


# ---------------------------------------------------------------------------
# sample and scan


def test_sample_round_robin_and_bounded(tmp_path):
    a = write(tmp_path / "a.txt", "".join(f"a{i}\n\n" for i in range(1, 6)))
    b = write(tmp_path / "b.jsonl", jsonl(*({"text": f"b{i}"} for i in range(1, 3))))
    c = write(tmp_path / "c.txt", "c1\n")
    assert sample([a, b, c]) == ["a1", "b1", "c1", "a2", "b2", "a3", "a4", "a5"]
    assert sample([a, b, c], max_chars=9) == ["a1", "b1", "c1", "a2", "b"]
    assert sum(map(len, sample([a, b, c], max_chars=9))) == 9
    assert sample([c, a], max_chars=6) == ["c1", "a1", "a2"]
    assert sample([a, b], max_chars=1) == ["a"]
    with pytest.raises(ValueError, match="max_chars must be a positive integer, got 0"):
        sample([a], max_chars=0)


def test_sample_many_documents_and_files(tmp_path, monkeypatch):
    # files are read ahead, closed and reopened: the result is a plain round-robin over them
    opened = []
    real = corpus.read_documents
    monkeypatch.setattr(corpus, "read_documents", lambda path, **kw: opened.append(path) or
                        real(path, **kw))
    files, texts = [], []
    for f in range(5):
        docs = [f"f{f} d{i}" + " w" * (i % 7) for i in range(40 + 30 * f)]
        texts.append(docs)
        files.append(write(tmp_path / f"{f}.txt.gz", "\n\n".join(docs), gz=True))
    expected, total = [], 0
    for i in range(max(map(len, texts))):
        for docs in texts:
            if i < len(docs):
                expected.append(docs[i])
                total += len(docs[i])
    assert sample(files, max_chars=total + 100) == expected
    assert len(opened) > len(files)  # some files were reopened for more documents
    cut = sample(files, max_chars=1000)
    assert sum(map(len, cut)) == 1000
    assert cut[:-1] == expected[: len(cut) - 1]
    assert expected[len(cut) - 1].startswith(cut[-1])


def test_sample_raises_only_on_documents_it_takes(tmp_path):
    a = write(tmp_path / "a.jsonl", jsonl({"text": "good"}, {"text": 1}))
    b = write(tmp_path / "b.txt", "other\n")
    assert sample([a, b], max_chars=8) == ["good", "othe"]
    with pytest.raises(DataError, match=r"a\.jsonl:2: field 'text' must be a string"):
        sample([a, b], max_chars=10)
    empty = write(tmp_path / "c.txt", "\n")
    with pytest.raises(DataError, match=r"c\.txt: empty file \(no documents\)$"):
        sample([b, empty])


def test_scan_counts_and_checks(tmp_path):
    a = write(tmp_path / "a.txt", TEXT)
    b = write(tmp_path / "b.jsonl.gz", jsonl({"text": "über  zwei\tWörter"}), gz=True)
    # "First document, spanning   three lines." (39), "Second." (7), "Third one" (9), 17
    assert scan([a, b]) == {"files": 2, "documents": 4, "words": 11, "characters": 72}
    assert scan(f"{a},{b}", one_per_line=True)["documents"] == 6
    bad = write(tmp_path / "c.jsonl", jsonl({"text": "x"}, {"text": "y"}, '{"text": 1}'))
    with pytest.raises(DataError) as info:
        scan([a, bad])
    assert str(info.value) == f"{bad}:3: field 'text' must be a string, not int"


# ---------------------------------------------------------------------------
# The embedded State of the Union corpus


def test_state_of_the_union_splits():
    assert state_of_the_union.SPLITS == ("train", "dev", "test")
    splits = {s: list(state_of_the_union.documents(s)) for s in state_of_the_union.SPLITS}
    assert {s: len(d) for s, d in splits.items()} == {"train": 209, "dev": 12, "test": 12}
    assert {s: state_of_the_union.count(s) for s in splits} == {"train": 209, "dev": 12,
                                                                 "test": 12}
    everything = list(read_documents(state_of_the_union.PATH))
    assert len(everything) == 233
    assert everything == splits["train"] + splits["dev"] + splits["test"]  # in order, disjoint
    assert splits["test"] == everything[-12:]
    assert len(set(everything)) == 233
    train, dev, test = splits["train"], splits["dev"], splits["test"]
    assert train[0].startswith("Fellow-Citizens of the Senate and House of Representatives: "
                               "In meeting you again")  # Washington, December 1790
    assert "Walter Capps and Sonny Bono" in dev[0]  # January 1998
    assert "For 220 years" in test[0]  # 2010
    assert test[-1].startswith("Thank you.  Thank you. Thank you. Good to be back.")  # 2021
    assert "COVID" in test[-1] and "COVID" not in "".join(train)
    with pytest.raises(ValueError, match="split must be one of"):
        state_of_the_union.documents("validation")


def test_state_of_the_union_file():
    path = state_of_the_union.PATH
    assert os.path.basename(path) == "addresses.txt.gz"
    assert scan(path) == {"files": 1, "documents": 233, "words": 1_794_818,
                          "characters": 10_759_060}
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    assert digest == "09a8027da7271bd3a0af9783fae0b2e6c381dd30f5c27d82144fec3482c6e2ce"
    assert corpus.CORPUS_FORMATS == (".txt", ".jsonl", ".tfrecord")
