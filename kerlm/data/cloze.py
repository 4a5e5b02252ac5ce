"""Cloze questions made from paragraphs: more QA training data from unlabelled text.

A sentence of a context becomes a question by cutting out a span: a year becomes
`<In what year>`, a run of two or more capitalized words `<Who or what>`, and the final
full stop a question mark, the way the embedded Wikipedia cloze questions were made
(cloze pre-training for QA: Dhingra et al., 2018, "Simple and Effective Semi-Supervised
Question Answering"). Only training contexts are used, so nothing leaks from dev or test.

Example:
>>> from kerlm.data.readers import Record
>>> context = "Tolstoy was born in 1828. He wrote War and Peace in Yasnaya Polyana."
>>> made = cloze_questions([Record({"context": context}, "x", 1)], seed=0)
>>> sorted((r.fields["question"], r.fields["answers"][0]["text"]) for r in made)
[('He wrote War and Peace in <Who or what>?', 'Yasnaya Polyana'), ('Tolstoy was born in <In what year>?', '1828')]
"""

from __future__ import annotations

import random
import re
from typing import List

from kerlm.data.readers import Record

_SENTENCE = re.compile(r"[^.!?]+(?:[.!?]+|$)")
_YEAR = re.compile(r"\b(?:1[0-9]|20)\d\d\b")
_NAME = re.compile(r"\b[A-Z][\w'\-]*(?:\s+[A-Z][\w'\-]*)+")
YEAR, NAME = "<In what year>", "<Who or what>"


def _candidates(sentence, offset):
    """(absolute start, text, placeholder) spans of a sentence that starts at `offset`."""
    spans = [(m.start(), m.group(), YEAR) for m in _YEAR.finditer(sentence)]
    lead = len(sentence) - len(sentence.lstrip())
    for m in _NAME.finditer(sentence):
        start, text = m.start(), m.group()
        if start == lead:  # a sentence's first word is capitalized anyway: drop it
            rest = text.partition(" ")[2]
            rest = rest.lstrip()
            if " " not in rest:
                continue
            start, text = start + len(text) - len(rest), rest
        spans.append((start, text, NAME))
    return [(offset + start, text, placeholder) for start, text, placeholder in spans]


def cloze_questions(records, seed=0, per_sentence=1) -> List[Record]:
    """Cloze QA records (`question`, `context`, `answers`, `id`) from the distinct contexts
    of `records`: up to `per_sentence` questions per sentence, spans drawn at random."""
    rng = random.Random(seed)
    existing = {r.fields.get("question") for r in records}
    made = []
    for context in dict.fromkeys(r.fields["context"] for r in records):
        for m in _SENTENCE.finditer(context):
            sentence = m.group()
            spans = _candidates(sentence, m.start())
            for start, text, placeholder in rng.sample(spans, min(per_sentence, len(spans))):
                head = context[m.start():start].lstrip()
                tail = context[start + len(text):m.end()].rstrip().rstrip(".!?")
                question = f"{head}{placeholder}{tail}?"
                if question in existing:
                    continue
                existing.add(question)
                made.append(Record({"id": f"cloze-{len(made)}", "question": question,
                                    "context": context,
                                    "answers": [{"text": text, "answer_start": start}]},
                                   "<cloze>", len(made) + 1))
    return made
