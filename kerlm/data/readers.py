"""Readers for users' own data files: JSONL, CSV and TSV, each optionally gzipped.

Pure Python (no TensorFlow). Every problem with a file is a :class:`DataError`
whose message starts with ``PATH:LINE: `` (or ``PATH: `` when no single line is
to blame), so an app can print it as is and the user can jump to the line.

Formats (chosen from the file name, case-insensitive):

* ``.jsonl`` -- one JSON object per line; blank lines are skipped.
* ``.csv`` -- a header row of field names, then one record per row; quoting as
  Python's :mod:`csv` module, pandas and spreadsheets write it (``"a, b"``,
  ``""`` for a quote; a quoted field may span lines). Blank lines are skipped.
* ``.tsv`` -- the same with tab-separated fields but NO quoting (as in GLUE and
  most NLP TSV files): quotes are ordinary characters, and a field cannot
  contain a tab or a newline.
* any of the above + ``.gz``.

Every field in ``required_fields`` must be present and non-empty (after
stripping whitespace). In JSONL a number or boolean is accepted and converted
with ``str()``; null, a list or an object is an error. In the returned
records the required fields are therefore always ``str``; other fields keep
their values (``str`` for CSV/TSV, any JSON value for JSONL).

Example:

>>> import os, tempfile
>>> d = tempfile.mkdtemp()
>>> path = os.path.join(d, "reviews.csv")
>>> with open(path, "w", encoding="utf-8") as f:
...     _ = f.write('text,label\\n"Great, really",1\\n,0\\n')
>>> read_records(path, ["text", "label"])  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
kerlm.data.readers.DataError: ...reviews.csv:3: field 'text' is empty
>>> skipped = []
>>> records = read_records(path, ["text", "label"], skip_bad_rows=True,
...                        skipped=skipped)
>>> [(r.fields["text"], r.fields["label"], r.line) for r in records]
[('Great, really', '1', 2)]
>>> [e.line for e in skipped]
[3]
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import json
import os
import zlib
from typing import Any, Iterable, Iterator, List, Optional, Sequence, Tuple

__all__ = ["DataError", "Record", "read_records", "SUPPORTED_FORMATS"]

SUPPORTED_FORMATS = (".jsonl", ".csv", ".tsv")
_SUPPORTED_TEXT = ".jsonl, .csv, .tsv (optionally .gz)"


class DataError(ValueError):
    """A problem with a data file: ``str(e)`` is ``"PATH:LINE: message"``.

    Attributes: ``path`` (str), ``line`` (1-based int, or None when the problem
    is with the whole file) and ``reason`` (the message without the prefix).

    >>> str(DataError("a.csv", 7, "field 'text' is empty"))
    "a.csv:7: field 'text' is empty"
    >>> str(DataError("a.txt", None, "unknown file format"))
    'a.txt: unknown file format'
    """

    def __init__(self, path, line: Optional[int], message: str):
        self.path = os.fspath(path) if path is not None else "<unknown>"
        self.line = line
        self.reason = message
        prefix = self.path if line is None else f"{self.path}:{line}"
        super().__init__(f"{prefix}: {message}")

    def __reduce__(self):  # keep DataError picklable despite the custom __init__
        return (type(self), (self.path, self.line, self.reason))


@dataclasses.dataclass(frozen=True)
class Record:
    """One record of a data file.

    ``fields`` maps field names to values; ``path`` is the file it came from and
    ``line`` the 1-based physical line where it starts (for error messages).
    """

    fields: dict
    path: str
    line: int

    def where(self) -> str:
        """``"PATH:LINE"``, the place to point a user at."""
        return f"{self.path}:{self.line}"


# ---------------------------------------------------------------------------
# Format and line handling


def file_format(path: str, formats=None, supported: str = _SUPPORTED_TEXT) -> Tuple[str, bool]:
    """Returns (extension, gzipped) for one of `formats` (default: ".jsonl", ".csv",
    ".tsv"), or raises DataError naming the `supported` ones."""
    formats = SUPPORTED_FORMATS if formats is None else formats
    name = os.path.basename(path).lower()
    gzipped = name.endswith(".gz")
    if gzipped:
        name = name[: -len(".gz")]
    ext = os.path.splitext(name)[1]
    if ext not in formats:
        shown = (ext or "no extension") + (".gz" if gzipped else "")
        raise DataError(path, None, f"unknown file format ({shown}); supported: {supported}")
    return ext, gzipped


def _lines(path: str, gzipped: bool) -> Iterator[Tuple[int, str]]:
    """Yields (line number, decoded line with its newline) for each physical line.

    Lines are split on ``\\n`` only (so ``\\r\\n`` stays with its line for the
    csv module); a UTF-8 byte-order mark at the start is dropped.
    """
    try:
        raw = gzip.open(path, "rb") if gzipped else open(path, "rb")
    except FileNotFoundError:
        raise DataError(path, None, "no such file") from None
    except IsADirectoryError:
        raise DataError(path, None, "is a directory, not a file") from None
    except OSError as e:
        raise DataError(path, None, f"cannot open: {e.strerror or e}") from None
    with raw:
        number = 0
        try:
            for number, data in enumerate(raw, start=1):
                if number == 1 and data.startswith(b"\xef\xbb\xbf"):
                    data = data[3:]
                try:
                    text = data.decode("utf-8")
                except UnicodeDecodeError as e:
                    yield number, _BadLine(f"invalid UTF-8 (byte {e.start + 1} of the line)")
                    continue
                yield number, text
        except (gzip.BadGzipFile, zlib.error, EOFError) as e:
            raise DataError(path, None, f"not a valid gzip file ({e})") from None
        except IsADirectoryError:
            raise DataError(path, None, "is a directory, not a file") from None


class _BadLine(str):
    """Stands in for a line that could not be decoded; its value is the reason."""


def _required_value(path, line, fields, name, present) -> Any:
    """Checks one required field; returns it as a str or raises DataError."""
    if name not in fields:
        listed = ", ".join(repr(f) for f in present) or "none"
        raise DataError(path, line, f"missing required field {name!r} (fields present: {listed})")
    value = fields[name]
    if value is None:
        raise DataError(path, line, f"field {name!r} is null")
    if isinstance(value, (bool, int, float)):
        value = str(value)
    elif not isinstance(value, str):
        raise DataError(
            path, line, f"field {name!r} must be a string or a number, not {_json_type(value)}"
        )
    if not value.strip():
        raise DataError(path, line, f"field {name!r} is empty")
    return value


def _json_type(value) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


# ---------------------------------------------------------------------------
# JSONL


def _jsonl_rows(path, lines, required) -> Iterator[Any]:
    """Yields Record or DataError (row-level) for each non-blank line."""
    for number, text in lines:
        if isinstance(text, _BadLine):
            yield DataError(path, number, str(text))
            continue
        if not text.strip():
            continue
        try:
            obj = json.loads(text.rstrip("\r\n"))
        except json.JSONDecodeError as e:
            yield DataError(path, number, f"malformed JSON: {e.msg} (column {e.colno})")
            continue
        except RecursionError:
            yield DataError(path, number, "malformed JSON: nested too deeply")
            continue
        if not isinstance(obj, dict):
            yield DataError(path, number, f"expected a JSON object, found {_json_type(obj)}")
            continue
        try:
            for name in required:
                obj[name] = _required_value(path, number, obj, name, list(obj))
        except DataError as e:
            yield e
            continue
        yield Record(fields=obj, path=path, line=number)


# ---------------------------------------------------------------------------
# CSV / TSV


_FIELD_SIZE_LIMIT = 1 << 30


class _LineFeed:
    """Feeds decoded lines to csv.reader and remembers physical line numbers."""

    def __init__(self, lines):
        self._lines = iter(lines)
        self.last = 0          # number of the last line handed out
        self.bad: Optional[Tuple[int, str]] = None

    def __iter__(self):
        return self

    def __next__(self) -> str:
        number, text = next(self._lines)
        self.last = number
        if isinstance(text, _BadLine) and self.bad is None:
            self.bad = (number, str(text))
        return text if not isinstance(text, _BadLine) else "\n"


def _delimited_rows(path, lines, required, delimiter) -> Iterator[Any]:
    """Yields Record or DataError (row-level); raises DataError for header problems."""
    if csv.field_size_limit() < _FIELD_SIZE_LIMIT:
        csv.field_size_limit(_FIELD_SIZE_LIMIT)  # the default (128 KiB) is too small for documents
    feed = _LineFeed(lines)
    if delimiter == "\t":
        reader = csv.reader(feed, delimiter="\t", quoting=csv.QUOTE_NONE)
    else:
        reader = csv.reader(feed, delimiter=",")
    header = None
    header_line = 0
    rows = 0  # records and bad rows after the header
    while True:
        start = feed.last + 1
        feed.bad = None
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            raise DataError(path, feed.last, f"cannot parse {_kind(delimiter)} ({e})") from None
        if feed.bad is not None:
            error = DataError(path, feed.bad[0], feed.bad[1])
            if header is None:
                raise error
            rows += 1
            yield error
            continue
        if not row or (len(row) == 1 and not row[0].strip()):
            continue  # blank line
        if header is None:
            header = [name.strip() for name in row]
            header_line = start
            _check_header(path, header_line, header, required)
            continue
        rows += 1
        if len(row) != len(header):
            hint = ""
            if feed.last > start:
                hint = f"; the record runs from line {start} to {feed.last}: is a quote left open?"
            yield DataError(
                path,
                start,
                f"expected {len(header)} columns ({', '.join(header)}), found {len(row)}{hint}",
            )
            continue
        fields = dict(zip(header, row))
        try:
            for name in required:
                _required_value(path, start, fields, name, header)
        except DataError as e:
            yield e
            continue
        yield Record(fields=fields, path=path, line=start)
    if header is None:
        raise DataError(path, None, f"empty file: no header row (a {_kind(delimiter)} file "
                                    "starts with a row of field names)")
    if not rows:
        raise DataError(path, None, f"no records: the file has a header row (line "
                                    f"{header_line}: {', '.join(header)}) and no rows after it")


def _kind(delimiter) -> str:
    return "TSV" if delimiter == "\t" else "CSV"


def _check_header(path, line, header, required):
    shown = ", ".join(repr(h) for h in header)
    seen = set()
    for name in header:
        if name in seen:
            raise DataError(path, line, f"header names field {name!r} twice (header fields: {shown})")
        seen.add(name)
    for name in required:
        if name not in seen:
            hint = ""
            if len(header) == 1 and ("\t" in header[0] or "," in header[0] or ";" in header[0]):
                hint = " -- is the delimiter right for the file extension?"
            raise DataError(
                path, line, f"header has no field {name!r} (header fields: {shown}){hint}"
            )


# ---------------------------------------------------------------------------
# Public entry point


def read_records(
    path,
    required_fields: Sequence[str],
    skip_bad_rows: bool = False,
    skipped: Optional[List[DataError]] = None,
) -> List[Record]:
    """Reads a ``.jsonl``, ``.csv`` or ``.tsv`` file (optionally ``.gz``).

    Args:
      path: the file; its name picks the format.
      required_fields: field names every record must have, each a non-empty
        string (JSONL numbers/booleans are converted with ``str()``).
      skip_bad_rows: if False (default) the first bad row raises DataError.
        If True, bad rows (malformed JSON, not an object, wrong number of
        columns, missing/empty field, invalid UTF-8) are left out and ONE
        warning ``"Skipped N bad rows in PATH (first: PATH:LINE: reason)"`` is
        logged with ``absl.logging.warning``.
      skipped: optional list; with ``skip_bad_rows=True`` the DataError of
        every skipped row is appended to it (so callers can count or report
        them).

    Returns:
      The good records, in file order.

    Raises:
      DataError: always for file-level problems (missing file, unknown format,
        not gzip, CSV/TSV header without a required field or with no rows after it, no
        good records),
        and for the first bad row unless ``skip_bad_rows``.
    """
    path = os.fspath(path)
    if isinstance(required_fields, str):
        required_fields = [required_fields]
    required = list(required_fields)
    ext, gzipped = file_format(path)
    lines = _lines(path, gzipped)
    if ext == ".jsonl":
        rows = _jsonl_rows(path, lines, required)
    else:
        rows = _delimited_rows(path, lines, required, "\t" if ext == ".tsv" else ",")

    records: List[Record] = []
    errors: List[DataError] = []
    for item in rows:
        if isinstance(item, DataError):
            if not skip_bad_rows:
                raise item
            errors.append(item)
        else:
            records.append(item)

    if skipped is not None:
        skipped.extend(errors)
    if not records:
        if errors:
            raise DataError(
                path, None, f"no good records: all {len(errors)} rows are bad (first: {errors[0]})"
            )
        raise DataError(path, None, "no records: the file is empty")
    if errors:
        from absl import logging  # imported here: only needed when rows were skipped

        logging.warning("%s", summarize_skipped(path, errors))
    return records


def summarize_skipped(path, errors: Iterable[DataError]) -> str:
    """The one-line summary logged by ``read_records(..., skip_bad_rows=True)``.

    >>> summarize_skipped("a.csv", [DataError("a.csv", 3, "field 'text' is empty")])
    "Skipped 1 bad rows in a.csv (first: a.csv:3: field 'text' is empty)"
    """
    errors = list(errors)
    first = f" (first: {errors[0]})" if errors else ""
    return f"Skipped {len(errors)} bad rows in {os.fspath(path)}{first}"
