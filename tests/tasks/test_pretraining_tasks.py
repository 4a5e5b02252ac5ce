"""The pretraining tasks: corpora, perplexity, generation and scoring exports, and
pretrain → fine-tune starting from the pretrained weights."""

import gzip
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from conftest import serve_and_predict
from kerlm import export, models, tasks, tokenizers, training
from kerlm.config import ConfigError

DOCUMENTS = ["The Congress shall meet in December and the people shall be heard.",
             "Our revenue grew.\nThe debt fell by a third.",
             "Peace and commerce with all nations, entangling alliances with none.",
             "The state of the Union is strong, and the Union is growing."]


def _corpus(tmp_path, copies=20):
    """Two files of blank-line-separated documents: a.txt and b.txt.gz."""
    text = "\n\n".join(DOCUMENTS * copies)
    (tmp_path / "a.txt").write_text(text, encoding="utf-8")
    with gzip.open(tmp_path / "b.txt.gz", "wt", encoding="utf-8") as f:
        f.write("\n\n".join(reversed(DOCUMENTS * copies)))
    return f"{tmp_path}/a.txt,{tmp_path}/b.txt.gz"


def _task(name, tmp_path, preset, **overrides):
    data = _corpus(tmp_path)
    config = tasks.default_config(name, {
        "model.preset": preset, "model.vocabulary_size": 300, "model.dropout": 0.0,
        "data.train_data": data, "data.eval_data": data, "train.batch_size": 4,
        f"{name}.sequence_length": 32, **overrides})
    task = tasks.get_task(config)
    task.prepare(task.read("train"), str(tmp_path / "run"))
    return task


@pytest.mark.parametrize("spec, message", [
    ("{tmp}/nothing*.txt", "nothing*.txt: no file matches"),
    ("{tmp}/empty.txt", "empty.txt: empty file"),
    ("{tmp}/bad.txt", "bad.txt:2: not valid UTF-8"),
    ("{tmp}/bad.jsonl", "bad.jsonl:1:"),
])
def test_corpus_errors_are_one_line_and_name_the_file(tmp_path, spec, message):
    (tmp_path / "empty.txt").write_text("\n\n")
    (tmp_path / "bad.txt").write_bytes(b"good line\n\xff\xfe bad\n")
    (tmp_path / "bad.jsonl").write_text('{"body": "no text field"}\n')
    task = tasks.get_task(tasks.default_config("masked_lm"))
    with pytest.raises(ConfigError) as error:
        task.read_file(spec.format(tmp=tmp_path))
    assert message in str(error.value) and "\n" not in str(error.value)


def test_causal_lm_streams_several_files_in_order(tmp_path):
    task = _task("causal_lm", tmp_path, "decoder_tiny")
    corpus = task.read("dev")
    documents = list(corpus.documents())
    assert documents[:2] == [DOCUMENTS[0], DOCUMENTS[1].replace("\n", " ")]
    assert documents[len(DOCUMENTS) * 20] == DOCUMENTS[-1]  # b.txt.gz follows a.txt
    tokenizer = task.tokenizer
    expected = []
    for document in documents:
        expected += tokenizer.tokenize(tf.constant([document]))[0].numpy().tolist()
        expected.append(tokenizer.end_id)
    targets = [y[w > 0] for _, y, w in task.dataset(corpus, training=False).unbatch()
               .map(lambda x, y, w: (x["token_ids"], y, w)).as_numpy_iterator()]
    assert np.concatenate(targets).tolist() == expected  # every token once, in order


def _uniform(model):
    """All weights zero: a causal LM whose every next-token distribution is uniform."""
    for weight in model.weights:
        weight.assign(tf.zeros_like(weight))
    return model


