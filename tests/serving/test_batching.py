"""kerlm.serving.batching: TF Serving's BatchingParameters and the BatchScheduler."""

import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2

from conftest import ROOT, free_port
from kerlm.serving import (BatchScheduler, ModelRegistry, ServingError,
                           parse_batching_parameters, protos)

LONG = 60_000_000  # batch_timeout_micros that no test waits for: batches run when full


def test_parse_batching_parameters():
    text = """
        # TF Serving's format: wrappers for the scalars.
        max_batch_size { value: 32 }
        batch_timeout_micros { value: 1000 }
        max_enqueued_batches { value: 100 }
        num_batch_threads { value: 4 }
        thread_pool_name { value: "model_server_batch_threads" }
        allowed_batch_sizes: 16
        allowed_batch_sizes: 32
        pad_variable_length_inputs: true
    """
    assert parse_batching_parameters(text) == {
        "max_batch_size": 32, "batch_timeout_micros": 1000, "max_enqueued_batches": 100,
        "num_batch_threads": 4}
    assert parse_batching_parameters("") == {}
    assert parse_batching_parameters("batch_timeout_micros { value: 0 }") == {
        "batch_timeout_micros": 0}


@pytest.mark.parametrize("text,message", [
    ("max_batch_size: 32", "1:17 : 'max_batch_size: 32': Expected \"{\""),
    ("max_batch_size { value: 32 }\nmax_batch_sise { value: 1 }",
     '2:1 : Message type "tensorflow.serving.BatchingParameters" has no field named '
     '"max_batch_sise"'),
    ("num_batch_threads { value: 0 }", "num_batch_threads must be >= 1, got 0"),
    ("batch_timeout_micros { value: -1 }", "batch_timeout_micros must be >= 0, got -1"),
])
def test_parse_batching_parameters_errors(text, message):
    with pytest.raises(ValueError, match=message):
        parse_batching_parameters(text)


@pytest.fixture
def calls():
    """Rows of each call of `double`, in order."""
    return []


@pytest.fixture
def double(calls):
    def fn(inputs):
        calls.append(len(inputs["x"]))
        return {"y": inputs["x"] * 2, "n": np.full(len(inputs["x"]), len(inputs["x"]))}
    return fn


def _concurrently(*fns):
    """Runs each fn in its own thread; returns their results (or exceptions) in order."""
    results = [None] * len(fns)

    def run(i):
        try:
            results[i] = fns[i]()
        except Exception as e:  # noqa: BLE001 - returned to the test
            results[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(fns))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


def test_concurrent_requests_are_merged_and_split_back(double, calls):
    scheduler = BatchScheduler(max_batch_size=6, batch_timeout_micros=LONG)
    rows = [np.arange(1), np.arange(10, 12), np.arange(20, 23)]  # 6 rows: a full batch
    results = _concurrently(*[lambda x=x: scheduler.run("m", double, {"x": x}) for x in rows])
    scheduler.close()
    assert calls == [6]
    assert scheduler.merged_calls == {3: 1}
    for x, result in zip(rows, results):
        np.testing.assert_array_equal(result["y"], x * 2)
        np.testing.assert_array_equal(result["n"], [6] * len(x))


def test_different_inner_shapes_or_keys_are_not_merged(calls):
    def fn(inputs):
        calls.append(inputs["x"].shape)
        return {"y": inputs["x"].sum(axis=1)}

    scheduler = BatchScheduler(max_batch_size=2, batch_timeout_micros=LONG)
    inputs = [("a", np.ones([1, 2])), ("a", np.ones([1, 3])), ("a", np.ones([1, 2])),
              ("a", np.ones([1, 3])), ("b", np.ones([1, 2])), ("b", np.ones([1, 2]))]
    results = _concurrently(*[lambda k=k, x=x: scheduler.run(k, fn, {"x": x})
                              for k, x in inputs])
    scheduler.close()
    assert sorted(calls) == [(2, 2), (2, 2), (2, 3)]
    assert [r["y"].tolist() for r in results] == [[2.0], [3.0], [2.0], [3.0], [2.0], [2.0]]


def test_scalars_and_oversized_requests_run_alone_at_once(calls):
    def fn(inputs):
        calls.append(threading.current_thread())
        return {"y": inputs["x"]}

    scheduler = BatchScheduler(max_batch_size=2, batch_timeout_micros=LONG)
    for x in [np.array(1), np.arange(3), np.zeros([0, 2])]:
        assert scheduler.run("m", fn, {"x": x})["y"].shape == x.shape
    uneven = {"x": np.arange(1), "z": np.arange(2)}
    assert scheduler.run("m", lambda inputs: inputs, uneven) == uneven
    scheduler.close()
    assert calls == [threading.current_thread()] * 3


