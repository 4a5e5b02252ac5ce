"""The apps on a trained run and their handling of bad input; `--model` switching the
backbone (presets of every kind, checkpoint directories) and its errors."""

import concurrent.futures
import json
import os
import re

import numpy as np
import pytest
from conftest import run_app


def test_predict_from_flags_and_stdin(trained_run):
    result = run_app("predict", f"--model_dir={trained_run['model_dir']}",
                     "--text=I love it", "--input_file=-", input="Terrible.\n\n  \nMeh\n")
    answers = [json.loads(line) for line in result.stdout.splitlines()]
    # one output line per input line, in order: empty ones answered as skipped
    assert [a["text"] for a in answers] == ["I love it", "Terrible.", "", "  ", "Meh"]
    assert answers[2] == {"text": "", "skipped": "empty text"}
    assert answers[3] == {"text": "  ", "skipped": "empty text"}
    del answers[2:4]
    for answer in answers:
        assert set(answer["probabilities"]) == {"negative", "positive"}
        assert abs(sum(answer["probabilities"].values()) - 1) < 1e-5
        assert answer["label"] == max(answer["probabilities"], key=answer["probabilities"].get)


def test_evaluate_writes_the_full_report(trained_run):
    model_dir = trained_run["model_dir"]
    result = run_app("evaluate", f"--model_dir={model_dir}")
    with open(os.path.join(model_dir, "test_metrics.json")) as f:
        report = json.load(f)
    model, baseline = report["model"], report["bag_of_words_baseline"]
    assert model["num_examples"] == baseline["num_examples"] == 299
    assert sum(map(sum, model["confusion_matrix"])) == 299
    assert set(model["per_class"]) == {"negative", "positive"}
    assert {"precision", "recall", "f1", "support"} <= set(model["per_class"]["positive"])
    assert baseline["accuracy"] > 0.75  # TF-IDF logistic regression is a real baseline
    assert "bag_of_words_baseline" in result.stdout and "macro-F1" in result.stdout


def test_evaluate_names_file_and_line_of_an_unseen_label(trained_run, tmp_path):
    data = tmp_path / "eval.jsonl"
    data.write_text('{"text": "fine", "label": "positive"}\n'
                    '{"text": "so so", "label": "neutral"}\n')
    result = run_app("evaluate", f"--model_dir={trained_run['model_dir']}", f"--data={data}",
                     "--nobaseline", check=False)
    assert result.returncode == 2
    assert f"{data}:2: label 'neutral' never appears in the training data" in result.stderr
    assert "Traceback" not in result.stderr


def test_predict_with_only_empty_lines_answers_each_and_checks_the_run(trained_run, tmp_path):
    result = run_app("predict", f"--model_dir={trained_run['model_dir']}", "--input_file=-",
                     input="\n \n\n")
    assert result.stdout.splitlines() == ['{"text": "", "skipped": "empty text"}',
                                          '{"text": " ", "skipped": "empty text"}',
                                          '{"text": "", "skipped": "empty text"}']
    result = run_app("predict", f"--model_dir={tmp_path / 'missing'}", "--input_file=-",
                     input="\n", check=False)
    assert result.returncode == 2 and result.stdout == ""
    assert f"{tmp_path / 'missing' / 'config.json'} not found" in result.stderr


def test_evaluate_with_skip_bad_rows_skips_and_counts_an_unseen_label(trained_run, tmp_path):
    import shutil
    model_dir = tmp_path / "run"  # the trained run, as if trained with --skip_bad_rows
    shutil.copytree(trained_run["model_dir"], model_dir)
    config = json.loads((model_dir / "config.json").read_text())
    config["data"]["skip_bad_rows"] = True
    (model_dir / "config.json").write_text(json.dumps(config))
    data = tmp_path / "eval.jsonl"
    data.write_text('{"text": "fine", "label": "positive"}\n'
                    '{"text": "so so", "label": "neutral"}\n'
                    '{"text": "awful", "label": "negative"}\n')
    result = run_app("evaluate", f"--model_dir={model_dir}", f"--data={data}", "--nobaseline")
    assert (f"Skipped 1 bad rows in {data} (first: {data}:2: label 'neutral' never appears "
            "in the training data (known labels: negative, positive))") in result.stderr
    assert json.loads((model_dir / "data_metrics.json").read_text())["model"][
        "num_examples"] == 2
    assert "(2 examples)" in result.stdout


