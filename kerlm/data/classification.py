"""Label vocabularies and (text, label) extraction for classification data.

Pure Python (no TensorFlow). Labels are strings; a :class:`LabelVocabulary`
built from the TRAINING records maps them to class ids ``0..n-1`` (sorted
order) and turns a label the training data never had into a :class:`DataError`
that names the file and line.

>>> from kerlm.data.readers import Record
>>> train = [Record({"text": "good", "label": "pos"}, "train.csv", 2),
...          Record({"text": "bad", "label": "neg"}, "train.csv", 3)]
>>> vocab = LabelVocabulary.from_records(train, "label")
>>> vocab.labels, len(vocab)
(['neg', 'pos'], 2)
>>> vocab.encode(train, "label")
[1, 0]
>>> vocab.encode([Record({"text": "meh", "label": "mixed"}, "dev.csv", 9)], "label")
Traceback (most recent call last):
...
kerlm.data.readers.DataError: dev.csv:9: label 'mixed' never appears in the training data (known labels: neg, pos)
>>> texts_and_labels(train, "text", "label")
(['good', 'bad'], ['pos', 'neg'])

With ``--skip_bad_rows`` such a record is left out and counted instead, as
:func:`kerlm.data.readers.read_records` does with bad rows (and one warning per file,
``Skipped N bad rows in PATH (first: ...)``, is logged):

>>> dev = [Record({"text": "meh", "label": "mixed"}, "dev.csv", 9),
...        Record({"text": "fine", "label": "pos"}, "dev.csv", 10)]
>>> skipped = []
>>> [r.line for r in vocab.known(dev, "label", skip_bad_rows=True, skipped=skipped)]
[10]
>>> [str(e) for e in skipped]
["dev.csv:9: label 'mixed' never appears in the training data (known labels: neg, pos)"]
"""

from __future__ import annotations

import json
import os
from typing import Iterable, List, Optional, Sequence, Tuple

from kerlm.data.readers import DataError, Record, summarize_skipped

__all__ = ["LabelVocabulary", "texts_and_labels"]


def _field(record: Record, name: str) -> str:
    """The field as a str; DataError naming the record's file and line if absent/empty."""
    if name not in record.fields:
        present = ", ".join(repr(f) for f in record.fields) or "none"
        raise DataError(
            record.path, record.line, f"missing required field {name!r} (fields present: {present})"
        )
    value = record.fields[name]
    if value is None or (isinstance(value, (dict, list))):
        raise DataError(record.path, record.line, f"field {name!r} must be a string, not {value!r}")
    value = str(value)
    if not value.strip():
        raise DataError(record.path, record.line, f"field {name!r} is empty")
    return value


def _paths(records: Sequence[Record]) -> str:
    seen = []
    for r in records:
        if r.path not in seen:
            seen.append(r.path)
    return ", ".join(seen)


