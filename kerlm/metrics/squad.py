"""SQuAD's exact match and F1, with the official evaluation script's normalization.

Written out because the official script (v1.1 / v2.0 `evaluate-v2.0.py`) is not a package;
keras-hub has no QA metrics, and Hugging Face `evaluate` would pull in `datasets`. The
functions follow the script line by line: lower-case, drop punctuation and the articles
a/an/the, collapse whitespace; F1 over the bag of normalized tokens; the maximum over the
gold answers; an unanswerable question (no gold answers) scores 1 only for an empty answer.

Example:
>>> normalize_answer("The  Eiffel-Tower!")
'eiffeltower'
>>> exact_match("the Eiffel Tower", ["Eiffel Tower", "Paris"]), round(f1("Eiffel", ["Eiffel Tower"]), 4)
(1.0, 0.6667)
>>> report = squad_report(["1539", "", "the French"], [["1539"], [], ["French Revolution"]])
>>> round(report["exact_match"], 2), round(report["f1"], 2), report["num_examples"]
(66.67, 88.89, 3)
"""

import collections
import re
import string

_PUNCTUATION = set(string.punctuation)


def normalize_answer(text):
    """Lower text and remove punctuation, articles and extra whitespace."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def _tokens(text):
    return normalize_answer(text).split() if text else []


def _f1_one(prediction, gold):
    predicted, golden = _tokens(prediction), _tokens(gold)
    if not predicted or not golden:  # unanswerable: 1 if both are empty
        return float(predicted == golden)
    common = collections.Counter(predicted) & collections.Counter(golden)
    overlap = sum(common.values())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(predicted), overlap / len(golden)
    return 2 * precision * recall / (precision + recall)


def exact_match(prediction, golds):
    """1.0 if the normalized prediction equals a normalized gold answer ([] : unanswerable)."""
    golds = golds or [""]
    return float(max(normalize_answer(prediction) == normalize_answer(g) for g in golds))


def f1(prediction, golds):
    """The best token-level F1 of the prediction against the gold answers."""
    return max(_f1_one(prediction, g) for g in (golds or [""]))


def squad_report(predictions, golds):
    """`{"exact_match", "f1"}` in percent (as the official script prints) over examples."""
    if len(predictions) != len(golds):
        raise ValueError(f"{len(predictions)} predictions for {len(golds)} questions")
    n = len(predictions)
    return {"exact_match": 100.0 * sum(map(exact_match, predictions, golds)) / n,
            "f1": 100.0 * sum(map(f1, predictions, golds)) / n, "num_examples": n}