@pytest.mark.slow
def test_train_with_skip_bad_rows_skips_an_unseen_label_in_the_eval_data(tmp_path):
    train, dev = tmp_path / "train.jsonl", tmp_path / "dev.jsonl"
    train.write_text("".join(f'{{"text": "{w} film", "label": "{l}"}}\n'
                             for w, l in [("good", "pos"), ("bad", "neg")] * 8))
    dev.write_text('{"text": "good", "label": "pos"}\n{"text": "meh", "label": "mid"}\n')
    args = [f"--train_data={train}", f"--eval_data={dev}", "--train_steps=2",
            "--sequence_length=16", "--vocabulary_size=50"]
    refused = run_app("train", *args, f"--model_dir={tmp_path / 'a'}", check=False)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert f"{dev}:2: label 'mid' never appears in the training data" in refused.stderr
    result = run_app("train", *args, "--skip_bad_rows", f"--model_dir={tmp_path / 'b'}")
    assert f"Skipped 1 bad rows in {dev} (first: {dev}:2: label 'mid'" in result.stderr


def test_train_reports_bad_training_data_by_file_and_line(tmp_path):
    data = tmp_path / "train.csv"
    data.write_text('text,label\n"good",positive\n"bad"\n')
    result = run_app("train", f"--train_data={data}", f"--eval_data={data}",
                     f"--model_dir={tmp_path / 'run'}", check=False)
    assert result.returncode == 2
    assert f"{data}:3:" in result.stderr and "Traceback" not in result.stderr


def test_console_scripts_are_installed_and_list_their_flags():
    import shutil
    import subprocess
    for name, flag in [("train", "--model_dir"), ("evaluate", "--split"),
                       ("predict", "--input_file"), ("export", "--export_dir"),
                       ("serve", "--rest_api_port")]:
        script = shutil.which(f"kerlm-{name}")
        assert script, f"kerlm-{name} is not on PATH: is kerlm pip-installed?"
        result = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=120)
        # absl prints the main module's flags for --help (and exits 1 by design)
        assert "USAGE" in result.stdout and flag in result.stdout, result.stderr[-2000:]


# --model switches the backbone: presets of every kind, checkpoint directories -----------
SHORT_RUN = ["--train_steps=2", "--batch_size=16", "--sequence_length=32",
             "--vocabulary_size=400", "--log_every_steps=1"]


def _checkpoint_directory(path, vocabulary=True):
    """A kerlm save of a tiny encoder (random weights) with a WordPiece vocab.txt."""
    from kerlm import models, tokenizers
    from kerlm.tokenizers.word_piece import RESERVED_TOKENS
    words = "the good bad great not very movie film phone food service it was is".split()
    tokens = RESERVED_TOKENS + words + list("abcdefghijklmnopqrstuvwxyz.,!'")
    backbone = models.EncoderBackbone(vocabulary_size=len(tokens) + 4, num_layers=1,
                                      hidden_dim=16, num_heads=2, intermediate_dim=32,
                                      max_sequence_length=64)
    backbone.save_to_preset(str(path))
    if vocabulary:
        tokenizers.WordPieceTokenizer(tokens).save(str(path))
    return backbone, tokens


@pytest.mark.slow
def test_model_flag_switches_the_backbone(tmp_path):
    """Decoder and encoder-decoder presets train through the same app into models that
    evaluate and export accept; an unknown --model is one line naming the presets."""
    runs = {name: str(tmp_path / name) for name in ("decoder_tiny", "encoder_decoder_tiny")}
    with concurrent.futures.ThreadPoolExecutor(3) as pool:  # two cores: overlap the imports
        trained = [pool.submit(run_app, "train", f"--model={name}", *SHORT_RUN,
                               f"--model_dir={model_dir}",
                               *(["--pooling=last"] if name == "decoder_tiny" else []))
                   for name, model_dir in runs.items()]
        unknown = pool.submit(run_app, "train", "--model=nonexistent",
                              f"--model_dir={tmp_path / 'unknown'}", check=False)
        for future in trained:
            assert "dev accuracy" in future.result().stdout
        # each app loads model.keras in a fresh process (one app per model, to save time)
        evaluated = pool.submit(run_app, "evaluate", f"--model_dir={runs['decoder_tiny']}",
                                "--nobaseline")
        exported = pool.submit(run_app, "export", f"--model_dir={runs['encoder_decoder_tiny']}",
                               f"--export_dir={tmp_path / 'exports'}")
        evaluated.result(), exported.result()
        result = unknown.result()
    for name, model_dir in runs.items():
        with open(os.path.join(model_dir, "config.json")) as f:
            assert json.load(f)["model"]["preset"] == name
    with open(os.path.join(runs["decoder_tiny"], "test_metrics.json")) as f:
        assert json.load(f)["model"]["num_examples"] == 299
    assert (tmp_path / "exports" / "sentiment" / "1" / "saved_model.pb").exists()
    assert result.returncode == 2 and "Traceback" not in result.stderr
    error = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "'nonexistent' is neither a directory nor a preset" in error[0]
    assert "decoder_tiny" in error[0] and "t5_small" in error[0]


