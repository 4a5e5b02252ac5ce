"""Contract tests every registered backbone and every registered task must pass.

A new backbone (a module registering its class and presets) or a new task (a module
registering itself in `kerlm.tasks.registry`) is covered here without new test code:
keras-hub's `run_backbone_test` / `run_task_test` idea.
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerlm import export, heads, models, tasks, training
from kerlm.tasks import registry


def _smallest_presets():
    """The smallest generic preset of each registered backbone class."""
    best = {}
    for name in models.list_presets():
        spec = models.registry.get_preset(name)
        config = spec["config"]
        if "vocabulary_size" in config:  # a published architecture: too big for tests
            continue
        size = config["num_layers"] * config["hidden_dim"]
        if spec["class"] not in best or size < best[spec["class"]][0]:
            best[spec["class"]] = (size, name)
    return sorted(name for _, name in best.values())


BACKBONES = _smallest_presets()
TASKS = [spec.name for spec in registry.specs()]


def _inputs(backbone, batch=2, length=9, seed=0):
    """Random features for every input of a backbone (right-padded second row)."""
    rng = np.random.default_rng(seed)
    out = {}
    for name in backbone.input:
        if name.endswith("padding_mask"):
            mask = np.ones((batch, length), "int32")
            mask[1, length - 3:] = 0
            out[name] = mask
        elif name.endswith("segment_ids"):
            out[name] = np.zeros((batch, length), "int32")
        else:
            out[name] = rng.integers(4, backbone.vocabulary_size, (batch, length)).astype("int32")
    return out


def _flat(outputs):
    return [keras.ops.convert_to_numpy(x) for x in keras.tree.flatten(outputs)]


def _build(preset):
    keras.utils.set_random_seed(1)
    return models.Backbone.from_preset(preset, vocabulary_size=61, max_sequence_length=32)


@pytest.mark.parametrize("preset", BACKBONES)
def test_backbone_declares_known_capabilities(preset):
    backbone = _build(preset)
    assert backbone.capabilities and backbone.capabilities <= {"encode", "causal", "seq2seq"}


@pytest.mark.parametrize("preset", BACKBONES)
def test_backbone_preset_and_keras_round_trips_give_identical_outputs(preset, tmp_path):
    backbone = _build(preset)
    x = _inputs(backbone)
    expected = _flat(backbone(x))
    backbone.save_to_preset(str(tmp_path / "preset"))
    for loaded in (models.Backbone.from_preset(str(tmp_path / "preset")), _keras_round_trip(
            backbone, tmp_path / "backbone.keras")):
        for a, b in zip(expected, _flat(loaded(x))):
            np.testing.assert_allclose(a, b, atol=1e-6)


def _keras_round_trip(model, path):
    model.save(str(path))
    return keras.saving.load_model(str(path))


def _greedy_without_cache(lm, inputs, prompt_key, steps):
    """Greedy tokens from full forward passes over the whole prefix at every step."""
    sequence = inputs[prompt_key]
    for _ in range(steps):
        mask_key = prompt_key.replace("token_ids", "padding_mask")
        logits = keras.ops.convert_to_numpy(
            lm({**inputs, prompt_key: sequence, mask_key: np.ones_like(sequence)}))
        sequence = np.concatenate([sequence, logits[:, -1:].argmax(-1).astype("int32")], 1)
    return sequence


@pytest.mark.parametrize("preset", BACKBONES)
def test_cached_decoding_equals_the_full_forward(preset):
    backbone = _build(preset)
    rng = np.random.default_rng(2)
    for w in backbone.weights:  # larger weights than the 0.02 initializer: varied tokens
        if len(w.shape) > 1:
            w.assign(rng.normal(0.0, 0.4, size=w.shape).astype("float32"))
    prompt = np.array([[5, 6, 7], [8, 9, 10]], "int32")
    if "causal" in backbone.capabilities:
        lm, inputs, key = heads.CausalLM(backbone), {"token_ids": prompt}, "token_ids"
        cached = lm.generate({"token_ids": prompt, "padding_mask": np.ones_like(prompt)},
                             max_length=8, jit_compile=False)["token_ids"]
    elif "seq2seq" in backbone.capabilities:
        lm, key = heads.Seq2SeqLM(backbone), "decoder_token_ids"
        inputs = {"encoder_token_ids": prompt, "encoder_padding_mask": np.ones_like(prompt),
                  "decoder_token_ids": np.full((2, 1), 2, "int32")}
        cached = lm.generate(inputs, max_length=6, start_token_id=2,
                             jit_compile=False)["token_ids"]
    else:
        pytest.skip(f"{preset} does not decode")
    steps = cached.shape[1] - inputs[key].shape[1]
    np.testing.assert_array_equal(cached, _greedy_without_cache(lm, inputs, key, steps))


@pytest.mark.parametrize("preset", BACKBONES)
def test_backbone_under_mixed_precision_computes_in_bfloat16_and_stays_finite(preset):
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        backbone = _build(preset)
        assert backbone.compute_dtype == "bfloat16" and backbone.variable_dtype == "float32"
        for out in _flat(backbone(_inputs(backbone))):
            assert np.isfinite(out.astype("float32")).all()
    finally:
        keras.mixed_precision.set_global_policy("float32")


# Tasks ----------------------------------------------------------------------------------
def _head(records, n):
    """The first `n` records (of each member, for a multi-task run)."""
    return {k: v[:n] for k, v in records.items()} if isinstance(records, dict) else records[:n]


def _tiny_task(name):
    """The task with its default options on the smallest backbone that fits it."""
    capability = registry.get(name).task_class.capability
    preset = next(p for p in BACKBONES
                  if capability is None or capability in models.preset_capabilities(p))
    return tasks.get_task(tasks.default_config(name, {
        "model.preset": preset, "model.vocabulary_size": 200, "model.dropout": 0.0,
        "train.batch_size": 8}))


@pytest.fixture(scope="module", params=TASKS)
def task_run(request, tmp_path_factory):
    """A task prepared on a few embedded records, its model and one training batch."""
    keras.utils.set_random_seed(0)
    task = _tiny_task(request.param)
    model_dir = str(tmp_path_factory.mktemp(request.param))
    records = _head(task.read("train"), 48)
    task.prepare(records, model_dir)
    batch = task.dataset(records, training=True).take(1).cache()
    model = task.new_model()
    return {"task": task, "model": model, "batch": batch, "model_dir": model_dir}


@pytest.mark.slow
def test_task_training_steps_lower_the_loss(task_run):
    task, model, batch = task_run["task"], task_run["model"], task_run["batch"]
    task.compile_model(model, keras.optimizers.Adam(1e-3))
    before = model.evaluate(batch, verbose=0, return_dict=True)["loss"]
    model.fit(batch.repeat(40), verbose=0)
    after = model.evaluate(batch, verbose=0, return_dict=True)["loss"]
    assert after < 0.7 * before, (before, after)


@pytest.mark.slow
def test_task_model_save_load_round_trip(task_run):
    model, model_dir = task_run["model"], task_run["model_dir"]
    features = next(iter(task_run["batch"]))[0]
    training.save_model(model, model_dir)
    loaded = training.load_model(model_dir)
    for a, b in zip(_flat(model(features, training=False)),
                    _flat(loaded(features, training=False))):
        np.testing.assert_allclose(a, b, atol=1e-5)
    assert models.Backbone.from_preset(os.path.join(model_dir, training.BACKBONE_DIR)
                                       ).count_params() == model.backbone.count_params()


FRESH = """
import json, sys
import tensorflow as tf
import tensorflow_text  # noqa: F401 (registers the tokenizers' ops)
loaded = tf.saved_model.load(sys.argv[1])
shapes = {}
for name, fn in loaded.signatures.items():
    spec = fn.structured_input_signature[1]
    args = {k: tf.constant(["A small test of the export ."]) if s.dtype == tf.string
            else tf.constant([5], s.dtype) for k, s in spec.items()}
    shapes[name] = {k: v.shape.as_list() for k, v in fn(**args).items()}
assert not [m for m in sys.modules if m.startswith("kerlm")]
print(json.dumps(shapes))
"""


@pytest.mark.slow
def test_task_export_answers_raw_text_in_a_fresh_process_without_kerlm(task_run, tmp_path):
    task, model = task_run["task"], task_run["model"]
    path = export.export_task(task, model, str(tmp_path))
    assert os.path.basename(os.path.dirname(path)) == task.export_name
    result = subprocess.run([sys.executable, "-c", FRESH, path], capture_output=True, text=True,
                            timeout=300, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
                            cwd=str(tmp_path))
    assert result.returncode == 0, result.stderr[-3000:]
    shapes = json.loads(result.stdout.strip().splitlines()[-1])
    assert "serving_default" in shapes
    for outputs in shapes.values():  # one answer per input row
        assert outputs and all(shape[0] == 1 for shape in outputs.values()), outputs


def test_every_task_declares_a_loss_and_options():
    for spec in registry.specs():
        assert tf.nest.flatten(tasks.get_task(tasks.default_config(spec.name)).loss())
        assert tasks.default_config(spec.name).options is not None
