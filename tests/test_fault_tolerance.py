"""Step-level checkpoints: exact resume, kill -9, SIGTERM preemption, corrupt checkpoints,
a full disk."""

import os
import re
import shutil
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import ROOT, run_app
from kerlm import checkpointing, training

FAST = ["--task=sentiment", "--model=encoder_tiny", "--sequence_length=32", "--batch_size=64",
        "--learning_rate=1e-3", "--seed=7"]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}


def _weights(model_dir):
    model = training.load_model(model_dir)
    return [np.array(w) for w in model.weights]


def _keep_up_to(checkpoint_dir, step):
    """Forget the checkpoints after `step` (as if the run had been killed just after it)."""
    kept = []
    for path in tf.train.get_checkpoint_state(checkpoint_dir).all_model_checkpoint_paths:
        if int(path.rpartition("-")[2]) > step:
            for name in tf.io.gfile.glob(os.path.join(checkpoint_dir, path) + ".*"):
                os.remove(name)
        else:
            kept.append(path)
    checkpointing.write_state(checkpoint_dir, kept)


def test_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(tmp_path):
    """50 steps of 38-step epochs (so the resume is mid-epoch, with dropout, a shuffled
    stream and the learning-rate schedule all in flight), checkpoints every 10: resumed
    from step 20, the run ends where the uninterrupted one did."""
    whole, resumed = str(tmp_path / "whole"), str(tmp_path / "resumed")
    flags = [*FAST, "--train_steps=50", "--checkpoint_every_steps=10", "--max_to_keep=10"]
    run_app("train", *flags, f"--model_dir={whole}")
    shutil.copytree(whole, resumed)
    os.remove(os.path.join(resumed, "model.keras"))
    _keep_up_to(os.path.join(resumed, "checkpoints"), 20)
    result = run_app("train", f"--model_dir={resumed}")
    assert "Resuming from step 20" in result.stderr
    assert not re.search(r"step (10|20)/50", result.stderr)  # no step trained twice
    assert re.search(r"step 25/50", result.stderr)
    for a, b in zip(_weights(whole), _weights(resumed), strict=True):
        assert np.max(np.abs(a - b)) <= 1e-5


def _start(model_dir, *flags):
    log = open(os.path.join(os.path.dirname(model_dir), "train.log"), "w")
    process = subprocess.Popen(
        [sys.executable, os.path.join(ROOT, "apps", "train.py"), *FAST, *flags,
         f"--model_dir={model_dir}"], stdout=log, stderr=subprocess.STDOUT, env=ENV, cwd=ROOT)
    return process, log.name


