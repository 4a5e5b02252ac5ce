"""Extractive QA records from SQuAD v1.1 / v2.0 JSON or JSONL, with answer checks.

Every record has the fields `id`, `question`, `context` and `answers` (a list of
`{"text", "answer_start"}`, empty for a v2.0 unanswerable question). An answer whose
`answer_start` does not point at its `text` in the context is a `DataError` naming the file,
the question and both texts: a silently shifted span would train the model on wrong labels.

JSONL: one `{"question", "context", "answers"}` object per line (`id` optional; `answers`
may be `[]` for unanswerable questions).

Example:
>>> import json, os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "train.json")
>>> squad = {"version": "1.1", "data": [{"title": "T", "paragraphs": [{
...     "context": "Paris is the capital of France.",
...     "qas": [{"id": "q1", "question": "What is the capital of France?",
...              "answers": [{"text": "Paris", "answer_start": 0}]}]}]}]}
>>> with open(path, "w") as f:
...     json.dump(squad, f)
>>> [(r.fields["id"], r.fields["answers"][0]["text"]) for r in read_qa(path)]
[('q1', 'Paris')]
>>> squad["data"][0]["paragraphs"][0]["qas"][0]["answers"][0]["answer_start"] = 3
>>> with open(path, "w") as f:
...     json.dump(squad, f)
>>> read_qa(path)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
kerlm.data.readers.DataError: ...train.json: data[0].paragraphs[0].qas[0] (id 'q1'): answer 'Paris' does not match the context at answer_start 3 ('is is')
"""

from __future__ import annotations

import gzip
import json
from typing import List

from kerlm.data.readers import DataError, Record, read_records

FIELDS = ("question", "context", "answers")


def _check_answers(path, line, where, qid, context, answers):
    if not isinstance(answers, list):
        raise DataError(path, line, f"{where}: 'answers' must be a list, got "
                                    f"{type(answers).__name__}")
    checked = []
    for answer in answers:
        if not isinstance(answer, dict) or "text" not in answer or "answer_start" not in answer:
            raise DataError(path, line, f"{where} (id {qid!r}): each answer needs 'text' and "
                                        f"'answer_start', got {answer!r}")
        text, start = str(answer["text"]), answer["answer_start"]
        if not isinstance(start, int) or isinstance(start, bool) or start < 0:
            raise DataError(path, line, f"{where} (id {qid!r}): answer_start must be a "
                                        f"non-negative integer, got {start!r}")
        found = context[start:start + len(text)]
        if found != text:
            raise DataError(path, line, f"{where} (id {qid!r}): answer {text!r} does not "
                                        f"match the context at answer_start {start} "
                                        f"({found!r})")
        checked.append({"text": text, "answer_start": start})
    return checked


def _open(path):
    return gzip.open(path, "rt", encoding="utf-8") if path.endswith(".gz") else \
        open(path, encoding="utf-8")


def read_squad_json(path) -> List[Record]:
    """Records of a SQuAD v1.1 / v2.0 JSON file (`{"data": [{"paragraphs": [...]}]}`)."""
    try:
        with _open(path) as f:
            squad = json.load(f)
    except json.JSONDecodeError as e:
        raise DataError(path, e.lineno, f"invalid JSON: {e.msg}") from e
    if not isinstance(squad, dict) or not isinstance(squad.get("data"), list):
        raise DataError(path, None, "not SQuAD JSON: expected {\"data\": [articles with "
                                    "\"paragraphs\"]}")
    records = []
    for i, article in enumerate(squad["data"]):
        for j, paragraph in enumerate(article.get("paragraphs", [])):
            context = paragraph.get("context")
            if not isinstance(context, str) or not context.strip():
                raise DataError(path, None, f"data[{i}].paragraphs[{j}]: missing or empty "
                                            "'context'")
            for k, qa in enumerate(paragraph.get("qas", [])):
                where = f"data[{i}].paragraphs[{j}].qas[{k}]"
                qid = str(qa.get("id", f"{i}-{j}-{k}"))
                question = qa.get("question")
                if not isinstance(question, str) or not question.strip():
                    raise DataError(path, None, f"{where} (id {qid!r}): missing or empty "
                                                "'question'")
                impossible = bool(qa.get("is_impossible", False))
                answers = [] if impossible else qa.get("answers", [])
                answers = _check_answers(path, None, where, qid, context, answers)
                if not answers and not impossible:
                    raise DataError(path, None, f"{where} (id {qid!r}): no answers and not "
                                                "marked is_impossible")
                records.append(Record({"id": qid, "question": question, "context": context,
                                       "answers": answers, "title": article.get("title", "")},
                                      path, k + 1))
    if not records:
        raise DataError(path, None, "no questions found")
    return records


def read_qa_jsonl(path, skip_bad_rows=False) -> List[Record]:
    """Records of a JSONL file with `question`, `context` and `answers` per line."""
    rows = read_records(path, ["question", "context"], skip_bad_rows=skip_bad_rows)
    records = []
    for n, row in enumerate(rows):
        fields = row.fields
        if "answers" not in fields:
            raise DataError(path, row.line, "field 'answers' is missing (use [] for an "
                                            "unanswerable question)")
        answers = _check_answers(path, row.line, "answers", fields.get("id", n),
                                 fields["context"], fields["answers"])
        records.append(Record({"id": str(fields.get("id", n)), "question": fields["question"],
                               "context": fields["context"], "answers": answers},
                              row.path, row.line))
    return records


def read_qa(path, skip_bad_rows=False) -> List[Record]:
    """Records of a SQuAD JSON (`.json`, `.json.gz`) or a JSONL file."""
    name = str(path).lower()
    if name.endswith(".json") or name.endswith(".json.gz"):
        return read_squad_json(path)
    if name.endswith(".jsonl") or name.endswith(".jsonl.gz"):
        return read_qa_jsonl(path, skip_bad_rows)
    raise DataError(path, None, "QA data must be SQuAD JSON (.json) or JSONL (.jsonl), "
                                "optionally .gz")
