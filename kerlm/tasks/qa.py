"""Extractive question answering: a question and a context in, the answer span out."""

import dataclasses
import json
import os

import keras
import numpy as np
import tensorflow as tf

from kerlm import baselines, heads, preprocessing, tokenizers
from kerlm.config import ConfigError, TaskConfig, field
from kerlm.data import cloze, squad, wiki_cloze_qa, wiki_natural_qa
from kerlm.metrics import squad_report
from kerlm.tasks import registry
from kerlm.tasks.base import Task

QA_FILE = "qa.json"  # what training data decided: whether unanswerable questions exist
EXAMPLES = 4


@dataclasses.dataclass
class QAConfig(TaskConfig):
    max_query_length: int = field(64, "QA: question pieces kept (the rest is cut).")
    doc_stride: int = field(128, "QA: a context longer than the sequence is read in windows "
                                 "starting every doc_stride pieces.")
    cloze_questions: int = field(0, "QA: also train on up to N cloze questions per sentence "
                                    "of the training contexts (a year or a name cut out), "
                                    "made by kerlm.data.cloze.")
    max_answer_length: int = field(30, "QA: longest answer span, in word pieces.",
                                   resumable=True)
    n_best_size: int = field(1, "QA: also return the N best spans of each question "
                                "(n_best_answer, n_best_start, ... outputs) when N > 1.",
                             resumable=True)
    null_score_diff_threshold: float = field(0.0, "QA with unanswerable questions (SQuAD "
                                                  "v2.0): answer nothing when the no-answer "
                                                  "score beats the best span by more than "
                                                  "this.", resumable=True)


