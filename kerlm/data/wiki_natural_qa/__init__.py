"""Natural questions, written by hand, on the Wikipedia paragraphs of wiki_cloze_qa's test split.

A second evaluation set for extractive QA: 252 real questions ("Who founded the Berlin
Society of Anthropology?", "When did Andorra first take part in the Olympics?"), worded
apart from their context, each answered by a short span of it, over the 9 test articles of
`kerlm.data.wiki_cloze_qa` (same titles and paragraphs). SQuAD v1.1 JSON; see README.md
here. There is one split, "test": the paragraphs are never in wiki_cloze_qa's training split.

>>> records = load()
>>> len(records), len({r.fields["title"] for r in records})
(252, 9)
>>> r = records[0]
>>> r.fields["question"], r.fields["answers"][0]["text"]
('Which organization hosts the Oscars ceremony?', 'Academy of Motion Picture Arts and Sciences')
"""

from __future__ import annotations

import os
from typing import List

from kerlm.data.readers import Record
from kerlm.data.squad import read_squad_json

SPLITS = ("test",)
DIRECTORY = os.path.dirname(__file__)


def load(split: str = "test") -> List[Record]:
    """The records of the one split, "test"."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose from {SPLITS}")
    return read_squad_json(os.path.join(DIRECTORY, f"{split}.json.gz"))
