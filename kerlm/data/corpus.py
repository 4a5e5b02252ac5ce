"""Readers for users' own plain-text corpora (language-model pretraining text).

Streaming, pure Python generators: a file is read a line (or a record) at a
time and never held in memory whole. TensorFlow is imported only to read
TFRecord files. Every problem with a file is a one-line
:class:`~kerlm.data.readers.DataError` starting with ``PATH:LINE: `` or
``PATH: ``.

Formats (chosen from the file name, case-insensitive), each optionally ``.gz``:

* ``.txt`` -- documents separated by one or more blank lines; the lines of a
  document are stripped and joined with one space. With ``one_per_line=True``
  every non-blank line is a document.
* ``.jsonl`` -- one JSON object per line, the document is ``obj[text_field]``
  (a string); blank lines are skipped.
* ``.tfrecord`` -- ``tf.train.Example`` records with a bytes feature
  ``text_field`` holding one UTF-8 value (``.tfrecord.gz``: GZIP-compressed).

In JSONL and TFRecord files a document that is empty or only whitespace is
skipped; other documents are returned as stored. A file with no document at
all is an error.

Example:

>>> import os, tempfile
>>> d = tempfile.mkdtemp()
>>> with open(os.path.join(d, "a.txt"), "w", encoding="utf-8") as f:
...     _ = f.write("First document,\\non two lines.\\n\\n\\nSecond one.\\n")
>>> with open(os.path.join(d, "b.jsonl"), "w", encoding="utf-8") as f:
...     _ = f.write('{"text": "From JSONL."}\\n{"text": 3}\\n')
>>> files = resolve_files(os.path.join(d, "*.txt") + "," + os.path.join(d, "b.jsonl"))
>>> [os.path.basename(f) for f in files]
['a.txt', 'b.jsonl']
>>> list(read_documents(files[0]))
['First document, on two lines.', 'Second one.']
>>> sample(files, max_chars=45)  # round-robin: a.txt, b.jsonl, a.txt (cut to fit)
['First document, on two lines.', 'From JSONL.', 'Secon']
>>> scan(files)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
kerlm.data.readers.DataError: ...b.jsonl:2: field 'text' must be a string, not int
"""

from __future__ import annotations

import collections
import glob
import gzip
import json
import os
import re
import zlib
from typing import Dict, Iterator, List, Sequence, Tuple, Union

from kerlm.data import readers
from kerlm.data.readers import DataError

__all__ = ["CORPUS_FORMATS", "resolve_files", "read_documents", "iter_documents", "sample",
           "scan"]

CORPUS_FORMATS = (".txt", ".jsonl", ".tfrecord")
_SUPPORTED_TEXT = ".txt, .jsonl, .tfrecord (optionally .gz)"

Files = Union[str, os.PathLike, Sequence[Union[str, os.PathLike]]]


# ---------------------------------------------------------------------------
# Files


def resolve_files(spec) -> List[str]:
    """The files named by ``spec``, a comma-separated list of paths and glob patterns.

    Each glob's matches (files only; ``**`` matches directories recursively) are
    sorted; the order of the list is kept and a file named twice is kept at
    its first place. A path cannot contain a comma.

    Raises DataError for an empty spec, a glob that matches no file
    (``"PATTERN: no file matches this pattern"``), a missing path
    (``"PATH: no such file"``) or a directory.

    >>> resolve_files(" , ")
    Traceback (most recent call last):
    ...
    kerlm.data.readers.DataError: ' , ': no file given (expected a comma-separated list of paths or glob patterns)
    """
    text = os.fspath(spec)
    items = [item.strip() for item in text.split(",")]
    items = [item for item in items if item]
    if not items:
        raise DataError(repr(text), None,
                        "no file given (expected a comma-separated list of paths or glob patterns)")
    files: List[str] = []
    seen = set()
    for item in items:
        if glob.has_magic(item):
            matches = sorted(m for m in glob.glob(item, recursive=True) if os.path.isfile(m))
            if not matches:
                raise DataError(item, None, "no file matches this pattern")
        else:
            _check_file(item)
            matches = [item]
        for path in matches:
            key = os.path.normcase(os.path.abspath(path))
            if key not in seen:
                seen.add(key)
                files.append(path)
    return files


def _check_file(path: str) -> None:
    if os.path.isdir(path):
        raise DataError(path, None, "is a directory, not a file (name its files, e.g. with a glob)")
    if not os.path.exists(path):
        raise DataError(path, None, "no such file")


def _file_list(files: Files) -> List[str]:
    """A spec string goes through resolve_files; a sequence is taken as a list of paths."""
    if isinstance(files, (str, os.PathLike)):
        return resolve_files(files)
    return [os.fspath(f) for f in files]


def _file_format(path: str) -> Tuple[str, bool]:
    """Returns (".txt" | ".jsonl" | ".tfrecord", gzipped) or raises DataError."""
    return readers.file_format(path, CORPUS_FORMATS, _SUPPORTED_TEXT)