def _task(preset, dropout=0.1, **options):
    from kerlm import tasks
    config = tasks.default_config("sentiment", {
        "model.preset": preset, "sentiment.sequence_length": 32, "model.vocabulary_size": 300,
        "model.dropout": dropout, **{f"sentiment.{k}": v for k, v in options.items()}})
    return tasks.get_task(config)


def test_checkpoint_directory_keeps_its_weights_vocabulary_and_size(tmp_path):
    import keras
    from kerlm.data import uci_sentiment
    backbone, tokens = _checkpoint_directory(tmp_path / "checkpoint")
    task = _task(str(tmp_path / "checkpoint"), dropout=0.0)
    task.prepare(uci_sentiment.load("train")[:50], str(tmp_path / "run"))
    assert task.preprocessor.tokenizer.vocabulary == tokens
    classifier = task.new_model()
    assert classifier.backbone.vocabulary_size == backbone.vocabulary_size == len(tokens) + 4
    for a, b in zip(backbone.weights, classifier.backbone.weights):
        assert a.path == b.path
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))
    # name presets, architecture presets included, take the task's learned vocabulary
    task = _task("bert_base", dropout=0.0)
    task.prepare(uci_sentiment.load("train")[:50], str(tmp_path / "bert_run"))
    assert len(task.preprocessor.tokenizer.vocabulary) < 300
    classifier = task.new_model()  # (segment_ids: all 0)
    assert classifier.backbone.vocabulary_size == len(task.preprocessor.tokenizer.vocabulary)
    assert classifier.backbone.num_layers == 12


def test_model_errors_are_config_errors_naming_the_model(tmp_path):
    from kerlm.config import ConfigError
    from kerlm.data import uci_sentiment
    records = uci_sentiment.load("train")[:20]
    _checkpoint_directory(tmp_path / "no_vocab", vocabulary=False)
    with pytest.raises(ConfigError, match=re.escape(f"--model: {tmp_path / 'no_vocab'} has no tokenizer")):
        _task(str(tmp_path / "no_vocab")).prepare(records, str(tmp_path / "run"))
    with pytest.raises(ConfigError, match="neither a directory nor a preset; presets: bart_base"):
        _task("encoder_huge").prepare(records, str(tmp_path / "run"))
    with pytest.raises(ConfigError, match="pooling=first is meaningless for --model=decoder_tiny"):
        _task("decoder_tiny", pooling="first").check_model_flag()  # before training writes
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n")
    task = _task(str(tmp_path / "empty"))
    task.prepare(records, str(tmp_path / "run"))
    with pytest.raises(ConfigError, match="empty has no config.json"):
        task.new_model()


def test_cased_checkpoint_vocabulary_keeps_the_case(tmp_path):
    from kerlm.data import uci_sentiment
    from kerlm.tokenizers.word_piece import RESERVED_TOKENS
    records = uci_sentiment.load("train")[:20]
    for name, words, expected in [("cased", ["Good", "good"], [5]), ("uncased", ["good"], [5])]:
        (tmp_path / name).mkdir()
        vocabulary = "".join(token + "\n" for token in RESERVED_TOKENS + words)
        (tmp_path / name / "vocab.txt").write_text(vocabulary)
        task = _task(str(tmp_path / name))
        task.prepare(records, str(tmp_path / f"{name}_run"))
        ids = task.preprocessor(np.array(["Good"]))["token_ids"].numpy()[0]
        assert ids[1:2].tolist() == expected
        assert task.preprocessor.tokenizer.lowercase == (name == "uncased")
