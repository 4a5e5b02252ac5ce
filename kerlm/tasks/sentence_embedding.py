"""Sentence embeddings: texts in, unit vectors out, trained on pairs with in-batch negatives.

Example:
>>> from kerlm.tasks import default_config, get_task
>>> config = default_config("sentence_embedding", {"sentence_embedding.objective": "simcse"})
>>> task = get_task(config)
>>> task.fields(), task.options.scale, task.pooling()
(('text_a', 'text_b'), 20.0, 'mean')
"""

import dataclasses
import hashlib
import json
import os

import keras
import numpy as np
import tensorflow as tf

from kerlm import baselines, heads, preprocessing, tokenizers
from kerlm.config import Config, ConfigError, TaskConfig, apply_overrides, field
from kerlm.data import corpus, readers, sentence_pairs
from kerlm.metrics import blockwise_ranks, retrieval_report, spearman
from kerlm.models import checkpoints, sentence_transformers
from kerlm.tasks import registry
from kerlm.tasks.base import Task, check_model

CORPUS_FORMATS = (".txt",)


@dataclasses.dataclass
class SentenceEmbeddingConfig(TaskConfig):
    objective: str = field("pairs", "pairs: each first text must find its second text among "
                                    "the batch's (multiple-negatives ranking / InfoNCE); "
                                    "simcse: unsupervised, each first text (or corpus line) "
                                    "must find its other dropout view.",
                           choices=["pairs", "simcse"])
    text_a_field: str = field("text_a", "Field of the first text (the query) of a pair.")
    text_b_field: str = field("text_b", "Field of the second text (the target) of a pair.")
    score_field: str = field("", "Optional field of a similarity score per pair (STS-style): "
                                 "evaluation adds Spearman's correlation of cosine with it.")
    embedded_pairs: str = field("debian", "Pairs used without data files: Debian synopsis -> "
                                          "long description, cloze question -> its answer's "
                                          "Wikipedia sentence, or both.",
                                choices=list(sentence_pairs.SOURCES))
    embedding_pooling: str = field("auto", "Pooling of the encoder's states: mean over real "
                                           "tokens, the [CLS] state, or max; auto: the "
                                           "sentence-transformers pooling of --model=DIR, "
                                           "else mean.", choices=["auto", "mean", "cls", "max"])
    normalize: bool = field(True, "Unit-length embeddings (dot products are cosines).")
    scale: float = field(20.0, "Similarity scale of the loss (1 / temperature; 20 as "
                               "sentence-transformers' MultipleNegativesRankingLoss and "
                               "SimCSE's 0.05); the start value with --learnable_scale.")
    learnable_scale: bool = field(False, "Learn the scale (in log space, capped at 100).")
    symmetric: bool = field(False, "Also rank each second text's first text among the "
                                   "batch's (the loss averaged over both directions).")


