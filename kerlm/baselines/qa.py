"""Answer-finding baselines for extractive QA, reported beside the model's scores.

Example:
>>> context = "Tolstoy was born in 1828. He wrote War and Peace in Moscow."
>>> sentence_overlap([("Who wrote War and Peace?", context)])
['He wrote War and Peace in Moscow.']
>>> cloze_gap([("He wrote <Who or what> in Moscow?", context)])
['War and Peace']
"""

import re

from kerlm.data.sentence_pairs import sentence_spans

_WORD = re.compile(r"\w+")
_GAP = re.compile(r"<[^<>]*>")


def _words(text):
    return [w.lower() for w in _WORD.findall(text)]


def _best_sentence(question, context):
    question_words = set(_words(_GAP.sub(" ", question)))
    sentences = [context[s:e] for s, e in sentence_spans(context)] or [context]
    return max(sentences, key=lambda s: len(question_words & set(_words(s))))


def sentence_overlap(pairs):
    """For each `(question, context)`: the context sentence sharing most words with the
    question (the baseline of the SQuAD paper's sliding-window family)."""
    return [_best_sentence(q, c) for q, c in pairs]


def cloze_gap(pairs):
    """For each `(question, context)`: the words of the best-overlapping sentence that the
    question lacks, as one contiguous stretch of that sentence. It exploits how cloze
    questions are made (a sentence with its answer cut out), so it is a ceiling for lexical
    matching on cloze data, not a QA method."""
    answers = []
    for question, context in pairs:
        sentence = _best_sentence(question, context)
        known = set(_words(_GAP.sub(" ", question)))
        spans = [m for m in _WORD.finditer(sentence) if m.group().lower() not in known]
        answers.append(sentence[spans[0].start():spans[-1].end()] if spans else "")
    return answers
