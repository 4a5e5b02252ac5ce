"""English-German Debian package descriptions (DDTP), embedded with a fixed split.

32,789 pairs of English package-description paragraphs and their German
translations from the Debian Description Translation Project (Debian archive
``Translation-en``/``Translation-de``; see README.md here): technical text,
median 10 words, some of it bullet lists with one item a line (``"\\n"``).
The train/dev/test split (about 90/5/5) is stored in the file, made once by
``tools/make_seq2seq_data.py``: by group, not by row, so that a text shared
by several packages, or its variants, never lands in two splits.

>>> rows = load()
>>> [sum(r.fields["split"] == s for r in rows) for s in SPLITS]
[29486, 1706, 1597]
>>> sorted(rows[0].fields)
['de', 'en', 'id', 'split']
>>> dev = load("dev")
>>> r = dev[0]
>>> r.fields["id"]
'ddtp-00015'
>>> print(r.fields["en"])
* Support for a wide range of popular languages
* Easy to add a new language for highlighting
* Highly customisable output formats
"""

from __future__ import annotations

import os
from typing import List, Optional

from kerlm.data.readers import Record, read_records

__all__ = ["PATH", "SPLITS", "FIELDS", "load"]

PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "descriptions.jsonl.gz")
SPLITS = ("train", "dev", "test")
FIELDS = ("id", "en", "de", "split")


def load(split: Optional[str] = None) -> List[Record]:
    """Records of the embedded data, in source order.

    Args:
      split: "train", "dev", "test", or None for all rows.

    Each record's ``fields`` are ``{"id", "en", "de", "split"}`` (all str,
    non-empty); ``path`` is :data:`PATH` and ``line`` the line in it.
    """
    if split not in SPLITS + (None,):
        raise ValueError(f"split must be one of {SPLITS} or None, got {split!r}")
    return [r for r in read_records(PATH, FIELDS) if split is None or r.fields["split"] == split]