@registry.register("sentence_embedding", SentenceEmbeddingConfig)
class SentenceEmbeddingTask(Task):
    """Embed texts so that a text's pair is its nearest neighbour by cosine.

    Data: users' JSONL/CSV/TSV pairs (`--text_a_field`, `--text_b_field`, optionally
    `--score_field`), a plain-text corpus (one sentence per line, `--objective=simcse`
    training only), else the embedded pairs (`kerlm.data.sentence_pairs`). The default,
    Debian synopses and descriptions, is a real paraphrase problem; the cloze questions of
    `wiki` copy their answer's sentence word for word (BM25 nearly solves them), so they
    teach little about meaning on their own.

    Evaluation: each first text of the split is a query against all its distinct second
    texts: recall@1, recall@10, MRR (exact cosine), and Spearman's correlation of the
    pairs' cosines with their scores when they have some; baselines: BM25 and TF-IDF over
    the same pool. Export: text → `embedding` float32 `[batch, dim]`.
    """

    capability = "encode"
    eager_predict_limit = 64

    def __init__(self, config):
        super().__init__(config)
        self.preprocessor = None

    # Data ---------------------------------------------------------------------------------
    def fields(self):
        """The (first, second[, score]) field names of the records this task reads."""
        if not self.config.data.train_data:  # the embedded pairs
            return sentence_pairs.FIELDS
        options = self.options
        return (options.text_a_field, options.text_b_field) + \
            ((options.score_field,) if options.score_field else ())

    def embedded(self, split):
        return sentence_pairs.load(self.options.embedded_pairs, split)

    def read_file(self, path):
        """A pairs file's unique pairs, their scores checked; or a plain-text corpus's
        lines (first texts only) for SimCSE training."""
        if _is_corpus(path):
            if self.options.objective != "simcse":
                raise ConfigError(f"{path}: a plain-text corpus has no pairs; it trains "
                                  "--objective=simcse only")
            return [readers.Record({self.fields()[0]: text}, path, i + 1) for i, text in
                    enumerate(corpus.read_documents(path, one_per_line=True))]
        records = sentence_pairs.unique_pairs(super().read_file(path), *self.fields()[:2])
        if self.options.score_field:
            for r in records:
                _score(r, self.options.score_field)
        return records

    def texts(self, records):
        """`(first texts, second texts or None, scores or None)` of `records`."""
        fields = self.fields()
        first = [r.fields[fields[0]] for r in records]
        second = [r.fields[fields[1]] for r in records] \
            if records and fields[1] in records[0].fields else None
        scores = [_score(r, fields[2]) for r in records] if len(fields) > 2 and second else None
        return first, second, scores

    # Assets -------------------------------------------------------------------------------
    def prepare(self, train_records, model_dir):
        first, second, _ = self.texts(train_records)
        tokenizer = self.vocabulary(lambda: tokenizers.WordPieceTokenizer.learn(
            first + (second or []), self.config.model.vocabulary_size))
        os.makedirs(model_dir, exist_ok=True)
        tokenizer.save(model_dir)
        self.preprocessor = preprocessing.TextPreprocessor(tokenizer,
                                                           self.options.sequence_length)

    def restore(self, model_dir):
        self.preprocessor = preprocessing.TextPreprocessor(tokenizers.load(model_dir),
                                                           self.options.sequence_length)

    @classmethod
    def from_checkpoint(cls, directory, overrides=None):
        """`(task, model)` for embedding with checkpoint `directory` as it comes, without a
        run or training: its tokenizer, and its sentence-transformers pooling,
        normalization and `max_seq_length` when it has them (`modules.json`; else mean
        pooling, unit vectors and the default `--sequence_length`). `overrides`
        (`{"section.field": value}`) apply last."""
        if check_model(directory) != "directory":
            raise ConfigError(f"--model={directory}: embedding without a run needs a "
                              "checkpoint directory (a preset's weights are untrained)")
        try:
            found = sentence_transformers.pooling(directory) or {}
        except ValueError as e:
            raise ConfigError(f"--model: {e}") from e
        given = {"model.preset": directory, "model.dropout": 0.0}
        if found:
            given["sentence_embedding.normalize"] = found["normalize"]
        if found.get("max_length"):
            given["sentence_embedding.sequence_length"] = found["max_length"]
        config = apply_overrides(Config(task="sentence_embedding",
                                        options=SentenceEmbeddingConfig()),
                                 {**given, **(overrides or {})})
        task = cls(config)

        def no_vocabulary():
            raise ConfigError(f"--model={directory}: no tokenizer to embed text with")

        task.preprocessor = preprocessing.TextPreprocessor(task.vocabulary(no_vocabulary),
                                                           task.options.sequence_length)
        return task, task.new_model()

    def checkpoint_fingerprint(self):
        """SHA-256 (hex) of the `--model` checkpoint directory on disk
        (`kerlm.models.checkpoints.fingerprint`) and of this task's config (pooling,
        normalization, sequence length): what decides a `from_checkpoint` model's
        embeddings, for `corpus_embeddings`' cache."""
        preset = self.config.model.preset
        try:
            on_disk = checkpoints.fingerprint(preset)
        except ValueError as e:
            raise ConfigError(f"--model: {e}") from e
        config = json.dumps(self.config.to_dict(), sort_keys=True, default=str)
        return hashlib.sha256(f"{on_disk}:{config}".encode()).hexdigest()

    # Features -----------------------------------------------------------------------------
    def views(self, records):
        """`(texts, ids)` interleaved: each pair's first then second text (SimCSE: the
        first text twice), and each text's id (equal texts, equal ids)."""
        first, second, _ = self.texts(records)
        if self.options.objective == "simcse" or second is None:
            second = first
        texts = [t for pair in zip(first, second) for t in pair]
        index = {}
        return texts, [index.setdefault(t, len(index)) for t in texts]

    def dataset(self, records, training, batch_size=None):
        """Batches of `2 · batch_size` interleaved texts (pairs stay whole on a replica),
        targets their text ids (for `InBatchNegativesLoss`)."""
        texts, ids = self.views(records)
        ds = tf.data.Dataset.zip(preprocessing.tokenized(self.preprocessor, texts),
                                 tf.data.Dataset.from_tensor_slices(np.array(ids, "int32")))
        ds = ds.batch(2).cache()  # one element per pair
        if training:
            ds = ds.shuffle(len(ids) // 2, seed=self.config.train.seed,
                            reshuffle_each_iteration=True)
        ds = ds.batch(batch_size or self.config.train.batch_size)
        return ds.map(_flatten_pairs).prefetch(tf.data.AUTOTUNE)

    # Model --------------------------------------------------------------------------------
    def check_model_flag(self):
        """Also refuse SimCSE without dropout (its two views would be equal)."""
        super().check_model_flag()
        if self.options.objective == "simcse" and not self.config.model.dropout:
            raise ConfigError("--objective=simcse needs --dropout > 0: its two views of a "
                              "sentence differ only by dropout")

    def pooling(self):
        """`--embedding_pooling`, or for `auto` the sentence-transformers pooling of a
        `--model` directory that has one, else mean."""
        pooling, preset = self.options.embedding_pooling, self.config.model.preset
        if pooling != "auto":
            return pooling
        if check_model(preset) == "directory":
            try:
                found = sentence_transformers.pooling(preset)
            except ValueError as e:
                raise ConfigError(f"--model: {e}") from e
            if found:
                return found["mode"]
        return "mean"

    def build_model(self, backbone):
        options = self.options
        try:
            return heads.SentenceEncoder(backbone, pooling=self.pooling(),
                                         normalize=options.normalize, scale=options.scale,
                                         learnable_scale=options.learnable_scale)
        except ValueError as e:
            raise ConfigError(f"--model={self.config.model.preset}: {e}") from e

    def loss(self):
        return heads.InBatchNegativesLoss(self.options.scale, self.options.symmetric)

    def compile_model(self, model, optimizer):
        """The loss reads the model's scale (the learned one with --learnable_scale)."""
        model.compile(optimizer=optimizer, loss=heads.InBatchNegativesLoss(
            model.logit_scale, self.options.symmetric))

    # Evaluation and prediction ------------------------------------------------------------
    def embed(self, model, texts, progress=False):
        """`[len(texts), dim]` float32 embeddings through the exported serving function,
        `--batch_size` texts at a time (with a Keras progress bar if `progress`)."""
        serve = self.serving_default(model)
        size = self.config.train.batch_size
        bar = keras.utils.Progbar(len(texts), unit_name="text") if progress else None
        vectors = []
        for i in range(0, len(texts), size):
            vectors.append(serve(tf.constant(texts[i:i + size]))["embedding"].numpy())
            if bar:
                bar.add(len(vectors[-1]))
        return np.concatenate(vectors)

    def corpus_embeddings(self, model, path, passages, model_fingerprint, cache_dir):
        """`(embeddings of passages, reused)`: `passages` (read from `path`) embedded, or
        loaded from `cache_dir/NAME.npy` when `NAME.json` beside it holds the same
        fingerprint (the corpus file's size, mtime and SHA-1, and `model_fingerprint`)."""
        digest = _file_fingerprint(path, model_fingerprint)
        stem = os.path.join(cache_dir, os.path.basename(path))
        try:
            with open(stem + ".json", encoding="utf-8") as f:
                if json.load(f)["fingerprint"] == digest:
                    return np.load(stem + ".npy"), True
        except (OSError, ValueError, KeyError):
            pass
        vectors = self.embed(model, passages, progress=True)
        os.makedirs(cache_dir, exist_ok=True)
        np.save(stem + ".npy", vectors)
        with open(stem + ".json", "w", encoding="utf-8") as f:
            json.dump({"fingerprint": digest, "corpus": os.path.abspath(path),
                       "passages": len(passages)}, f)
        return vectors, False

    def search(self, model, passage_vectors, passages, queries, top_k):
        """`[{"query", "results": [{"rank", "score", "text"}]}]`: the `top_k` passages of
        highest cosine with each query (exact: one matrix product)."""
        scores = _unit(self.embed(model, queries)) @ _unit(passage_vectors).T
        best = np.argsort(-scores, axis=1, kind="stable")[:, :top_k]
        return [{"query": query, "results": [
                    {"rank": rank + 1, "score": float(row[i]), "text": passages[i]}
                    for rank, i in enumerate(indices)]}
                for query, row, indices in zip(queries, scores, best)]

    def _pairs(self, records):
        first, second, scores = self.texts(records)
        if second is None:
            raise ConfigError("sentence_embedding evaluates on pairs: give --eval_data / "
                              "--test_data with a text_b field, not a plain-text corpus")
        return first, *sentence_pairs.retrieval_pool(second), scores

    def evaluate(self, model, records):
        queries, pool, gold, scores = self._pairs(records)
        query_vectors, pool_vectors = (_unit(self.embed(model, t)) for t in (queries, pool))
        return _report(lambda i, j: query_vectors[i:j] @ pool_vectors.T, gold, scores, pool)

    def baseline_reports(self, train_records, records):
        """BM25 and TF-IDF cosine over the same pool."""
        queries, pool, gold, scores = self._pairs(records)
        return {f"{name}_baseline": _report(lambda i, j: index.scores(queries[i:j]), gold,
                                            scores, pool)
                for name, index in (("bm25", baselines.BM25(pool)),
                                    ("tfidf", baselines.TfIdf(pool)))}

    def headline(self, report):
        line = (f"recall@1 {report['recall@1']:.4f}  recall@10 {report['recall@10']:.4f}  "
                f"MRR {report['mrr']:.4f}")
        return line + (f"  spearman {report['spearman']:.4f}" if "spearman" in report else "")

    def predict(self, model, inputs):
        """`[{"embedding": [float, ...]}]` for a list of texts."""
        return [{"embedding": vector.tolist()} for vector in self.embed(model, inputs)]

    # Export -------------------------------------------------------------------------------
    def serving_functions(self, model):
        preprocessor = self.preprocessor

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        def serve(text):
            embedding = model(preprocessing.trim_batch(preprocessor(text)), training=False)
            return {"embedding": tf.cast(embedding, tf.float32)}

        return {"serving_default": serve}, [preprocessor]


