"""The predict and evaluate apps on a trained run, and their handling of bad input."""

import json
import os

from conftest import run_app


def test_predict_from_flags_and_stdin(trained_run):
    result = run_app("predict", f"--model_dir={trained_run['model_dir']}",
                     "--text=I love it", "--input_file=-", input="Terrible.\n\nMeh\n")
    answers = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert [a["text"] for a in answers] == ["I love it", "Terrible.", "Meh"]
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