def _one_line(text) -> str:
    return " ".join(str(text).split())


# ---------------------------------------------------------------------------
# Text and JSONL


def _lines(path: str, gzipped: bool) -> Iterator[Tuple[int, str]]:
    """Yields (line number, decoded line) for each physical line (split on ``\\n``)."""
    try:
        raw = gzip.open(path, "rb") if gzipped else open(path, "rb")
    except FileNotFoundError:
        raise DataError(path, None, "no such file") from None
    except OSError as e:
        raise DataError(path, None, f"cannot open: {e.strerror or e}") from None
    with raw:
        offset = 0
        number = 0
        try:
            for number, data in enumerate(raw, start=1):
                start = 3 if number == 1 and data.startswith(b"\xef\xbb\xbf") else 0
                try:
                    text = data[start:].decode("utf-8")
                except UnicodeDecodeError as e:
                    raise DataError(path, number,
                                    f"not valid UTF-8 (byte offset {offset + start + e.start})"
                                    ) from None
                offset += len(data)
                yield number, text
        except (gzip.BadGzipFile, zlib.error, EOFError) as e:
            raise DataError(path, None, f"not a valid gzip file ({_one_line(e)})") from None
        except OSError as e:
            raise DataError(path, None, f"cannot read: {_one_line(e.strerror or e)}") from None


def _text_documents(path, gzipped, one_per_line) -> Iterator[str]:
    lines: List[str] = []
    for _, text in _lines(path, gzipped):
        text = text.strip()
        if one_per_line:
            if text:
                yield text
        elif text:
            lines.append(text)
        elif lines:
            yield " ".join(lines)
            lines = []
    if lines:
        yield " ".join(lines)


def _jsonl_documents(path, gzipped, text_field) -> Iterator[str]:
    for number, text in _lines(path, gzipped):
        if not text.strip():
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataError(path, number, f"malformed JSON: {e.msg} (column {e.colno})") from None
        except RecursionError:
            raise DataError(path, number, "malformed JSON: nested too deeply") from None
        if not isinstance(obj, dict):
            raise DataError(path, number, f"expected a JSON object, found {_json_type(obj)}")
        if text_field not in obj:
            present = ", ".join(repr(k) for k in obj) or "none"
            raise DataError(path, number,
                            f"no field {text_field!r} (fields present: {_clip(present)})")
        value = obj[text_field]
        if not isinstance(value, str):
            raise DataError(path, number,
                            f"field {text_field!r} must be a string, not {_json_type(value)}")
        if value.strip():
            yield value