def _is_corpus(path):
    name = os.path.basename(path).lower().removesuffix(".gz")
    return os.path.splitext(name)[1] in CORPUS_FORMATS


def _file_fingerprint(path, extra):
    """SHA-1 (hex) of a file's size, mtime and contents, and `extra`."""
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    status = os.stat(path)
    return hashlib.sha1(f"{status.st_size}:{status.st_mtime_ns}:{digest.hexdigest()}:"
                        f"{extra}".encode()).hexdigest()


def _score(record, name):
    """The float in `record`'s field `name`, or a DataError naming its file and line."""
    try:
        return float(record.fields[name])
    except ValueError:
        raise readers.DataError(record.path, record.line, f"field {name!r} is not a number: "
                                f"{record.fields[name]!r}") from None


def _flatten_pairs(features, ids):
    """`[batch, 2, length]` → `[2 · batch, length]` (interleaved), trimmed."""
    flat = {k: tf.reshape(v, [-1, tf.shape(v)[-1]]) for k, v in features.items()}
    return preprocessing.trim_batch(flat), tf.reshape(ids, [-1])


def _unit(vectors):
    return vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)


def _report(score_rows, gold, scores, pool):
    """Retrieval metrics of `score_rows` (see `blockwise_ranks`), with Spearman's
    correlation of the pairs' own scores with `scores` when given."""
    ranks, pair_scores = blockwise_ranks(score_rows, gold)
    report = retrieval_report(ranks)
    if scores is not None:
        report["spearman"] = spearman(pair_scores, scores)
    return {**report, "num_examples": len(gold), "pool_size": len(pool)}
