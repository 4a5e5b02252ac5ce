"""Wikipedia paragraphs with cloze questions, in SQuAD v1.1 JSON, embedded with a fixed split.

Real Wikipedia paragraphs (CC BY-SA 3.0) whose questions are synthetic: a sentence of the
paragraph with the answer span replaced by `<In what year>` or `<Who or what>` (see README.md
here). The questions overlap their context word for word, so scores are far higher than on
real SQuAD: report them as scores on cloze questions. Split by article (75 / 9 / 9).

>>> [len(load(split)) for split in SPLITS]
[4011, 349, 321]
>>> r = load("dev")[0]
>>> sorted(r.fields), r.fields["answers"][0]["text"] in r.fields["context"]
(['answers', 'context', 'id', 'question', 'title'], True)
"""

from __future__ import annotations

import os
from typing import List

from kerlm.data.readers import Record
from kerlm.data.squad import read_squad_json

SPLITS = ("train", "dev", "test")
DIRECTORY = os.path.dirname(__file__)


def load(split: str) -> List[Record]:
    """The records of one split ("train", "dev" or "test")."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose from {SPLITS}")
    return read_squad_json(os.path.join(DIRECTORY, f"{split}.json.gz"))
