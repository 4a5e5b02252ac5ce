"""SavedModel export: TF Serving layout, atomic versions, raw text in, kerlm-free loading."""

import json
import os
import subprocess
import sys

import numpy as np

from conftest import run_app

TEXTS = ["The battery died after two days, total waste of money.",
         "Absolutely loved this place, the staff were wonderful!",
         "It was okay.", "Not good", "ÉLÉGANT and très bien… 5 stars 😀"]

# Runs in a fresh interpreter: TensorFlow and TF Text only, never kerlm.
FRESH_PROCESS = r"""
import json, sys
import tensorflow as tf
import tensorflow_text  # registers the tokenizer ops the graph uses
model = tf.saved_model.load(sys.argv[1])
serve = model.signatures["serving_default"]
out = serve(text=tf.constant(json.loads(sys.argv[2])))
assert not any(m == "kerlm" or m.startswith("kerlm.") for m in sys.modules), "kerlm imported"
print(json.dumps({
    "inputs": {k: [v.dtype.name, v.shape.as_list()] for k, v in
               serve.structured_input_signature[1].items()},
    "outputs": {k: [x.decode() if isinstance(x, bytes) else x for x in v.numpy().tolist()]
                for k, v in out.items()},
}))
"""


def _load_in_fresh_process(path, texts):
    result = subprocess.run([sys.executable, "-c", FRESH_PROCESS, path, json.dumps(texts)],
                            capture_output=True, text=True, timeout=300,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_export_answers_raw_text_like_the_in_process_model(trained_run):
    from kerlm import tasks, training
    exported = _load_in_fresh_process(trained_run["export_path"], TEXTS)
    assert exported["inputs"] == {"text": ["string", [None]]}
    outputs = exported["outputs"]
    assert set(outputs) == {"label", "label_id", "probabilities"}

    task = tasks.restore_task(trained_run["model_dir"])
    expected = task.predict(training.load_model(trained_run["model_dir"]), TEXTS)
    np.testing.assert_allclose(
        outputs["probabilities"],
        [[answer["probabilities"][label] for label in task.labels.labels] for answer in expected],
        atol=1e-5)
    assert outputs["label"] == [a["label"] for a in expected]
    assert [task.labels.labels[i] for i in outputs["label_id"]] == [a["label"] for a in expected]
    np.testing.assert_allclose(np.sum(outputs["probabilities"], axis=1), 1.0, atol=1e-6)


def test_each_export_is_a_new_complete_version(trained_run, tmp_path):
    export_dir = str(tmp_path / "exports")
    for expected_version in ["1", "2"]:  # the model is unchanged: the second one is forced
        result = run_app("export", f"--model_dir={trained_run['model_dir']}",
                         f"--export_dir={export_dir}", "--model_name=sentiment",
                         "--force_export")
        assert result.stdout.strip().endswith(os.path.join("sentiment", expected_version))
    entries = sorted(os.listdir(os.path.join(export_dir, "sentiment")))
    assert entries == ["1", "2"]  # no temporary directory left behind
    assert os.path.exists(os.path.join(export_dir, "sentiment", "2", "saved_model.pb"))
    assert os.path.exists(os.path.join(export_dir, "sentiment", "2", "fingerprint.pb"))


def test_next_version_ignores_temporary_and_other_entries(tmp_path):
    from kerlm.export import next_version
    assert next_version(str(tmp_path / "missing")) == 1
    for name in ["1", "7", ".tmp-123", "notes"]:
        (tmp_path / name).mkdir()
    assert next_version(str(tmp_path)) == 8


def test_export_stores_each_weight_once(trained_run):
    """keras-team/keras#23553: ExportArchive wrote every weight twice; kerlm's export not."""
    import tensorflow as tf

    from kerlm import training
    reader = tf.train.load_checkpoint(
        os.path.join(trained_run["export_path"], "variables", "variables"))
    stored = {key: np.prod(shape) for key, shape in reader.get_variable_to_shape_map().items()
              if key != "_CHECKPOINTABLE_OBJECT_GRAPH"}
    model = training.load_model(trained_run["model_dir"])  # weights and dropout seeds
    assert sum(stored.values()) == sum(np.prod(v.shape) for v in model.variables)
    assert all(key.startswith("variables/") for key in stored), sorted(stored)[:5]
