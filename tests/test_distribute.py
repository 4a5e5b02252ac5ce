"""Strategies by name and their errors, TPU-safe steps (XLA, static batches), and the
parameter-server loop on a local cluster."""

import json
import os
import re
import sys

import numpy as np
import pytest
import tensorflow as tf

from conftest import ROOT
from kerlm import distribute, local_cluster, steps, tasks, training
from kerlm.config import ConfigError, TrainConfig

TINY = {"sentiment": ("encoder_tiny", {"sequence_length": 32}),
        "qa": ("encoder_tiny", {"sequence_length": 96, "doc_stride": 32, "max_query_length": 32}),
        "masked_lm": ("encoder_tiny", {"sequence_length": 32}),
        "sentence_embedding": ("encoder_tiny", {"sequence_length": 32}),
        "causal_lm": ("decoder_tiny", {"sequence_length": 32}),
        "translation": ("encoder_decoder_tiny", {"sequence_length": 32}),
        "summarization": ("encoder_decoder_tiny", {"sequence_length": 32}),
        "span_corruption": ("encoder_decoder_tiny", {"sequence_length": 32})}


@pytest.mark.parametrize("name", ["default", "one_device", "mirrored"])
def test_one_machine_strategies(name):
    strategy = distribute.get_strategy(TrainConfig(strategy=name))
    assert strategy.num_replicas_in_sync >= 1
    role = distribute.Role(strategy, "/tmp/run")
    assert role.chief and role.num_workers == 1 and role.write_dir("/tmp/run/x") == "/tmp/run/x"


@pytest.mark.parametrize("tpu, message", [
    ("", r"^--strategy=tpu needs --tpu=NAME_OR_ADDRESS"),
    ("no-such-tpu", r"^--tpu=no-such-tpu: no TPU reachable \(.+\)$")])
def test_tpu_without_a_tpu_is_a_one_line_error(tpu, message):
    with pytest.raises(ConfigError, match=message) as error:
        distribute.get_strategy(TrainConfig(strategy="tpu", tpu=tpu))
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("tf_config, message", [
    (None, r"^--strategy=parameter_server needs TF_CONFIG"),
    ("{not json", r"^TF_CONFIG is not valid JSON"),
    ('{"cluster": {}}', r"^TF_CONFIG needs 'cluster' and 'task' keys")])
def test_a_cluster_without_a_usable_tf_config_is_a_one_line_error(monkeypatch, tf_config,
                                                                    message):
    if tf_config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", tf_config)
    with pytest.raises(ConfigError, match=message):
        distribute.get_strategy(TrainConfig(strategy="parameter_server"))


def test_a_worker_writes_to_its_own_temporary_directory(monkeypatch):
    class Resolver:  # what MultiWorkerMirroredStrategy holds for worker 1 of 2
        task_type, task_id = "worker", 1

        def cluster_spec(self):
            return tf.train.ClusterSpec({"worker": ["a:1", "b:2"]})

    class Strategy:
        cluster_resolver = Resolver()

    role = distribute.Role(Strategy(), "/runs/x")
    try:
        assert not role.chief and role.num_workers == 2
        path = role.write_dir("/runs/x/checkpoints")
        assert path.endswith(os.path.join("", "checkpoints")) and not path.startswith("/runs")
        assert os.path.basename(os.path.dirname(path)).startswith("kerlm-worker1-")
    finally:
        role.cleanup()
    assert not os.path.exists(os.path.dirname(path))


def test_full_batches_keeps_the_batch_dimension_static():
    ds = tf.data.Dataset.from_tensor_slices(({"ids": np.ones((10, 3))}, np.zeros(10))).batch(4)
    assert [int(x["ids"].shape[0]) for x, _ in distribute.full_batches(ds)] == [4, 4]