@registry.register("qa", QAConfig)
class QATask(Task):
    """Find each question's answer in its context (SQuAD v1.1, or v2.0 with unanswerable
    questions). Reads SQuAD JSON or JSONL (`question`, `context`, `answers`); without files
    it trains on the embedded Wikipedia cloze questions. `apps/evaluate.py --split=natural`
    scores a run on the embedded natural questions of the test articles too.

    Long contexts are read in windows (`--doc_stride`), the answer is the best span over all
    windows (`--max_answer_length`), mapped back to the exact characters of the context. A
    model trained on data with unanswerable questions may answer "" (v2.0 behaviour); one
    trained on v1.1 data always answers.
    """

    capability = "encode"  # a causal decoder's early tokens cannot see the question's end

    def __init__(self, config):
        super().__init__(config)
        for flag in ("max_answer_length", "n_best_size"):
            if getattr(self.options, flag) < 1:
                raise ConfigError(f"--{flag} must be at least 1, got "
                                  f"{getattr(self.options, flag)}")
        self.preprocessor = None
        self.allow_null = False

    # Data ---------------------------------------------------------------------------------
    def fields(self):
        return squad.FIELDS

    def embedded(self, split):
        return wiki_cloze_qa.load(split)

    def read_file(self, path):
        return squad.read_qa(path, skip_bad_rows=self.config.data.skip_bad_rows)

    def evaluation_splits(self):
        """Also "natural": the embedded natural questions on the test articles."""
        return ("dev", "test", "natural")

    def read(self, split):
        """The split's records; training adds `--cloze_questions` made from its contexts.
        "natural" is always the embedded `kerlm.data.wiki_natural_qa` set (natural questions
        on wiki_cloze_qa's test articles), whatever the data files.

        >>> from kerlm import tasks
        >>> task = tasks.get_task(tasks.default_config("qa", {"data.test_data": "my.json"}))
        >>> records = task.read("natural")
        >>> len(records), records[0].fields["id"], "natural" in task.evaluation_splits()
        (252, 'natural-0001', True)
        """
        if split == "natural":
            return wiki_natural_qa.load("test")
        records = super().read(split)
        per_sentence = self.options.cloze_questions
        if split == "train" and per_sentence:
            records = records + cloze.cloze_questions(records, self.config.train.seed,
                                                      per_sentence)
        return records

    @staticmethod
    def pairs(records):
        return [(r.fields["question"], r.fields["context"]) for r in records]

    # Assets -------------------------------------------------------------------------------
    @staticmethod
    def vocabulary_texts(records):
        """Each context once, and the questions."""
        contexts = list(dict.fromkeys(r.fields["context"] for r in records))
        return contexts + [r.fields["question"] for r in records]

    def prepare(self, train_records, model_dir):
        model_config = self.config.model
        tokenizer = self.vocabulary(lambda: tokenizers.WordPieceTokenizer.learn(
            self.vocabulary_texts(train_records), model_config.vocabulary_size))
        self.allow_null = any(not r.fields["answers"] for r in train_records)
        tokenizer.save(model_dir)
        with open(os.path.join(model_dir, QA_FILE), "w") as f:
            json.dump({"allow_null": self.allow_null}, f)
        self._make_preprocessor(tokenizer)

    def assets(self):
        return {"allow_null": self.allow_null}

    def restore(self, model_dir):
        with open(os.path.join(model_dir, QA_FILE)) as f:
            self.allow_null = json.load(f)["allow_null"]
        self._make_preprocessor(tokenizers.load(model_dir))

    def _make_preprocessor(self, tokenizer):
        o = self.options
        options = dict(max_query_length=o.max_query_length, doc_stride=o.doc_stride)
        try:
            self.preprocessor = preprocessing.QAPreprocessor(tokenizer, o.sequence_length,
                                                             **options)
        except ValueError as e:
            raise ConfigError(f"--sequence_length={o.sequence_length} "
                              f"--max_query_length={o.max_query_length} "
                              f"--doc_stride={o.doc_stride}: {e}") from e

    # Features -----------------------------------------------------------------------------
    def windows(self, records, batch_size=256):
        """Numpy `QAPreprocessor` rows of all records (tokenized in batches) and labels."""
        parts = []
        for start in range(0, len(records), batch_size):
            chunk = records[start:start + batch_size]
            questions, contexts = zip(*self.pairs(chunk))
            rows = {k: v.numpy() for k, v in self.preprocessor(tf.constant(questions),
                                                               tf.constant(contexts)).items()}
            rows["example_index"] = rows["example_index"] + start
            parts.append(rows)
        rows = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        spans = []
        for r in records:
            answers = r.fields["answers"]
            spans.append(preprocessing.byte_span(r.fields["context"], answers[0]["answer_start"],
                                                 answers[0]["text"]) if answers else None)
        return rows, preprocessing.span_labels(rows, spans)

    def dataset(self, records, training, batch_size=None):
        """`(features, [start, end] labels)` batches of windows; a window that does not hold
        the answer is labelled `[CLS]` (position 0)."""
        rows, labels = self.windows(records)
        features = {k: rows[k] for k in ("token_ids", "padding_mask", "segment_ids")}
        ds = tf.data.Dataset.from_tensor_slices((features, labels))
        if training:
            ds = ds.shuffle(len(labels), seed=self.config.train.seed,
                            reshuffle_each_iteration=True)
        ds = ds.batch(batch_size or self.config.train.batch_size)
        ds = ds.map(lambda x, y: (preprocessing.trim_batch(x), y))
        return ds.prefetch(tf.data.AUTOTUNE)

    # Model --------------------------------------------------------------------------------
    def build_model(self, backbone):
        """The span labeler on `backbone` (`self.backbone()`, or a multi-task model's)."""
        self.check_backbone(backbone.capabilities, f"--model={self.config.model.preset}")
        return heads.SpanLabeler(backbone, dropout=self.config.model.dropout)

    def loss(self):
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def metrics(self):
        return [keras.metrics.SparseCategoricalAccuracy(name="span_accuracy")]

    # Evaluation and prediction ------------------------------------------------------------
    def answer(self, model, pairs):
        """`[{"answer", "start", "end", "score"}]` through the exported serving function,
        with `"n_best": [{"answer", "start", "end", "score"}, ...]` (found spans only) when
        `--n_best_size` > 1."""
        serve = self.serving_default(model)
        size = self.config.train.batch_size
        results = []
        for start in range(0, len(pairs), size):
            questions, contexts = zip(*pairs[start:start + size])
            out = {k: v.numpy() for k, v in serve(tf.constant(questions),
                                                  tf.constant(contexts)).items()}
            for i in range(len(questions)):
                result = _span(out, i)
                if "n_best_answer" in out:
                    result["n_best"] = [_span(out, i, j, "n_best_")
                                        for j in range(out["n_best_answer"].shape[1])
                                        if out["n_best_start"][i, j] >= 0]
                results.append(result)
        return results

    @staticmethod
    def gold(records):
        return [[a["text"] for a in r.fields["answers"]] for r in records]

    def evaluate(self, model, records):
        pairs = self.pairs(records)
        answers = self.answer(model, pairs)
        report = squad_report([a["answer"] for a in answers], self.gold(records))
        report["examples"] = [{"source": q, "reference": g[0] if g else "",
                               "output": a["answer"]}
                              for (q, _), g, a in zip(pairs, self.gold(records), answers)
                              ][:EXAMPLES]
        return report

    def baseline_reports(self, train_records, records):
        """The sentence sharing most words with the question; and the cloze gap (that
        sentence minus the question's words), a lexical-matching ceiling on cloze data."""
        pairs, gold = self.pairs(records), self.gold(records)
        return {"sentence_overlap_baseline": squad_report(baselines.sentence_overlap(pairs),
                                                          gold),
                "cloze_gap_baseline": squad_report(baselines.cloze_gap(pairs), gold)}

    def headline(self, report):
        return f"exact_match {report['exact_match']:.2f}  f1 {report['f1']:.2f}"

    def predict(self, model, inputs):
        """Answers for `{"question", "context"}` dicts (or JSON strings of them)."""
        pairs = []
        for n, item in enumerate(inputs, 1):
            if isinstance(item, str):
                try:
                    item = json.loads(item)
                except json.JSONDecodeError as e:
                    raise ConfigError(f"input {n}: QA input must be a JSON object "
                                      f'{{"question": ..., "context": ...}}: {e}') from e
            if not isinstance(item, dict) or not all(isinstance(item.get(k), str)
                                                     for k in ("question", "context")):
                raise ConfigError(f"input {n}: QA input needs string fields 'question' and "
                                  f"'context', got {item!r}"[:300])
            pairs.append((item["question"], item["context"]))
        return self.answer(model, pairs)

    # Export -------------------------------------------------------------------------------
    def serving_functions(self, model):
        """`serving_default`: `question`, `context` (string `[batch]`) → `answer` (string),
        `start`, `end` (int32 character offsets into the context, end exclusive; -1 for no
        answer) and `score` (float32), windows and span decoding included; with
        `--n_best_size` > 1 also `n_best_answer`, `n_best_start`, `n_best_end`,
        `n_best_score` `[batch, n_best_size]`, the best spans in order."""
        preprocessor = self.preprocessor
        decode = self.options
        allow_null = self.allow_null

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="question"),
                                      tf.TensorSpec([None], tf.string, name="context")])
        def serve(question, context):
            rows = preprocessor(question, context)
            features = {k: rows[k] for k in ("token_ids", "padding_mask", "segment_ids")}
            logits = model(preprocessing.trim_batch(features), training=False)
            trimmed = {**rows, **{k: rows[k][:, :tf.shape(logits)[2]]
                                  for k in ("token_start", "token_end")}}
            return preprocessing.best_spans(
                logits, trimmed, context, max_answer_length=decode.max_answer_length,
                allow_null=allow_null,
                null_score_diff_threshold=decode.null_score_diff_threshold,
                n_best_size=decode.n_best_size)

        return {"serving_default": serve}, [preprocessor]


def _span(out, i, j=None, prefix=""):
    """`{"answer", "start", "end", "score"}` of row `i` (column `j`) of serving outputs."""
    index = i if j is None else (i, j)
    return {"answer": out[prefix + "answer"][index].decode("utf-8"),
            "start": int(out[prefix + "start"][index]), "end": int(out[prefix + "end"][index]),
            "score": float(out[prefix + "score"][index])}