def test_a_failing_batch_runs_each_request_alone(calls):
    def fn(inputs):
        calls.append(len(inputs["x"]))
        if (inputs["x"] < 0).any():
            raise ServingError("negative input")
        return {"y": inputs["x"]}

    scheduler = BatchScheduler(max_batch_size=3, batch_timeout_micros=LONG)
    good, bad = np.array([1, 2]), np.array([-1])
    results = _concurrently(lambda: scheduler.run("m", fn, {"x": good}),
                            lambda: scheduler.run("m", fn, {"x": bad}))
    scheduler.close()
    assert sorted(calls[1:]) == [1, 2] and calls[0] == 3
    np.testing.assert_array_equal(results[0]["y"], good)
    assert isinstance(results[1], ServingError) and str(results[1]) == "negative input"
    assert scheduler.merged_calls == {}


def test_outputs_without_batch_dimension_are_computed_alone(calls):
    def fn(inputs):
        calls.append(len(inputs["x"]))
        return {"total": inputs["x"].sum()}

    scheduler = BatchScheduler(max_batch_size=2, batch_timeout_micros=LONG)
    results = _concurrently(lambda: scheduler.run("m", fn, {"x": np.array([1])}),
                            lambda: scheduler.run("m", fn, {"x": np.array([5])}))
    scheduler.close()
    assert calls == [2, 1, 1]
    assert [int(r["total"]) for r in results] == [1, 5]


def test_full_queue_is_unavailable():
    started, release = threading.Event(), threading.Event()

    def blocking(inputs):
        started.set()
        release.wait(timeout=30)
        return {"y": inputs["x"]}

    scheduler = BatchScheduler(max_batch_size=1, max_enqueued_batches=1, num_batch_threads=1)
    first = threading.Thread(target=scheduler.run, args=("m", blocking, {"x": np.arange(1)}))
    first.start()
    assert started.wait(timeout=30)  # the only batch thread is busy from now on
    results = []

    def queued():
        try:
            results.append(scheduler.run("m", blocking, {"x": np.arange(1)}))
        except ServingError as e:
            results.append(e)

    others = [threading.Thread(target=queued) for _ in range(2)]
    for thread in others:
        thread.start()
    deadline = time.monotonic() + 30
    while not results and time.monotonic() < deadline:  # one of the two is refused at once
        time.sleep(0.01)
    release.set()
    for thread in [first, *others]:
        thread.join(timeout=30)
    scheduler.close()
    refused = [r for r in results if isinstance(r, ServingError)]
    assert len(results) == 2 and len(refused) == 1
    assert refused[0].code == "UNAVAILABLE" and "queue" in str(refused[0])


def test_timeout_runs_a_partial_batch(double, calls):
    scheduler = BatchScheduler(max_batch_size=100, batch_timeout_micros=1000)
    assert scheduler.run("m", double, {"x": np.arange(2)})["y"].tolist() == [0, 2]
    scheduler.close()
    with pytest.raises(ServingError, match="shut down"):
        scheduler.run("m", double, {"x": np.arange(2)})


def test_rest_and_grpc_requests_merge_in_one_call(models):
    scheduler = BatchScheduler(max_batch_size=3, batch_timeout_micros=LONG)
    registry = ModelRegistry(scheduler)
    registry.add("toy", str(models / "sentiment"))
    model = registry.get("toy")
    request = predict_pb2.PredictRequest()
    request.model_spec.signature_name = "length"
    request.inputs["text"].CopyFrom(tf.make_tensor_proto(["abcdef"]))
    rest, grpc = _concurrently(lambda: model.predict("length", "instances", ["ab", "abc"]),
                               lambda: protos.predict(model, request))
    scheduler.close()
    assert scheduler.merged_calls == {2: 1}
    assert rest == {"predictions": [2, 3]}
    assert tf.make_ndarray(grpc.outputs["length"]).tolist() == [6]


def _serve(*flags):
    return subprocess.run([sys.executable, "apps/serve.py", "--rest_api_port",
                           str(free_port()), "--port", str(free_port()), *flags], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.slow
@pytest.mark.parametrize("flags,message", [
    (["--batching_parameters_file=/x"], "--batching_parameters_file needs --enable_batching"),
    (["--enable_batching", "--batching_parameters_file=/nonexistent"], "/nonexistent"),
    (["--port=0", "--rest_api_port=0"], "nothing to serve"),
])
def test_startup_flag_errors(models, flags, message):
    result = _serve("--model_name=m", f"--model_base_path={models / 'sentiment'}", *flags)
    assert result.returncode != 0
    assert message in result.stderr


@pytest.mark.slow
def test_startup_fails_on_bad_batching_parameters(models, tmp_path):
    path = tmp_path / "batching.config"
    path.write_text("max_batch_size { value: 8 }\nnum_batch_threads: 2\n")
    result = _serve("--model_name=m", f"--model_base_path={models / 'sentiment'}",
                    "--enable_batching", f"--batching_parameters_file={path}")
    assert result.returncode != 0
    assert (f"--batching_parameters_file {path}: 2:20 : 'num_batch_threads: 2': "
            'Expected "{"') in result.stderr