def test_perplexity_of_a_uniform_model_is_the_vocabulary_size(tmp_path):
    task = _task("causal_lm", tmp_path, "decoder_tiny")
    model = _uniform(task.new_model())
    size = model.backbone.vocabulary_size
    report = task.evaluate(model, task.read("dev"))
    assert report["token_perplexity"] == pytest.approx(size, rel=1e-5)
    assert report["loss"] == pytest.approx(math.log(size), rel=1e-6)
    # per word: the same summed NLL over words + one end per document
    words = sum(len(d.split()) + 1 for d in task.read("dev").documents())
    assert report["num_words"] == words
    assert report["word_perplexity"] == pytest.approx(
        math.exp(report["num_tokens"] * math.log(size) / words), rel=1e-5)
    functions, _ = task.serving_functions(model)
    scored = functions["score"](tf.constant(["The debt fell.", ""]))
    count = len(task.tokenizer.tokenize(tf.constant(["The debt fell."]))[0]) + 1
    assert scored["num_tokens"].numpy().tolist() == [count, 1]  # its tokens and the end
    np.testing.assert_allclose(scored["log_likelihood"].numpy(),
                               [-count * math.log(size), -math.log(size)], rtol=1e-5)
    baseline = task.baseline_reports(task.read("train"), task.read("dev"))
    assert baseline["kneser_ney_bigram_baseline"]["num_words"] == words


def test_masked_lm_fill_mask_answers_one_token_per_mask(tmp_path):
    task = _task("masked_lm", tmp_path, "encoder_tiny", **{"masked_lm.whole_word_masking": True})
    answers = task.predict(task.new_model(), ["The [MASK] is strong [MASK].", "No mask."])
    assert [len(a["tokens"]) for a in answers] == [2, 0]
    assert all(0.0 < s <= 1.0 for s in answers[0]["scores"])
    assert " is strong" in answers[0]["output"] and "[MASK]" not in answers[0]["output"]
    assert answers[1]["output"] == "no [UNK] ."  # WordPiece: lower-cased; "mask" unseen


def test_span_corruption_fills_the_marked_spans_and_keeps_the_rest(tmp_path):
    task = _task("span_corruption", tmp_path, "encoder_decoder_tiny",
                 **{"span_corruption.max_decode_length": 6})
    [answer] = task.predict(task.new_model(), ["The state of the <extra_id_0> is strong."])
    assert answer["output"].startswith("The state of the ")
    assert answer["output"].endswith(" is strong.") and "extra_id" not in answer["output"]


def test_a_task_whose_tokenizer_differs_from_the_backbones_is_refused(tmp_path):
    masked = _task("masked_lm", tmp_path, "encoder_tiny")
    backbone_dir = str(tmp_path / "backbone")
    masked.new_model().backbone.save_to_preset(backbone_dir)
    masked.tokenizer.save(backbone_dir)
    task = tasks.get_task(tasks.default_config("span_corruption", {
        "model.preset": backbone_dir, "data.train_data": str(tmp_path / "a.txt"),
        "data.eval_data": str(tmp_path / "a.txt")}))
    with pytest.raises(ConfigError, match="SentencePiece vocabulary") as error:
        task.prepare(task.read("train"), str(tmp_path / "run2"))
    assert "\n" not in str(error.value)


def test_a_decoding_length_beyond_the_backbones_positions_is_refused(tmp_path):
    corrupt = _task("span_corruption", tmp_path, "encoder_decoder_tiny")
    backbone_dir = str(tmp_path / "backbone")
    corrupt.new_model().backbone.save_to_preset(backbone_dir)  # 32 positions
    corrupt.tokenizer.save(backbone_dir)
    task = tasks.get_task(tasks.default_config("summarization", {
        "model.preset": backbone_dir, "summarization.sequence_length": 32,
        "summarization.target_sequence_length": 16,
        "summarization.max_decode_length": 40}))
    task.prepare(task.read("train")[:20], str(tmp_path / "run2"))
    with pytest.raises(ConfigError, match="needs 41 positions .* has 32$") as error:
        task.new_model()
    assert "\n" not in str(error.value)


