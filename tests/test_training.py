"""Training through apps/train.py: learning, resume, mirrored strategy, TensorBoard."""

import json
import os
import re
import subprocess
import sys
import time

import keras
import pytest
import requests

from conftest import free_port, run_app
from kerlm import training

FAST = ["--task=sentiment", "--model=encoder_tiny", "--sequence_length=32", "--batch_size=64",
        "--learning_rate=1e-3", "--log_every_steps=5"]


def _dev_metrics(model_dir):
    with open(os.path.join(model_dir, "dev_metrics.json")) as f:
        return json.load(f)


def test_short_run_learns(trained_run):
    """60 steps take the dev loss well below chance (ln 2 = 0.693) and accuracy above it."""
    metrics = _dev_metrics(trained_run["model_dir"])
    assert metrics["loss"] < 0.62
    assert metrics["accuracy"] > 0.65
    losses = [float(x) for x in re.findall(r"step \d+/60  loss ([\d.]+)", trained_run["log"])]
    assert len(losses) >= 5 and losses[-1] < losses[0]
    assert re.search(r"step 60/60 .* \d+ tokens/s", trained_run["log"])
    for name in ["config.json", "vocab.txt", "labels.json", "model.keras"]:
        assert os.path.exists(os.path.join(trained_run["model_dir"], name)), name


@pytest.mark.slow
def test_train_steps_is_exact_with_the_schedule_sized_to_it(tmp_path):
    """45 steps of 38-step epochs (2,384 examples / 64) are 45 steps, not 2 epochs × 23."""
    model_dir = str(tmp_path / "run")
    result = run_app("train", *FAST, "--train_steps=45", f"--model_dir={model_dir}")
    with open(os.path.join(model_dir, "progress.json")) as f:
        assert json.load(f)["steps"] == 45
    assert "45 steps (2 epoch(s) of 38)" in result.stderr
    assert re.search(r"step 45/45  loss [\d.]+  lr 0\.00e\+00  \d+ tokens/s  ETA 0s",
                     result.stderr)


@pytest.mark.slow
def test_resume_continues_from_last_checkpoint(tmp_path):
    model_dir = str(tmp_path / "run")
    first = run_app("train", *FAST, "--epochs=1", f"--model_dir={model_dir}")
    assert "Resuming" not in first.stderr and "ran out of data" not in first.stderr
    second = run_app("train", "--epochs=2", f"--model_dir={model_dir}")
    assert "Resuming the run" in second.stderr
    assert "Epoch 2/2" in second.stderr and "Epoch 1/2" not in second.stderr
    with open(os.path.join(model_dir, "config.json")) as f:
        saved = json.load(f)
    assert saved["train"]["epochs"] == 2 and saved["sentiment"]["sequence_length"] == 32
    # a different model on the same directory is refused with a clear message
    refused = run_app("train", "--model=encoder_small", f"--model_dir={model_dir}", check=False)
    assert refused.returncode == 2
    assert "model.preset: saved 'encoder_tiny', given 'encoder_small'" in refused.stderr
    assert "Traceback" not in refused.stderr


@pytest.mark.slow
def test_mirrored_on_two_cpu_devices_matches_one_device(tmp_path):
    runs = {}
    for strategy in ["default", "mirrored"]:
        model_dir = str(tmp_path / strategy)
        result = run_app("train", *FAST, "--train_steps=20", f"--strategy={strategy}",
                         "--num_cpu_devices=2", f"--model_dir={model_dir}")
        runs[strategy] = (_dev_metrics(model_dir), result.stderr)
    assert "2 replica(s)" in runs["mirrored"][1] and "1 replica(s)" in runs["default"][1]
    single, mirrored = runs["default"][0], runs["mirrored"][0]
    assert single.keys() == mirrored.keys()
    assert len(mirrored["confusion_matrix"]) == 2
    assert abs(single["loss"] - mirrored["loss"]) < 0.05


def test_tensorboard_serves_the_scalars_and_hparams(trained_run):
    port = free_port()
    logdir = os.path.join(trained_run["model_dir"], "logs")
    server = subprocess.Popen(
        [sys.executable, "-m", "tensorboard.main", "--logdir", logdir, "--host", "127.0.0.1",
         "--port", str(port), "--reload_interval", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                tags = requests.get(f"{base}/data/plugin/scalars/tags", timeout=5).json()
                if {"train", "validation"} <= set(tags):
                    break
            except requests.ConnectionError:
                pass
            if time.time() > deadline or server.poll() is not None:
                pytest.fail(f"TensorBoard did not come up: {server.stdout.read1().decode()}")
            time.sleep(1)
        assert {"epoch_loss", "epoch_accuracy", "tokens_per_sec", "learning_rate"} <= \
            set(tags["train"])
        assert {"epoch_loss", "epoch_accuracy"} <= set(tags["validation"])
        points = requests.get(f"{base}/data/plugin/scalars/scalars",
                              params={"run": "train", "tag": "tokens_per_sec"}, timeout=10).json()
        assert len(points) >= 3 and all(value > 0 for _, _, value in points)
        experiment = requests.post(f"{base}/data/plugin/hparams/experiment",
                                   json={"experimentName": ""}, timeout=10).json()
        names = {h["name"] for h in experiment["hparamInfos"]}
        assert {"model.preset", "train.learning_rate", "train.batch_size"} <= names
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.parametrize("flags, warned", [("fpu sse avx2 fma", True),
                                           ("fpu avx2 avx512f avx512_bf16", False)])
def test_emulated_bfloat16_is_warned_about(tmp_path, flags, warned):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
    try:
        message = training.set_precision("mixed_bfloat16", str(cpuinfo))
        assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
        assert (message is not None) == warned
        if warned:
            assert "slower than --mixed_precision=float32" in message
        assert training.set_precision("float32", str(cpuinfo)) is None
    finally:
        keras.mixed_precision.set_global_policy("float32")
