"""English-Spanish Bible verse pairs, embedded with a fixed split by book.

29,470 verse pairs: the World English Bible (2015) and the Reina-Valera 1909,
both public domain (see README.md here). The Spanish is archaic (1909). The
train/dev/test split is stored in the file, made once by
``tools/make_seq2seq_data.py``: whole books are held out, never random
verses, because parallel passages are near-duplicates; dev/test books are
ones without parallel passages elsewhere, and the 7 dev/test verses that still
repeat a train verse (stock greetings, Mic 4:2 ~ Isa 2:3) are removed.

>>> rows = load()
>>> [sum(r.fields["split"] == s for r in rows) for s in SPLITS]
[28114, 420, 936]
>>> sorted(rows[0].fields)
['en', 'es', 'id', 'ref', 'split']
>>> test = load("test")
>>> sorted({book_of(r.fields["ref"]) for r in test}) == sorted(TEST_BOOKS)
True
>>> r = test[0]
>>> r.fields["id"], r.fields["ref"]
('bible-12614', 'Esth 1:1')
>>> r.fields["es"][:31]
'Y ACONTECIÓ en los días de Assu'
"""

from __future__ import annotations

import os
from typing import List, Optional

from kerlm.data.readers import Record, read_records

__all__ = ["PATH", "SPLITS", "FIELDS", "TEST_BOOKS", "DEV_BOOKS", "book_of", "load"]

PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "verses.jsonl.gz")
SPLITS = ("train", "dev", "test")
FIELDS = ("id", "ref", "en", "es", "split")
# Book codes as in the "ref" field; every other book is train.
TEST_BOOKS = ("Esth", "Eccl", "Song", "Jonah", "Mic", "Gal", "1John", "2John", "3John")
DEV_BOOKS = ("Lam", "Joel", "Nah", "Phil", "Titus")


def book_of(ref: str) -> str:
    """The book code of a reference: ``book_of("1John 4:2") == "1John"``."""
    return ref.rsplit(" ", 1)[0]


def load(split: Optional[str] = None) -> List[Record]:
    """Records of the embedded data, in canonical (Genesis to Jude) order.

    Args:
      split: "train", "dev", "test", or None for all rows.

    Each record's ``fields`` are ``{"id", "ref", "en", "es", "split"}`` (all
    str, non-empty); ``path`` is :data:`PATH` and ``line`` the line in it.
    """
    if split not in SPLITS + (None,):
        raise ValueError(f"split must be one of {SPLITS} or None, got {split!r}")
    return [r for r in read_records(PATH, FIELDS) if split is None or r.fields["split"] == split]
