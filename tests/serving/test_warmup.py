"""Warm-up: every export carries TF Serving's warm-up file; the server replays it on load."""

import logging
import os
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow_serving.apis import prediction_log_pb2

from kerlm.export import export_task
from kerlm.serving import BatchScheduler, ModelRegistry, VersionPolicy, protos, warmup


def _records(export_path):
    """The warm-up file's PredictionLogs, read with TensorFlow and the protos only."""
    path = os.path.join(export_path, "assets.extra", "tf_serving_warmup_requests")
    return [prediction_log_pb2.PredictionLog.FromString(record.numpy())
            for record in tf.data.TFRecordDataset(path)]


def _inputs(request):
    return {name: tf.make_ndarray(t).tolist() for name, t in request.inputs.items()}


def test_export_has_a_warmup_request_per_signature(trained_run):
    logs = _records(trained_run["export_path"])
    predict_signatures = {
        name for name, s in protos.read_signature_defs(trained_run["export_path"]).items()
        if s.method_name == "tensorflow/serving/predict"}
    assert predict_signatures == {"serving_default"}
    assert [log.WhichOneof("log_type") for log in logs] == ["predict_log"]
    request = logs[0].predict_log.request
    assert (request.model_spec.name, request.model_spec.signature_name) == (
        "sentiment", "serving_default")
    assert _inputs(request) == {"text": [b"The quick brown fox jumps over the lazy dog."] * 2}


class _Task:
    """What export asks of a task: one two-input signature; `inputs` become its
    warmup_inputs()."""

    export_name = "echo"

    def __init__(self, inputs=None):
        from kerlm import tasks
        self.config = tasks.default_config("sentiment")
        self.inputs = inputs

    def assets(self):
        return None

    def warmup_inputs(self):
        return self.inputs

    def serving_functions(self, model):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text"),
                                      tf.TensorSpec([None], tf.int32, name="max_length")])
        def serve(text, max_length):
            return {"length": tf.strings.length(text) + max_length}

        return {"serving_default": serve}, []


@pytest.fixture(scope="module")
def tiny_model():
    return keras.Sequential([keras.Input([1]), keras.layers.Dense(1)])


def test_export_uses_the_tasks_warmup_inputs(tiny_model, tmp_path):
    default = export_task(_Task(), tiny_model, str(tmp_path))
    assert _inputs(_records(default)[0].predict_log.request) == {
        "text": [b"The quick brown fox jumps over the lazy dog."] * 2, "max_length": [8, 8]}
    given = {"serving_default": {"text": ["Hola."], "max_length": [3]}}
    path = export_task(_Task(given), tiny_model, str(tmp_path))
    assert path == os.path.join(str(tmp_path), "echo", "2")
    assert _inputs(_records(path)[0].predict_log.request) == {
        "text": [b"Hola."], "max_length": [3]}


@pytest.mark.parametrize("inputs,message", [
    ({"nope": {"text": ["a"]}}, r"unknown signatures \['nope'\]"),
    ({"serving_default": {"text": ["a"]}}, r"are \['text'\]; it takes \['max_length', 'text'\]"),
])
def test_export_rejects_bad_warmup_inputs(tiny_model, tmp_path, inputs, message):
    with pytest.raises(ValueError, match=message):
        export_task(_Task(inputs), tiny_model, str(tmp_path))
    assert os.listdir(tmp_path / "echo") == []  # no version, no temporary directory left


def test_example_inputs_follow_each_input_spec():
    def info(dtype, shape):
        return meta_graph_pb2.TensorInfo(dtype=dtype.as_datatype_enum,
                                         tensor_shape=tf.TensorShape(shape).as_proto())

    signature_def = meta_graph_pb2.SignatureDef(
        method_name="tensorflow/serving/predict",
        inputs={"ids": info(tf.int64, [None, 3]), "mask": info(tf.bool, [None, None]),
                "scale": info(tf.float32, []), "any": info(tf.float64, None)})
    init_op = meta_graph_pb2.SignatureDef(inputs={"x": info(tf.resource, [])})
    request, = warmup.example_requests({"s": signature_def, "__saved_model_init_op": init_op},
                                       "m")
    assert request.model_spec.signature_name == "s"
    assert _inputs(request) == {"ids": [[8, 8, 8]] * 2, "mask": [[False]] * 2, "scale": 0.0,
                                "any": [0.0, 0.0]}
    with pytest.raises(ValueError, match="No default warm-up value for input 'x' of dtype "
                                         "resource"):
        warmup.example_requests({"s": meta_graph_pb2.SignatureDef(
            method_name="tensorflow/serving/predict", inputs={"x": info(tf.resource, [])})},
            "m")


@pytest.fixture
def toy_with_warmup(models, tmp_path):
    """A copy of the toy model's version 1, with warm-up requests (weigh's given)."""
    base = tmp_path / "toy"
    shutil.copytree(models / "sentiment" / "1", base / "1")
    warmup.write_requests(str(base / "1"), "toy",
                          {"weigh": {"text": ["ab"], "weight": np.array([2.0], np.float32)}})
    return base


def test_registry_replays_warmup_requests_before_serving(toy_with_warmup, caplog):
    with caplog.at_level(logging.INFO, logger="absl"):
        registry = ModelRegistry()
        registry.add("toy", str(toy_with_warmup))
    assert registry.get("toy").warmup_requests == 3  # length, serving_default, weigh
    assert "Warm-up of toy version 1: replayed 3 requests in" in caplog.text

    batching = BatchScheduler()
    registry = ModelRegistry(batching)
    registry.add("toy", str(toy_with_warmup))
    batching.close()
    assert registry.get("toy").warmup_requests == 3

    registry = ModelRegistry(warm_up=False)
    registry.add("toy", str(toy_with_warmup))
    assert registry.get("toy").warmup_requests == 0


def test_model_without_warmup_file_loads_without_replay(models):
    registry = ModelRegistry()
    registry.add("toy", str(models / "sentiment"), VersionPolicy("all"))
    assert [registry.get("toy", v).warmup_requests for v in (1, 2)] == [0, 0]


def test_a_failing_warmup_request_fails_the_load(toy_with_warmup):
    warmup.write_requests(str(toy_with_warmup / "1"), "toy",
                          {"weigh": {"text": ["ab"], "weight": np.array([-1.0], np.float32)}})
    with pytest.raises(ValueError, match=r"(?s)Warm-up request 2 of toy version 1 .* "
                                         r"failed: .*weight must be >= 0"):
        ModelRegistry().add("toy", str(toy_with_warmup))


def test_a_malformed_warmup_file_fails_the_load(toy_with_warmup):
    with open(toy_with_warmup / "1" / warmup.WARMUP_FILE, "wb") as f:
        f.write(b"not a TFRecord")
    with pytest.raises(ValueError, match="is not a TFRecord of PredictionLog protos"):
        ModelRegistry().add("toy", str(toy_with_warmup))
