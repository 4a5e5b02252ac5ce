"""Text pairs for sentence embeddings, made from the data sets kerlm embeds.

- `debian`: a Debian package's synopsis (`text_a`) and its long description (`text_b`),
  `kerlm.data.debian_summaries` with its split (by source package, so near-duplicate
  descriptions never cross splits).
- `wiki`: a cloze question (`text_a`) and the sentence of its context that holds the
  answer (`text_b`), `kerlm.data.wiki_cloze_qa` with its split (by article).
- `both`: the two, debian first.

The pairs keep the source's `path` and `line`. `unique_pairs` drops exact repeats;
`retrieval_pool` gives the distinct targets a split's queries are searched against.

Example:
>>> text = "Tolstoy was born in 1828.  He wrote War and Peace. "
>>> [text[s:e] for s, e in sentence_spans(text)]
['Tolstoy was born in 1828.', 'He wrote War and Peace.']
>>> sentence_at(text, text.index("War"))
'He wrote War and Peace.'
>>> r = load("wiki", "dev")[0].fields
>>> r["text_b"].startswith("The Academy Awards") and "<Who or what>" in r["text_a"]
True
>>> retrieval_pool(["b", "a", "b"])
(['b', 'a'], [0, 1, 0])
"""

from __future__ import annotations

import re
from typing import List

from kerlm.data import debian_summaries, wiki_cloze_qa
from kerlm.data.readers import Record

SOURCES = ("debian", "wiki", "both")
FIELDS = ("text_a", "text_b")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def sentence_spans(text: str) -> List[tuple]:
    """`(start, end)` of each sentence of `text` (split after `.`, `!` or `?` and the
    spaces that follow), blank ones left out."""
    spans, start = [], 0
    for match in _SENTENCE_END.finditer(text):
        spans.append((start, match.start()))
        start = match.end()
    spans.append((start, len(text)))
    return [(s, e) for s, e in spans if text[s:e].strip()]


def sentence_at(text: str, offset: int) -> str:
    """The sentence of `text` holding character `offset` (the next one if `offset` falls
    in the spaces between two; the last one past the end)."""
    spans = sentence_spans(text) or [(0, len(text))]
    start, end = next(((s, e) for s, e in spans if offset < e), spans[-1])
    return text[start:end]


def _pair(record, first, second):
    return Record({"text_a": first, "text_b": second}, record.path, record.line)


def debian(split: str) -> List[Record]:
    """Synopsis → long description pairs of `split`."""
    return [_pair(r, r.fields["summary"], r.fields["document"])
            for r in debian_summaries.load(split)]


def wiki(split: str) -> List[Record]:
    """Question → answer-holding sentence pairs of `split` (one per question)."""
    pairs = []
    for r in wiki_cloze_qa.load(split):
        answer = r.fields["answers"][0]
        pairs.append(_pair(r, r.fields["question"],
                           sentence_at(r.fields["context"], answer["answer_start"])))
    return pairs


def load(source: str, split: str) -> List[Record]:
    """The unique pairs of `source` ("debian", "wiki" or "both") for `split`."""
    if source not in SOURCES:
        raise ValueError(f"unknown pair source {source!r}; choose from {', '.join(SOURCES)}")
    records = (debian(split) if source != "wiki" else []) + \
        (wiki(split) if source != "debian" else [])
    return unique_pairs(records, *FIELDS)


def unique_pairs(records, first, second) -> List[Record]:
    """`records` without repeats of an earlier record's (`first`, `second`) texts."""
    seen, kept = set(), []
    for r in records:
        key = (r.fields[first], r.fields[second])
        if key not in seen:
            seen.add(key)
            kept.append(r)
    return kept


def retrieval_pool(targets) -> tuple:
    """`(pool, gold)`: the distinct texts of `targets` in first-seen order, and the index
    in `pool` of each target."""
    index = {}
    gold = [index.setdefault(text, len(index)) for text in targets]
    return list(index), gold