@pytest.mark.slow
def test_pretrain_then_fine_tune_starts_from_the_pretrained_weights(tmp_path):
    data = _corpus(tmp_path)
    config = tasks.default_config("masked_lm", {
        "model.preset": "encoder_tiny", "model.vocabulary_size": 300,
        "data.train_data": data, "data.eval_data": data, "train.batch_size": 4,
        "train.train_steps": 6, "train.validation_interval": 3,
        "masked_lm.sequence_length": 32})
    run = str(tmp_path / "pretrain")
    pretrained = training.train(tasks.get_task(config), run).backbone
    backbone_dir = os.path.join(run, training.BACKBONE_DIR)
    fine = tasks.get_task(tasks.default_config("classification", {
        "model.preset": backbone_dir, "classification.sequence_length": 32}))
    records = fine.read("train")[:40]
    fine.prepare(records, str(tmp_path / "fine"))
    assert fine.preprocessor.tokenizer.vocabulary == tokenizers.load(run).vocabulary  # travelled
    backbone = fine.new_model().backbone
    for a, b in zip(pretrained.weights, backbone.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert models.Backbone.from_preset(backbone_dir).count_params() == backbone.count_params()


FRESH = """
import json, sys
import tensorflow as tf
import tensorflow_text  # noqa: F401
loaded = tf.saved_model.load(sys.argv[1])
score = loaded.signatures["score"](text=tf.constant(["The debt fell.", "Peace."]))
text = loaded.signatures["serving_default"](prompt=tf.constant(["The Congress", "Peace"]))
short = loaded.signatures["greedy"](prompt=tf.constant(["The Congress"]),
                                    max_length=tf.constant([2]))
assert not [m for m in sys.modules if m.startswith("kerlm")]
print(json.dumps({"log_likelihood": score["log_likelihood"].numpy().tolist(),
                  "num_tokens": score["num_tokens"].numpy().tolist(),
                  "dtypes": [score["log_likelihood"].dtype.name, score["num_tokens"].dtype.name],
                  "text": [t.decode() for t in text["text"].numpy()],
                  "short": [t.decode() for t in short["text"].numpy()]}))
"""


@pytest.mark.slow
def test_generation_export_scores_and_continues_in_a_fresh_process_and_is_served(tmp_path):
    task = _task("causal_lm", tmp_path, "decoder_tiny")
    model = task.new_model()
    path = export.export_task(task, model, str(tmp_path / "export"))
    assert os.path.basename(os.path.dirname(path)) == "causal_lm"
    result = subprocess.run([sys.executable, "-c", FRESH, path], capture_output=True,
                            text=True, timeout=300, cwd=str(tmp_path),
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr[-3000:]
    fresh = json.loads(result.stdout.strip().splitlines()[-1])
    expected = task.serving_functions(model)[0]["score"](tf.constant(["The debt fell.",
                                                                       "Peace."]))
    np.testing.assert_allclose(fresh["log_likelihood"], expected["log_likelihood"].numpy(),
                               rtol=1e-5)
    assert fresh["num_tokens"] == expected["num_tokens"].numpy().tolist()
    assert fresh["dtypes"] == ["float32", "int32"]
    assert fresh["text"] == [a["output"] for a in task.predict(model, ["The Congress", "Peace"])]
    functions = task.serving_functions(model)[0]
    short = functions["greedy"](tf.constant(["The Congress"]), tf.constant([2]))["text"]
    longer = functions["greedy"](tf.constant(["The Congress"]), tf.constant([12]))["text"]
    assert fresh["short"] == [short.numpy()[0].decode()]
    assert longer.numpy()[0].decode().startswith(fresh["short"][0])  # greedy, cut at 2

    rest, response = serve_and_predict(
        tmp_path, "causal_lm", os.path.dirname(path),
        {"signature_name": "score", "instances": [{"text": "The debt fell."}]},
        {"prompt": ["The Congress"]})
    assert rest.status_code == 200, rest.text
    assert rest.json()["predictions"][0]["log_likelihood"] == pytest.approx(
        fresh["log_likelihood"][0], rel=1e-5)
    assert tf.make_ndarray(response.outputs["text"]).tolist() == [fresh["text"][0].encode()]