def _json_type(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def _clip(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


# ---------------------------------------------------------------------------
# TFRecord


_TF_NOISE = re.compile(r"\{\{[^}]*\}\}|\[Op:[^\]]*\]|\s*name:\s*$")


def _tfrecord_documents(path, gzipped, text_field) -> Iterator[str]:
    import tensorflow as tf  # only here: reading text and JSONL needs no TensorFlow
    from google.protobuf.message import DecodeError

    kind = "gzipped TFRecord" if gzipped else "TFRecord"
    dataset = tf.data.TFRecordDataset(path, compression_type="GZIP" if gzipped else "")
    records = None
    number = 0
    while True:
        number += 1
        try:
            if records is None:
                records = iter(dataset)
            raw = next(records).numpy()
        except StopIteration:
            return
        except tf.errors.OpError as e:
            reason = _one_line(_TF_NOISE.sub(" ", e.message or str(e)))
            raise DataError(path, None, f"record {number}: not valid {kind} data ({reason})") from None
        try:
            example = tf.train.Example.FromString(raw)
        except DecodeError as e:
            raise DataError(path, None,
                            f"record {number}: not a tf.train.Example ({_one_line(e)})") from None
        features = example.features.feature
        if text_field not in features:
            present = ", ".join(repr(k) for k in sorted(features)) or "none"
            raise DataError(path, None, f"record {number}: no feature {text_field!r} "
                                        f"(features present: {_clip(present)})")
        feature = features[text_field]
        which = feature.WhichOneof("kind")
        if which != "bytes_list":
            raise DataError(path, None, f"record {number}: feature {text_field!r} is "
                                        f"{which or 'empty'}, expected bytes_list")
        values = feature.bytes_list.value
        if len(values) != 1:
            raise DataError(path, None, f"record {number}: feature {text_field!r} has "
                                        f"{len(values)} values, expected 1")
        try:
            text = values[0].decode("utf-8")
        except UnicodeDecodeError as e:
            raise DataError(path, None,
                            f"record {number}: not valid UTF-8 (byte offset {e.start})") from None
        if text.strip():
            yield text


# ---------------------------------------------------------------------------
# Public entry points


def read_documents(path, text_field: str = "text", one_per_line: bool = False) -> Iterator[str]:
    """A generator of the document texts of one ``.txt``, ``.jsonl`` or ``.tfrecord`` file.

    Args:
      path: the file (``.gz`` allowed); its name picks the format.
      text_field: the JSON field / ``tf.train.Example`` feature holding the text.
      one_per_line: for ``.txt``: every non-blank line is a document (instead of
        blank-line-separated paragraphs).

    The format, and that the file exists, are checked at once; everything else
    as the documents are read. Raises DataError (one line):
    ``PATH:LINE: not valid UTF-8 (byte offset N)`` (N counts bytes of the
    uncompressed file from 0; in TFRecord ``PATH: record K: ...``, N within
    the value), malformed JSON, a missing or non-string field, a corrupt gzip
    or TFRecord file, and ``PATH: empty file (no documents)``.
    """
    path = os.fspath(path)
    ext, gzipped = _file_format(path)
    _check_file(path)
    if ext == ".txt":
        documents = _text_documents(path, gzipped, one_per_line)
    elif ext == ".jsonl":
        documents = _jsonl_documents(path, gzipped, text_field)
    else:
        documents = _tfrecord_documents(path, gzipped, text_field)
    return _not_empty(path, documents)


def _not_empty(path, documents) -> Iterator[str]:
    found = False
    for text in documents:
        found = True
        yield text
    if not found:
        raise DataError(path, None, "empty file (no documents)")


def iter_documents(files: Files, text_field: str = "text",
                   one_per_line: bool = False) -> Iterator[str]:
    """The documents of every file in turn (``files``: a list of paths, or a spec string
    for :func:`resolve_files`)."""
    for path in _file_list(files):
        yield from read_documents(path, text_field=text_field, one_per_line=one_per_line)


class _Cursor:
    """A file in :func:`sample`: documents read ahead, and how many were read."""

    def __init__(self, path: str, chunk: int):
        self.path = path
        self.chunk = chunk      # characters to read ahead next time (doubles each refill)
        self.read = 0           # documents read from the file so far
        self.buffer: collections.deque = collections.deque()
        self.done = False
        self.error = None       # a DataError met while reading ahead, raised when reached

    def fill(self, **kwargs) -> None:
        """Reads the next documents (at least one, about ``chunk`` characters), then closes
        the file, so that only one file is open at a time whatever the number of files."""
        documents = read_documents(self.path, **kwargs)
        try:
            for _ in range(self.read):
                next(documents)
            chars = 0
            for text in documents:
                self.buffer.append(text)
                self.read += 1
                chars += len(text)
                if chars >= self.chunk:
                    break
            else:
                self.done = True
        except DataError as e:
            self.error = e
            self.done = True
        finally:
            documents.close()
        self.chunk *= 2


def sample(files: Files, max_chars: int = 5_000_000, *, text_field: str = "text",
           one_per_line: bool = False) -> List[str]:
    """At most ``max_chars`` characters of documents, e.g. to learn a vocabulary from.

    Documents are taken round-robin across the files (the first document of
    each file in order, then the second of each, ...) until ``max_chars``
    characters are taken; the last one is cut to fit. One file is open at a
    time and a few times ``max_chars`` characters are held at most. ``files``
    and the other arguments are as for :func:`iter_documents`. Raises the
    errors of :func:`read_documents` met in the documents it takes (a
    problem further on in a file is left to :func:`scan`).
    """
    if isinstance(max_chars, bool) or not isinstance(max_chars, int) or max_chars < 1:
        raise ValueError(f"max_chars must be a positive integer, got {max_chars!r}")
    paths = _file_list(files)
    for path in paths:
        _file_format(path)
        _check_file(path)
    chunk = max(1, -(-max_chars // max(1, len(paths))))
    active = [_Cursor(path, chunk) for path in paths]
    taken: List[str] = []
    total = 0
    while active:
        for cursor in active:
            if not cursor.buffer and not cursor.done:
                cursor.fill(text_field=text_field, one_per_line=one_per_line)
            if not cursor.buffer:
                if cursor.error is not None:
                    raise cursor.error
                continue
            text = cursor.buffer.popleft()
            room = max_chars - total
            if len(text) >= room:
                taken.append(text[:room])
                return taken
            taken.append(text)
            total += len(text)
        active = [c for c in active if c.buffer or not c.done or c.error is not None]
    return taken


def scan(files: Files, *, text_field: str = "text", one_per_line: bool = False) -> Dict[str, int]:
    """Reads every document of every file once, to check them; returns counts.

    Returns ``{"files", "documents", "words", "characters"}`` (words are
    whitespace-separated). Raises the DataError of the first problem found.
    """
    paths = _file_list(files)
    counts = {"files": len(paths), "documents": 0, "words": 0, "characters": 0}
    for path in paths:
        for text in read_documents(path, text_field=text_field, one_per_line=one_per_line):
            counts["documents"] += 1
            counts["words"] += len(text.split())
            counts["characters"] += len(text)
    return counts