def _first_steps(name, jit_compile, batches=2):
    preset, options = TINY[name]
    config = tasks.default_config(name, {"model.preset": preset, "model.vocabulary_size": 400,
                                         "model.dropout": 0.0,  # the RNGs differ under XLA
                                         "train.batch_size": 8, "train.seed": 3,
                                         **{f"{name}.{k}": v for k, v in options.items()}})
    task = tasks.get_task(config)
    records = task.read("train")
    records = records[:64] if isinstance(records, list) else records
    task.prepare(records, f"/tmp/kerlm-jit-{name}")
    dataset = distribute.full_batches(task.dataset(records, training=True))
    model = task.new_model()
    rng = np.random.default_rng(3)  # the same weights in both calls, whatever RNG state
    for weight in model.weights:
        weight.assign(rng.normal(0.0, 0.05, weight.shape).astype(weight.dtype))
    task.compile_model(model, training.make_optimizer(config.train, 10))
    strategy = tf.distribute.get_strategy()
    steps.build(model, strategy, dataset)
    loop = steps.Steps(model, strategy, task.num_tokens, jit_compile=jit_compile)
    iterator = iter(strategy.experimental_distribute_dataset(dataset.repeat()))
    losses = []
    for _ in range(batches):
        loop.train(iterator)
        losses.append(loop.results()["loss"])
    return losses


@pytest.mark.parametrize("name", [
    "sentiment", *[pytest.param(n, marks=pytest.mark.slow) for n in TINY if n != "sentiment"]])
def test_every_task_trains_with_the_step_compiled_by_xla(name):
    """TPU-safety on CPU: the train step of every task compiles with `jit_compile=True` on
    full batches, and gives the loss of the uncompiled step on the same weights (to 1 %:
    the masked-LM data pipeline draws its masks again in each run)."""
    eager, compiled = _first_steps(name, False), _first_steps(name, True)
    assert all(np.isfinite(compiled))
    np.testing.assert_allclose(compiled[0], eager[0], rtol=1e-2)


@pytest.mark.slow
def test_parameter_server_trains_asynchronously_and_resumes(tmp_path):
    """One chief, two workers, one parameter server on 127.0.0.1: the run finishes and
    learns (dev accuracy well above chance), the chief wrote the run; a second run with
    more steps resumes from its checkpoint."""
    model_dir = str(tmp_path / "run")
    argv = [sys.executable, os.path.join(ROOT, "apps", "train.py"),
            "--strategy=parameter_server", "--task=sentiment", "--model=encoder_tiny",
            "--sequence_length=32", "--batch_size=64", "--learning_rate=1e-3",
            "--log_every_steps=10", "--checkpoint_every_steps=20", f"--model_dir={model_dir}"]
    env = {"TF_CPP_MIN_LOG_LEVEL": "3"}
    for steps_, log_dir in ((40, "first"), (60, "second")):
        cluster = local_cluster.Cluster([*argv, f"--train_steps={steps_}"],
                                        local_cluster.cluster_spec(2, ps=1, chief=True),
                                        str(tmp_path / log_dir), env)
        try:
            codes = cluster.wait(timeout=600)
        finally:
            cluster.stop()
        log = cluster.log("chief0")
        assert codes == {"chief0": 0}, log[-3000:]
    first = (tmp_path / "first" / "chief0.log").read_text()
    assert "asynchronously on 2 worker(s) and 1 parameter server(s)" in first
    assert len(re.findall(r"step \d+/40  loss [\d.]+", first)) == 3  # the first step: none
    assert "Resuming from step 40" in log and "step 60/60" in log
    with open(os.path.join(model_dir, "dev_metrics.json")) as f:
        assert json.load(f)["accuracy"] > 0.6
    assert training.trained_steps(model_dir) == 60


@pytest.mark.parametrize("name, choice, expected", [
    ("masked_lm", "auto", True), ("causal_lm", "auto", True), ("span_corruption", "auto", False),
    ("sentiment", "auto", False), ("translation", "auto", False), ("sentiment", "true", True),
    ("masked_lm", "false", False)])
def test_jit_compile_auto_is_the_tasks_measured_choice(name, choice, expected):
    task = tasks.get_task(tasks.default_config(name, {"train.jit_compile": choice}))
    assert task.use_jit_compile() is expected
