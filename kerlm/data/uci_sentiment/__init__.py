"""The UCI "Sentiment Labelled Sentences" data set, embedded with a fixed split.

2,982 English sentences from Amazon product reviews, IMDb movie reviews and
Yelp restaurant reviews, each labelled ``positive`` or ``negative``
(Kotzias, Denil, de Freitas, Smyth, KDD 2015; CC BY 4.0; see README.md here).
Duplicates are removed and the train/dev/test split (80/10/10, stratified by
label and domain) is stored in the file, made once by
``tools/make_uci_sentiment_split.py``.

>>> train = load("train")
>>> len(train), sorted({r.fields["label"] for r in train})
(2384, ['negative', 'positive'])
>>> r = train[0]
>>> sorted(r.fields)
['domain', 'id', 'label', 'split', 'text']
>>> r.fields["id"], r.fields["domain"]
('uci-0001', 'amazon')
>>> len(load("test", domains=["imdb"]))  # cross-domain: test on imdb only
100
"""

from __future__ import annotations

import os
from typing import Iterable, List, Optional

from kerlm.data.readers import Record, read_records

__all__ = ["PATH", "SPLITS", "LABELS", "DOMAINS", "FIELDS", "load"]

PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sentences.jsonl.gz")
SPLITS = ("train", "dev", "test")
LABELS = ("negative", "positive")
DOMAINS = ("amazon", "imdb", "yelp")
FIELDS = ("id", "text", "label", "domain", "split")


def load(split: Optional[str] = None, domains: Optional[Iterable[str]] = None) -> List[Record]:
    """Records of the embedded data, in file order.

    Args:
      split: "train", "dev", "test", or None for all rows.
      domains: None for all, or a list drawn from ("amazon", "imdb", "yelp"),
        e.g. ``["amazon", "yelp"]`` to train on those and test on ``["imdb"]``.

    Each record's ``fields`` are ``{"id", "text", "label", "domain", "split"}``
    (all str); ``path`` is :data:`PATH` and ``line`` the line in it.
    """
    if split not in SPLITS + (None,):
        raise ValueError(f"split must be one of {SPLITS} or None, got {split!r}")
    if domains is not None:
        domains = [domains] if isinstance(domains, str) else list(domains)
        unknown = [d for d in domains if d not in DOMAINS]
        if unknown or not domains:
            raise ValueError(f"domains must be a non-empty list drawn from {DOMAINS}, got {domains!r}")
    return [
        r
        for r in read_records(PATH, FIELDS)
        if (split is None or r.fields["split"] == split)
        and (domains is None or r.fields["domain"] in domains)
    ]
