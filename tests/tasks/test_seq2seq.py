"""Translation and summarization end to end on tiny runs: train, evaluate, predict, export,
load without kerlm, serve; plus the pieces (bucketing, loss, errors)."""

import glob
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import requests

from conftest import run_app, start_server, wait_until_serving

SOURCES = ["In the beginning God created the heavens and the earth.", "Jesus wept.",
           "The LORD is my shepherd; I shall lack nothing."]
TINY = ["--model=encoder_decoder_tiny", "--vocabulary_size=1000", "--batch_size=32",
        "--learning_rate=1e-3", "--log_every_steps=20", "--max_decode_length=12"]


def write_jsonl(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return str(path)


@pytest.fixture(scope="module")
def translation_run(tmp_path_factory):
    """en→es on 3,000 Bible training verses, 80 steps, exported; small dev/test files."""
    from kerlm.data import bible_en_es
    root = tmp_path_factory.mktemp("translation")
    rows = {split: [{"en": r.fields["en"], "es": r.fields["es"]} for r in bible_en_es.load(split)]
            for split in ("train", "dev", "test")}
    files = {split: write_jsonl(root / f"{split}.jsonl", rows[split][:n])
             for split, n in (("train", 3000), ("dev", 40), ("test", 40))}
    model_dir, export_dir = str(root / "model"), str(root / "exports")
    result = run_app("train", "--task=translation", *TINY, "--train_steps=80",
                     "--sampler=beam", "--beam_width=2", f"--train_data={files['train']}",
                     f"--eval_data={files['dev']}", f"--test_data={files['test']}",
                     f"--model_dir={model_dir}", f"--export_dir={export_dir}")
    return {"model_dir": model_dir, "export_path": os.path.join(export_dir, "translation", "1"),
            "stdout": result.stdout, "log": result.stderr, "files": files}


def load_run(model_dir):
    from kerlm import tasks, training
    task = tasks.restore_task(model_dir)
    return task, training.load_model(model_dir)


def test_training_learns_and_reports_generation_metrics(translation_run):
    model_dir = translation_run["model_dir"]
    report = json.load(open(os.path.join(model_dir, "dev_metrics.json")))
    assert {"bleu", "chrf", "token_accuracy", "perplexity", "examples"} <= set(report)
    assert report["decoding"].startswith("beam (beam width 2")
    # 80 steps from scratch: far from fluent, but far better than uniform over the 1,000
    # pieces (perplexity 1,000, accuracy 0.001)
    assert report["perplexity"] < 350 and report["token_accuracy"] > 0.02
    assert json.load(open(os.path.join(model_dir, "progress.json")))["steps"] == 80
    assert "tokens/s" in translation_run["log"] and "dev bleu" in translation_run["stdout"]
    assert os.path.exists(os.path.join(model_dir, "sentencepiece.model"))


def test_evaluate_writes_metrics_baselines_and_tensorboard(translation_run):
    model_dir = translation_run["model_dir"]
    result = run_app("evaluate", f"--model_dir={model_dir}")
    report = json.load(open(os.path.join(model_dir, "test_metrics.json")))
    assert set(report) == {"model", "copy_source_baseline", "word_by_word_baseline"}
    assert report["model"]["num_examples"] == 40
    assert report["word_by_word_baseline"]["bleu"] > report["copy_source_baseline"]["bleu"]
    assert "word_by_word_baseline" in result.stdout and "bleu" in result.stdout

    import tensorflow as tf
    tags = {}
    for path in glob.glob(os.path.join(model_dir, "logs", "eval_test", "events*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                tags[value.tag] = (event.step, value)
    assert tags["model/bleu"][0] == 80  # logged at the trained step
    assert float(tf.make_ndarray(tags["model/bleu"][1].tensor)) == pytest.approx(
        report["model"]["bleu"], abs=1e-4)
    text = tf.make_ndarray(tags["examples"][1].tensor).item().decode()
    assert "| source | reference | output |" in text
    assert report["model"]["examples"][0]["reference"].split("|")[0][:20] in text
    validation = glob.glob(os.path.join(model_dir, "logs", "validation", "events*"))
    assert validation  # examples written at each epoch end during training


def test_predict_app_translates_flags_and_stdin(translation_run):
    model_dir = translation_run["model_dir"]
    result = run_app("predict", f"--model_dir={model_dir}", f"--text={SOURCES[0]}",
                     "--input_file=-", input=SOURCES[1] + "\n\n" + SOURCES[2] + "\n")
    lines = [json.loads(line) for line in result.stdout.strip().splitlines()]
    # one output line per input line: the empty one is answered as skipped
    assert [line["text"] for line in lines] == [*SOURCES[:2], "", SOURCES[2]]
    assert lines[2] == {"text": "", "skipped": "empty text"}
    task, model = load_run(model_dir)
    assert [line["output"] for line in lines if "output" in line] == \
        [a["output"] for a in task.predict(model, SOURCES)]


FRESH_PROCESS = r"""
import json, sys
import tensorflow as tf
import tensorflow_text  # registers the SentencePiece ops the graph uses
model = tf.saved_model.load(sys.argv[1])
texts = tf.constant(json.loads(sys.argv[2]))
out = {"serving_default": model.signatures["serving_default"](text=texts)["text"],
       "greedy": model.signatures["greedy"](text=texts, max_length=tf.constant([12, 3, 12]))["text"],
       "beam_search": model.signatures["beam_search"](text=texts,
                                                      max_length=tf.constant([12] * 3))["text"]}
assert not any(m == "kerlm" or m.startswith("kerlm.") for m in sys.modules), "kerlm imported"
print(json.dumps({k: [x.decode() for x in v.numpy().tolist()] for k, v in out.items()}))
"""


def test_exported_model_translates_raw_text_without_kerlm(translation_run):
    result = subprocess.run([sys.executable, "-c", FRESH_PROCESS, translation_run["export_path"],
                             json.dumps(SOURCES)], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == 0, result.stderr[-3000:]
    exported = json.loads(result.stdout.strip().splitlines()[-1])

    task, model = load_run(translation_run["model_dir"])
    assert exported["serving_default"] == [a["output"] for a in task.predict(model, SOURCES)]
    # the in-graph decoding equals the model's own cached generation, detokenized
    features = task.preprocessor(np.array(SOURCES))
    for sampler, options in (("greedy", {}), ("beam", {"beam_width": 2, "length_penalty": 0.6})):
        ids = model.generate({k: v.numpy() for k, v in features.items()}, max_length=13,
                             start_token_id=2, stop_token_ids=[3], sampler=sampler,
                             jit_compile=False, **options)["token_ids"]
        expected = [t.decode() for t in task.preprocessor.detokenize(ids).numpy()]
        assert exported["greedy" if sampler == "greedy" else "beam_search"][0] == expected[0]
        assert exported["greedy" if sampler == "greedy" else "beam_search"][2] == expected[2]
    # max_length caps each example on its own: 3 tokens for the second text
    short = task.preprocessor.tokenizer.tokenize(exported["greedy"][1]).shape[0]
    assert short <= 3 < len(exported["greedy"][0].split()) + 1
    assert all(exported.values())


def test_rest_server_serves_the_translation_model(translation_run, tmp_path):
    base = os.path.dirname(translation_run["export_path"])
    process, url, log = start_server(tmp_path, "--model_name=translation",
                                     f"--model_base_path={base}")
    try:
        wait_until_serving(process, f"{url}/v1/models/translation", log)
        answer = requests.post(f"{url}/v1/models/translation:predict",
                               json={"instances": SOURCES[:2]}, timeout=120)
        assert answer.status_code == 200, answer.text
        columnar = requests.post(f"{url}/v1/models/translation:predict",
                                 json={"signature_name": "greedy",
                                       "inputs": {"text": SOURCES[:2], "max_length": [4, 4]}},
                                 timeout=120)
        assert columnar.status_code == 200, columnar.text
        metadata = requests.get(f"{url}/v1/models/translation/metadata", timeout=30).json()
    finally:
        process.terminate()
        process.wait(timeout=30)
    task, model = load_run(translation_run["model_dir"])
    assert answer.json()["predictions"] == [a["output"] for a in task.predict(model, SOURCES[:2])]
    assert len(columnar.json()["outputs"]) == 2
    signatures = metadata["metadata"]["signature_def"]["signature_def"]
    assert {"serving_default", "greedy", "beam_search"} <= set(signatures)


def test_summarization_reads_named_fields_of_tsv_and_beats_nothing_silently(tmp_path):
    from kerlm.data import debian_summaries
    rows = {split: debian_summaries.load(split) for split in ("train", "dev")}
    for split, n in (("train", 1500), ("dev", 30)):
        with open(tmp_path / f"{split}.tsv", "w", encoding="utf-8") as f:
            f.write("title\tbody\n")
            for r in rows[split][:n]:
                f.write(f"{r.fields['summary']}\t{r.fields['document'].replace(chr(10), ' ')}\n")
    model_dir = str(tmp_path / "model")
    run_app("train", "--task=summarization", *TINY, "--train_steps=30",
            "--document_field=body", "--summary_field=title", "--sequence_length=96",
            "--target_sequence_length=16", f"--train_data={tmp_path / 'train.tsv'}",
            f"--eval_data={tmp_path / 'dev.tsv'}", f"--model_dir={model_dir}")
    run_app("evaluate", f"--model_dir={model_dir}", "--split=dev")
    report = json.load(open(os.path.join(model_dir, "dev_metrics.json")))
    assert {"rouge1", "rouge2", "rougeL", "token_accuracy", "perplexity"} <= set(report["model"])
    lead = [k for k in report if k.startswith("lead_")]
    assert len(lead) == 1 and report[lead[0]]["rougeL"] > 5  # lead-N is a real baseline


@pytest.mark.parametrize("flags,message", [
    (["--task=translation", "--model=encoder_tiny"],
     "--task=translation needs a backbone that can 'seq2seq', but --model=encoder_tiny "
     "cannot; backbones that fit: bart_base, encoder_decoder_base, encoder_decoder_small, "
     "encoder_decoder_tiny, t5_small"),
    (["--task=translation", "--model=encoder_decoder_tiny", "--source_lang=en",
      "--target_lang=fr"],
     "no embedded translation data for en-fr; available pairs: de-en, en-de, en-es, es-en"),
])
def test_configuration_mistakes_are_one_line_errors(tmp_path, flags, message):
    result = run_app("train", *flags, f"--model_dir={tmp_path / 'm'}", check=False)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_a_data_file_missing_the_target_field_names_file_and_line(tmp_path):
    path = write_jsonl(tmp_path / "train.jsonl", [{"en": "a", "es": "b"}, {"en": "c"}])
    result = run_app("train", "--task=translation", "--model=encoder_decoder_tiny",
                     f"--train_data={path}", f"--eval_data={path}",
                     f"--model_dir={tmp_path / 'm'}", check=False)
    assert result.returncode == 2
    assert f"{path}:2:" in result.stderr and "'es'" in result.stderr


def test_bucketing_cuts_padding_and_keeps_every_example():
    from kerlm.data import bible_en_es
    from kerlm.data.batching import bucketed_batches
    lengths = np.array([len(r.fields["en"].split()) for r in bible_en_es.load("train")])
    rng = np.random.default_rng(0)
    batches = bucketed_batches(lengths, 48, rng)
    assert len(batches) == -(-len(lengths) // 48)
    assert sorted(np.concatenate(batches).tolist()) == list(range(len(lengths)))

    def padding(batches):
        padded = sum(len(b) * lengths[b].max() for b in batches)
        return 1 - lengths.sum() / padded

    random_batches = np.array_split(rng.permutation(len(lengths)), len(batches))
    assert padding(batches) < 0.05 < 0.3 < padding(random_batches)


def test_label_smoothed_loss_matches_its_formula():
    from kerlm.heads.losses import SmoothedSparseCrossentropy
    logits = np.array([[[2.0, 0.0, -1.0], [0.5, 0.5, 0.0]]], "float32")
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    targets, mask = np.array([[0, 2]]), np.array([[1.0, 1.0]])
    nll = -log_probs[0, [0, 1], [0, 2]]
    expected = np.mean(0.9 * nll + 0.1 * -log_probs[0].mean(-1))
    loss = SmoothedSparseCrossentropy(0.1)(targets, logits, sample_weight=mask)
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    # padding positions do not count, in the sum or in the mean
    masked = SmoothedSparseCrossentropy(0.1)(targets, logits, sample_weight=np.array([[1., 0.]]))
    assert float(masked) == pytest.approx(0.9 * nll[0] + 0.1 * -log_probs[0, 0].mean(), rel=1e-5)