class LabelVocabulary:
    """An ordered list of unique class labels; class id = position in the list.

    >>> vocab = LabelVocabulary(["negative", "positive"])
    >>> vocab.index("positive"), vocab.decode([1, 0])
    (1, ['positive', 'negative'])
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "labels.json")
    >>> vocab.save(path)
    >>> LabelVocabulary.load(path) == vocab
    True
    """

    def __init__(self, labels: Iterable[str]):
        labels = list(labels)
        for label in labels:
            if not isinstance(label, str):
                raise TypeError(f"labels must be strings, got {label!r}")
        if len(set(labels)) != len(labels):
            dupes = sorted({l for l in labels if labels.count(l) > 1})
            raise ValueError(f"labels must be unique; repeated: {dupes}")
        self._labels = labels
        self._ids = {label: i for i, label in enumerate(labels)}

    @property
    def labels(self) -> List[str]:
        """The labels in class-id order (a copy)."""
        return list(self._labels)

    def __len__(self) -> int:
        return len(self._labels)

    def __eq__(self, other) -> bool:
        return isinstance(other, LabelVocabulary) and self._labels == other._labels

    def __repr__(self) -> str:
        return f"LabelVocabulary({self._labels!r})"

    @classmethod
    def from_records(cls, records: Sequence[Record], label_field: str) -> "LabelVocabulary":
        """The sorted unique labels of ``records`` (the training data).

        Raises DataError if a record lacks the label or there are fewer than 2
        classes (a classifier needs at least two).
        """
        records = list(records)
        if not records:
            raise ValueError("no training records to build a label vocabulary from")
        labels = sorted({_field(r, label_field) for r in records})
        if len(labels) < 2:
            raise DataError(
                _paths(records),
                None,
                f"field {label_field!r} has only {len(labels)} distinct label ({labels[0]!r}) in "
                f"{len(records)} training records; classification needs at least 2 classes",
            )
        return cls(labels)

    def index(self, label: str) -> int:
        """The class id of ``label``; KeyError if unknown."""
        return self._ids[label]

    def encode(self, records: Sequence[Record], label_field: str) -> List[int]:
        """Class ids of the records' labels, or DataError for a label never seen in training."""
        ids = []
        for record in records:
            label = _field(record, label_field)
            if label not in self._ids:
                raise self._unknown(record, label)
            ids.append(self._ids[label])
        return ids

    def known(
        self,
        records: Sequence[Record],
        label_field: str,
        skip_bad_rows: bool = False,
        skipped: Optional[List[DataError]] = None,
    ) -> List[Record]:
        """The records whose label is in the vocabulary (so :meth:`encode` takes them).

        A label training never saw is the DataError :meth:`encode` raises, naming the
        file and line; with ``skip_bad_rows`` its record is left out instead, the error
        appended to ``skipped`` and one warning per file logged with
        ``absl.logging.warning``, the ``Skipped N bad rows in PATH (first: ...)`` line of
        :func:`~kerlm.data.readers.read_records`. Records all unknown stay a DataError.
        """
        kept, errors = [], []
        for record in records:
            label = _field(record, label_field)
            if label in self._ids:
                kept.append(record)
                continue
            error = self._unknown(record, label)
            if not skip_bad_rows:
                raise error
            errors.append(error)
        if skipped is not None:
            skipped.extend(errors)
        if errors and not kept:
            raise DataError(_paths(records), None, f"no good records: all {len(errors)} rows "
                                                   f"have labels training never saw (first: "
                                                   f"{errors[0]})")
        if errors:
            from absl import logging  # imported here: only needed when rows were skipped

            by_path = {}
            for error in errors:
                by_path.setdefault(error.path, []).append(error)
            for path, path_errors in by_path.items():
                logging.warning("%s", summarize_skipped(path, path_errors))
        return kept

    def _unknown(self, record: Record, label: str) -> DataError:
        return DataError(record.path, record.line,
                         f"label {label!r} never appears in the training data "
                         f"(known labels: {', '.join(self._labels)})")

    def decode(self, ids: Iterable[int]) -> List[str]:
        """Labels of class ids."""
        return [self._labels[int(i)] for i in ids]

    def save(self, path) -> None:
        """Writes ``{"labels": [...]}`` as UTF-8 JSON."""
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"labels": self._labels}, f, ensure_ascii=False, indent=1)
            f.write("\n")

    @classmethod
    def load(cls, path) -> "LabelVocabulary":
        """Reads a file written by :meth:`save`; DataError if it is missing or malformed."""
        path = os.fspath(path)
        try:
            with open(path, encoding="utf-8") as f:
                obj = json.load(f)
        except FileNotFoundError:
            raise DataError(path, None, "no such file") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise DataError(path, getattr(e, "lineno", None), f"not a label file: {e}") from None
        labels = obj.get("labels") if isinstance(obj, dict) else None
        if not isinstance(labels, list) or not all(isinstance(l, str) for l in labels):
            raise DataError(path, None, 'not a label file: expected {"labels": [strings]}')
        try:
            return cls(labels)
        except ValueError as e:
            raise DataError(path, None, str(e)) from None


def texts_and_labels(
    records: Sequence[Record], text_field: str, label_field: str
) -> Tuple[List[str], List[str]]:
    """``(texts, labels)`` as two parallel lists of str; DataError for a missing/empty field."""
    texts, labels = [], []
    for record in records:
        texts.append(_field(record, text_field))
        labels.append(_field(record, label_field))
    return texts, labels
