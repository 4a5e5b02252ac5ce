"""Shared fixtures: one tiny trained-and-exported sentiment run for the whole session, toy
SavedModels and model servers."""

import inspect
import os
import re
import shutil
import socket
import subprocess
import sys
import time

import pytest
import requests
import tensorflow as tf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEXT = tf.TensorSpec([None], tf.string, name="text")
# Fixtures that train a model through apps/train.py or start model servers: every test
# using one is `slow` (`pytest -m "not slow"` is the fast set; CI runs everything), and so
# is every test that starts another Python process (an app, a server, a fresh interpreter:
# seconds each for TensorFlow's import alone).
SLOW_FIXTURES = {"trained_run", "multitask_run", "qa_run", "translation_run", "servers",
                 "served"}
_PROCESSES = re.compile(r"\b(run_app|start_server|subprocess\.(run|Popen|check_output))\(")


def pytest_collection_modifyitems(items):
    for item in items:
        function = getattr(item, "function", None)
        starts_processes = function is not None and _PROCESSES.search(
            inspect.getsource(function))
        if starts_processes or SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


def run_app(name, *args, check=True, input=None, env=None, timeout=600):
    """Run `apps/NAME.py ARGS` in a fresh Python process; return the CompletedProcess."""
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "apps", f"{name}.py"), *args], input=input,
        capture_output=True, text=True, timeout=timeout, cwd=ROOT,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})})
    if check and result.returncode != 0:
        raise AssertionError(f"apps/{name}.py failed ({result.returncode}):\n"
                             f"{result.stdout}\n{result.stderr[-4000:]}")
    return result


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(tmp_path, *flags):
    """Runs apps/serve.py with `flags` on a free port; returns (process, base URL, log path).

    gRPC listens on a free port too, unless `flags` give `--port`.
    """
    port = free_port()
    if not any(flag.startswith("--port") for flag in flags):
        flags = ("--port", str(free_port()), *flags)
    log = tmp_path / f"serve-{port}.log"
    with open(log, "w") as out:  # A file, not a pipe: a full pipe would block the server.
        process = subprocess.Popen(
            [sys.executable, "apps/serve.py", "--rest_api_port", str(port), *flags],
            cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    return process, f"http://127.0.0.1:{port}", log


def wait_until_serving(process, url, log, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"server exited with {process.returncode}:\n{log.read_text()}")
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            time.sleep(0.1)
    process.kill()
    pytest.fail(f"server not answering after {timeout} s:\n{log.read_text()}")


def serve_and_predict(tmp_path, model_name, base_path, rest_body, grpc_inputs):
    """Serves the export versions under `base_path` as `model_name` (apps/serve.py), posts
    `rest_body` to its REST predict URL and sends `grpc_inputs` ({name: list}) to its gRPC
    Predict (the default signature); returns (the REST response, the gRPC response)."""
    import grpc  # noqa: PLC0415 (only the serving tests need them)
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc  # noqa: PLC0415

    port = free_port()
    process, url, log = start_server(tmp_path, f"--port={port}", f"--model_name={model_name}",
                                     f"--model_base_path={base_path}")
    try:
        wait_until_serving(process, f"{url}/v1/models/{model_name}", log)
        rest = requests.post(f"{url}/v1/models/{model_name}:predict", json=rest_body,
                             timeout=120)
        request = predict_pb2.PredictRequest()
        request.model_spec.name = model_name
        for name, values in grpc_inputs.items():
            request.inputs[name].CopyFrom(tf.make_tensor_proto(values))
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(
                request, timeout=120)
    finally:
        process.terminate()
        process.wait(timeout=30)
    return rest, response


TINY_RUN_FLAGS = ["--task=sentiment", "--model=encoder_tiny", "--sequence_length=64",
                  "--train_steps=60", "--batch_size=32", "--learning_rate=1e-3",
                  "--log_every_steps=10"]


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """A sentiment run trained for 60 steps on the embedded data and exported once."""
    root = tmp_path_factory.mktemp("sentiment_run")
    model_dir, export_dir = str(root / "model"), str(root / "exports")
    result = run_app("train", *TINY_RUN_FLAGS, f"--model_dir={model_dir}",
                     f"--export_dir={export_dir}")
    return {"model_dir": model_dir, "export_dir": export_dir,
            "export_path": os.path.join(export_dir, "sentiment", "1"), "log": result.stderr}


class ToyClassifier(tf.Module):
    """Labels texts longer than `threshold` characters "long"; versions differ by threshold.

    Signatures: serving_default (text -> label, label_id, probabilities, text_bytes),
    length (text -> length) and weigh (text, weight -> score; fails for weight < 0).
    """

    def __init__(self, threshold):
        super().__init__()
        self.threshold = threshold

    @tf.function(input_signature=[TEXT])
    def classify(self, text):
        is_long = tf.strings.length(text) > self.threshold
        p_long = tf.where(is_long, 0.75, 0.25)
        return {"label": tf.where(is_long, "long", "short"),
                "label_id": tf.cast(is_long, tf.int64),
                "probabilities": tf.stack([1 - p_long, p_long], axis=-1),
                "text_bytes": tf.identity(text)}

    @tf.function(input_signature=[TEXT])
    def length(self, text):
        return {"length": tf.strings.length(text)}

    @tf.function(input_signature=[TEXT, tf.TensorSpec([None], tf.float32, name="weight")])
    def weigh(self, text, weight):
        with tf.control_dependencies([tf.debugging.assert_non_negative(
                weight, message="weight must be >= 0")]):
            return {"score": tf.cast(tf.strings.length(text), tf.float32) * weight}

    def save(self, path):
        tf.saved_model.save(self, str(path), signatures={
            "serving_default": self.classify, "length": self.length, "weigh": self.weigh})


@pytest.fixture(scope="session")
def models(tmp_path_factory):
    """sentiment/{1,2} (thresholds 3 and 5) plus an ignored .tmp-3-1; other/7 (= version 1);
    an empty base path."""
    root = tmp_path_factory.mktemp("models")
    sentiment = root / "sentiment"
    ToyClassifier(3).save(sentiment / "1")
    ToyClassifier(5).save(sentiment / "2")
    shutil.copytree(sentiment / "1", sentiment / ".tmp-3-1")
    shutil.copytree(sentiment / "1", root / "other" / "7")
    (root / "empty").mkdir()
    return root