def _wait_for_step(process, log_path, step, timeout=300):
    """The last logged step once it is >= `step`."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        with open(log_path) as f:
            steps = [int(s) for s in re.findall(r"step (\d+)/\d+", f.read())]
        if steps and steps[-1] >= step:
            return steps[-1]
        assert process.poll() is None, open(log_path).read()[-3000:]
        time.sleep(0.05)
    raise AssertionError(f"no step {step} within {timeout} s")


def test_kill_9_loses_at_most_the_checkpoint_interval(tmp_path):
    model_dir = str(tmp_path / "run")
    every = 5
    process, log_path = _start(model_dir, "--train_steps=400", "--log_every_steps=1",
                               f"--checkpoint_every_steps={every}")
    kill_after = int(np.random.default_rng().integers(12, 40))
    last = _wait_for_step(process, log_path, kill_after)
    process.kill()  # SIGKILL: no handler, no flush, no goodbye
    process.wait()
    with open(log_path) as f:
        last = max(last, *[int(s) for s in re.findall(r"step (\d+)/\d+", f.read())])
    result = run_app("train", "--train_steps=400", "--log_every_steps=100",
                     f"--model_dir={model_dir}")
    resumed = int(re.search(r"Resuming from step (\d+)", result.stderr).group(1))
    assert last - every <= resumed <= last + 1, (last, resumed)
    assert "step 400/400" in result.stderr


def test_sigterm_saves_at_the_next_step_and_exits_with_the_preempted_status(tmp_path):
    model_dir = str(tmp_path / "run")
    process, log_path = _start(model_dir, "--train_steps=400", "--log_every_steps=1",
                               "--checkpoint_every_steps=1000")
    last = _wait_for_step(process, log_path, 15)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=120) == checkpointing.EXIT_PREEMPTED
    with open(log_path) as f:
        log = f.read()
    assert "Preempted (SIGTERM): checkpoint of step" in log
    saved = int(re.search(r"checkpoint of step (\d+) saved", log).group(1))
    assert saved >= last
    result = run_app("train", "--train_steps=400", "--log_every_steps=100",
                     f"--model_dir={model_dir}")
    assert f"Resuming from step {saved}" in result.stderr


def test_a_corrupt_latest_checkpoint_falls_back_to_the_previous_one(tmp_path):
    model_dir = str(tmp_path / "run")
    run_app("train", *FAST, "--train_steps=30", "--checkpoint_every_steps=10",
            f"--model_dir={model_dir}")
    checkpoint_dir = os.path.join(model_dir, "checkpoints")
    data = os.path.join(checkpoint_dir, "step-30.data-00000-of-00001")
    with open(data, "r+b") as f:  # truncated, as by a crash or a copy cut short
        f.truncate(os.path.getsize(data) // 2)
    result = run_app("train", "--train_steps=40", f"--model_dir={model_dir}")
    assert re.search(r"Checkpoint \S+step-30 is unreadable \(.+\): falling back", result.stderr)
    assert "Resuming from step 20" in result.stderr and "Traceback" not in result.stderr
    assert os.path.exists(os.path.join(checkpoint_dir, "corrupt-step-30.index"))


def _small_model():
    model = keras.Sequential([keras.Input((100,)), keras.layers.Dense(100)])
    model.compile("adam", "mse")
    model.optimizer.build(model.trainable_variables)
    return model


def _tmpfs(path, size):
    """A filesystem of `size` at `path`, or None where mounting is not allowed."""
    os.makedirs(path, exist_ok=True)
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                            capture_output=True)
    return path if result.returncode == 0 else None


def test_a_full_disk_is_a_clear_error_and_keeps_the_previous_checkpoint(tmp_path):
    """On a real 200 kB filesystem where one checkpoint (~120 kB) fits but not two."""
    disk = _tmpfs(tmp_path / "disk", "200k")
    if disk is None:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        model = _small_model()
        checkpoints = checkpointing.StepCheckpoints(model, str(disk / "ckpt"), max_to_keep=1)
        checkpoints.save(1)
        kernel = np.array(model.layers[0].kernel)
        model.layers[0].kernel.assign(kernel + 1.0)
        with pytest.raises(checkpointing.CheckpointError) as error:
            checkpoints.save(2)
        message = str(error.value)
        assert "\n" not in message and "No space left on device" in message
        assert "the previous checkpoint, step 1, is kept" in message
        assert checkpointing.StepCheckpoints(model, str(disk / "ckpt")).restore() == 1
        np.testing.assert_array_equal(np.array(model.layers[0].kernel), kernel)
        assert not os.path.exists(disk / "ckpt" / "step-2_temp")
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_a_failed_write_names_the_step_and_what_is_kept(tmp_path, monkeypatch):
    """The same error wherever the write fails (here: the manager raising as TensorFlow
    does on ENOSPC), without a mount."""
    model = _small_model()
    checkpoints = checkpointing.StepCheckpoints(model, str(tmp_path / "ckpt"))
    checkpoints.save(5)

    def full(*args, **kwargs):
        raise tf.errors.ResourceExhaustedError(None, None, "{{function_node SaveV2}} "
                                               "x.tempstate; No space left on device [Op:SaveV2]")
    monkeypatch.setattr(checkpoints.manager, "save", full)
    with pytest.raises(checkpointing.CheckpointError,
                       match=r"^could not write the checkpoint of step 6 to \S+ \(x\.tempstate; "
                             r"No space left on device\); the previous checkpoint, step 5, is "
                             r"kept: free space and rerun to resume from it$"):
        checkpoints.save(6)
