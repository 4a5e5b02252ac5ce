"""Debian package descriptions and their synopses, embedded with a fixed split.

60,476 summarization pairs: a package's long description (``document``,
median 44 words, paragraphs separated by ``"\\n"``) and the one-line
synopsis its maintainer wrote (``summary``, median 7 words), from the
Debian archive's ``Translation-en`` (see README.md here). The train/dev/test
split (about 90/5/5) is stored in the file, made once by
``tools/make_seq2seq_data.py``: by group, not by row, so that binary packages
of one source package, and descriptions sharing a first sentence or a
synopsis, never land in two splits.

>>> rows = load()
>>> [sum(r.fields["split"] == s for r in rows) for s in SPLITS]
[54737, 2950, 2789]
>>> sorted(rows[0].fields)
['document', 'id', 'package', 'split', 'summary']
>>> r = load("test")[0]
>>> r.fields["id"], r.fields["package"], r.fields["summary"]
('debsum-00028', '7zip', '7-Zip file archiver with a high compression ratio')
"""

from __future__ import annotations

import os
from typing import List, Optional

from kerlm.data.readers import Record, read_records

__all__ = ["PATH", "SPLITS", "FIELDS", "load"]

PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "descriptions.jsonl.gz")
SPLITS = ("train", "dev", "test")
FIELDS = ("id", "package", "document", "summary", "split")


def load(split: Optional[str] = None) -> List[Record]:
    """Records of the embedded data, in source (package name) order.

    Args:
      split: "train", "dev", "test", or None for all rows.

    Each record's ``fields`` are ``{"id", "package", "document", "summary",
    "split"}`` (all str, non-empty); ``path`` is :data:`PATH` and ``line`` the
    line in it.
    """
    if split not in SPLITS + (None,):
        raise ValueError(f"split must be one of {SPLITS} or None, got {split!r}")
    return [r for r in read_records(PATH, FIELDS) if split is None or r.fields["split"] == split]
