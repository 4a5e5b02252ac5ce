"""apps/serve.py's gRPC API, seen by a client written against tensorflow-serving-api and grpc
only (no kerlm): every signature, metadata, status, errors, and 16 concurrent clients with
and without --enable_batching."""

import re
import threading

import grpc
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_text  # noqa: F401  (the sentiment export's tokenizer ops)
from tensorflow.core.framework import tensor_shape_pb2
from tensorflow_serving.apis import (classification_pb2, get_model_metadata_pb2,
                                     get_model_status_pb2, inference_pb2, model_management_pb2,
                                     model_service_pb2_grpc, predict_pb2,
                                     prediction_service_pb2_grpc, regression_pb2)

from conftest import free_port, start_server, wait_until_serving

BATCHING = """
max_batch_size { value: 32 }
batch_timeout_micros { value: 2000 }
num_batch_threads { value: 2 }
max_enqueued_batches { value: 1000 }
"""
CLIENTS, REQUESTS_PER_CLIENT = 16, 200
WORDS = ["great", "awful", "fine", "cold", "lovely", "rude", "tasty", "broken", "cheap", "slow"]


@pytest.fixture(scope="module")
def servers(models, trained_run, tmp_path_factory):
    """{"plain": ..., "batching": ...}: gRPC target and log of two servers of toy (the toy
    models, versions 1 and 2) and sentiment (the tiny trained export, with warm-up)."""
    tmp = tmp_path_factory.mktemp("grpc")
    config, batching = tmp / "models.config", tmp / "batching.config"
    config.write_text(f"""model_config_list {{
        config {{ name: 'toy' base_path: '{models / "sentiment"}'
                 model_version_policy {{ all {{}} }} }}
        config {{ name: 'sentiment' base_path: '{trained_run["export_dir"]}/sentiment' }}
    }}""")
    batching.write_text(BATCHING)
    flags = {"plain": [],
             "batching": ["--enable_batching", f"--batching_parameters_file={batching}"]}
    started = {}
    for kind, extra in flags.items():
        port = free_port()
        started[kind] = (port, *start_server(tmp, f"--port={port}",
                                             f"--model_config_file={config}", "--v=1", *extra))
    try:
        for port, process, url, log in started.values():
            wait_until_serving(process, url + "/v1/models/sentiment", log)
        yield {kind: {"target": f"127.0.0.1:{port}", "log": log}
               for kind, (port, _, _, log) in started.items()}
    finally:
        for _, process, _, _ in started.values():
            process.terminate()
            process.wait(timeout=10)


@pytest.fixture(scope="module", params=["plain", "batching"])
def server(request, servers):
    channel = grpc.insecure_channel(servers[request.param]["target"])
    yield {"kind": request.param, "log": servers[request.param]["log"],
           "predict": prediction_service_pb2_grpc.PredictionServiceStub(channel),
           "model": model_service_pb2_grpc.ModelServiceStub(channel)}
    channel.close()


def _request(model, inputs, signature=None, version=None, output_filter=()):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    if signature:
        request.model_spec.signature_name = signature
    if version:
        request.model_spec.version.value = version
    for name, value in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    request.output_filter.extend(output_filter)
    return request


def _predict(stub, *args, **kwargs):
    response = stub.Predict(_request(*args, **kwargs), timeout=30)
    return response, {name: tf.make_ndarray(t).tolist() for name, t in response.outputs.items()}


# --- Predict, metadata, status. ---

def test_predict_toy_signatures(server):
    stub, texts = server["predict"], ["abc", "abcdefg"]
    response, outputs = _predict(stub, "toy", {"text": texts})
    assert (response.model_spec.name, response.model_spec.version.value,
            response.model_spec.signature_name) == ("toy", 2, "serving_default")
    assert outputs == {"label": [b"short", b"long"], "label_id": [0, 1],
                       "probabilities": [[0.75, 0.25], [0.25, 0.75]],
                       "text_bytes": [b"abc", b"abcdefg"]}
    response, outputs = _predict(stub, "toy", {"text": ["abcd"]}, version=1)
    assert response.model_spec.version.value == 1 and outputs["label"] == [b"long"]
    assert _predict(stub, "toy", {"text": ["abcd"]}, version=2)[1]["label"] == [b"short"]
    assert _predict(stub, "toy", {"text": texts}, "length")[1] == {"length": [3, 7]}
    weigh = {"text": ["ab", "abcd"], "weight": np.array([0.5, 2], np.float32)}
    response, outputs = _predict(stub, "toy", weigh, "weigh")
    assert response.model_spec.signature_name == "weigh" and outputs == {"score": [1.0, 8.0]}
    assert _predict(stub, "toy", {"text": texts}, output_filter=["label_id"])[1] == {
        "label_id": [0, 1]}


@pytest.fixture(scope="module")
def sentiment_in_process(trained_run):
    """The exported sentiment signature, loaded in this process."""
    return tf.saved_model.load(trained_run["export_path"]).signatures["serving_default"]


def _expected(signature, texts):
    """{text: (label, probabilities)} computed in this process, 64 texts per call."""
    answers = {}
    for start in range(0, len(texts), 64):
        chunk = texts[start:start + 64]
        out = signature(text=tf.constant(chunk))
        answers.update(zip(chunk, zip(out["label"].numpy(), out["probabilities"].numpy())))
    return answers


def _check_sentiment(outputs, texts, expected):
    assert len(outputs["label"]) == len(outputs["probabilities"]) == len(texts)
    for text, label, probabilities in zip(texts, outputs["label"], outputs["probabilities"]):
        expected_label, expected_probabilities = expected[text]
        np.testing.assert_allclose(probabilities, expected_probabilities, atol=1e-5,
                                   err_msg=text)
        if abs(expected_probabilities[0] - expected_probabilities[1]) > 1e-3:
            assert label == expected_label, text


def test_predict_sentiment_export(server, sentiment_in_process):
    texts = ["What a fantastic little phone.", "The food was cold and the waiter rude."]
    response, outputs = _predict(server["predict"], "sentiment", {"text": texts})
    assert response.model_spec.version.value == 1
    assert set(outputs) == {"label", "label_id", "probabilities"}
    _check_sentiment(outputs, texts, _expected(sentiment_in_process, texts))


def _metadata(stub, model, version=None, fields=("signature_def",)):
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=fields)
    request.model_spec.name = model
    if version:
        request.model_spec.version.value = version
    return stub.GetModelMetadata(request, timeout=30)


def test_metadata(server):
    response = _metadata(server["predict"], "toy")
    assert (response.model_spec.name, response.model_spec.version.value) == ("toy", 2)
    signatures = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(signatures)
    signatures = signatures.signature_def
    assert {"serving_default", "length", "weigh"} <= set(signatures)
    default = signatures["serving_default"]
    assert default.method_name == "tensorflow/serving/predict"
    assert default.inputs["text"].dtype == tf.string.as_datatype_enum
    assert [d.size for d in default.outputs["probabilities"].tensor_shape.dim] == [-1, 2]
    assert set(signatures["weigh"].inputs) == {"text", "weight"}
    assert _metadata(server["predict"], "toy", version=1).model_spec.version.value == 1

    sentiment = get_model_metadata_pb2.SignatureDefMap()
    _metadata(server["predict"], "sentiment").metadata["signature_def"].Unpack(sentiment)
    outputs = sentiment.signature_def["serving_default"].outputs
    assert {name: out.dtype for name, out in outputs.items()} == {
        "label": tf.string.as_datatype_enum, "label_id": tf.int32.as_datatype_enum,
        "probabilities": tf.float32.as_datatype_enum}


def _status(stub, model, version=None):
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = model
    if version:
        request.model_spec.version.value = version
    return stub.GetModelStatus(request, timeout=30)


def test_status(server):
    statuses = _status(server["model"], "toy").model_version_status
    available = get_model_status_pb2.ModelVersionStatus.AVAILABLE
    assert [(s.version, s.state, s.status.error_code) for s in statuses] == [
        (2, available, 0), (1, available, 0)]
    assert [s.version for s in _status(server["model"], "toy", 1).model_version_status] == [1]


# --- Errors: TF Serving's status codes and messages. ---

def _no_spec():
    request = predict_pb2.PredictRequest()
    request.inputs["text"].CopyFrom(tf.make_tensor_proto(["a"]))
    return request


def _filled(model, shape):
    """A request whose 'text' has `shape` but a single value (TensorProto's fill form)."""
    request = _request(model, {})
    request.inputs["text"].dtype = tf.string.as_datatype_enum
    request.inputs["text"].tensor_shape.dim.extend(
        tensor_shape_pb2.TensorShapeProto.Dim(size=size) for size in shape)
    request.inputs["text"].string_val.append(b"a")
    return request


def _labelled():
    request = _request("toy", {"text": ["a"]})
    request.model_spec.version_label = "stable"
    return request


_WEIGH = {"text": ["ab"], "weight": np.array([1], np.float32)}
PREDICT_ERRORS = [
    # (request, code, text expected in the message)
    (lambda: _request("nope", {"text": ["a"]}), "NOT_FOUND",
     "Servable not found for request: Latest(nope)"),
    (lambda: _request("toy", {"text": ["a"]}, version=9), "NOT_FOUND",
     "Servable not found for request: Specific(toy, 9)"),
    (lambda: _request("toy", {"text": ["a"]}, "nope"), "FAILED_PRECONDITION",
     'Serving signature key "nope" not found.'),
    (lambda: _request("toy", {"text": ["a"]}, "weigh"), "INVALID_ARGUMENT",
     "input size does not match signature: 1!=2 len({text}) != len({text,weight}). "
     "Sent extra: {}. Missing but required: {weight}."),
    (lambda: _request("toy", {"txt": ["a"]}), "INVALID_ARGUMENT",
     "input tensor alias not found in signature: txt. Inputs expected to be in the set "
     "{text}."),
    (lambda: _request("toy", {**_WEIGH, "weight": ["x"]}, "weigh"), "INVALID_ARGUMENT",
     "input 'weight' must be DT_FLOAT, got DT_STRING"),
    (lambda: _request("toy", {"text": [["a"]]}), "INVALID_ARGUMENT",
     "input 'text' has shape [1, 1] but the signature expects (None,)"),
    (lambda: _request("toy", {**_WEIGH, "weight": np.array([-1], np.float32)}, "weigh"),
     "INVALID_ARGUMENT", "weight must be >= 0"),
    (lambda: _request("toy", {"text": ["a"]}, output_filter=["nope"]), "INVALID_ARGUMENT",
     "output tensor alias not found in signature: nope"),
    (lambda: _request("toy", {"text": ["a"]}, output_filter=["label", "label"]),
     "INVALID_ARGUMENT", "duplicate output tensor alias: label"),
    (lambda: _request("toy", {"text": ["a"] * 10_001}), "INVALID_ARGUMENT",
     "Task size 10001 is larger than maximum input batch size 10000"),
    (lambda: _request("toy", {"text": ["a"], "weight": np.zeros(10_001, np.float32)}, "weigh"),
     "INVALID_ARGUMENT", "Task size 10001 is larger than maximum input batch size 10000"),
    # One value for 20 million: refused from the shape, before TensorFlow repeats it.
    (lambda: _filled("toy", [1, 20_000_000]), "INVALID_ARGUMENT",
     "input 'text' has shape [1, 20000000] but the signature expects (None,)"),
    (_no_spec, "INVALID_ARGUMENT", "Missing ModelSpec"),
    (_labelled, "INVALID_ARGUMENT", "Unrecognized servable version label: stable"),
]


def _code(call):
    with pytest.raises(grpc.RpcError) as error:
        call()
    return error.value.code().name, error.value.details()


@pytest.mark.parametrize("make_request,code,message", PREDICT_ERRORS,
                         ids=[f"{code}-{message[:30]}" for _, code, message in PREDICT_ERRORS])
def test_predict_errors(server, make_request, code, message):
    actual_code, details = _code(lambda: server["predict"].Predict(make_request(), timeout=30))
    assert actual_code == code
    assert message in details


def test_large_request_runs_in_bounded_calls(server):
    """150 rows: 3 calls of at most 64 rows (--max_execution_batch_size), one answer."""
    texts = ["x" * (n % 17) for n in range(150)]
    response, outputs = _predict(server["predict"], "toy", {"text": texts}, "length")
    assert outputs == {"length": [len(t) for t in texts]}
    weigh = {"text": texts, "weight": np.arange(150, dtype=np.float32)}
    assert _predict(server["predict"], "toy", weigh, "weigh")[1] == {
        "score": [float(len(t) * n) for n, t in enumerate(texts)]}


def test_internal_errors_keep_their_details_in_the_log(caplog):
    """A bug of the server is a bare INTERNAL: the exception's text stays in the log."""
    from kerlm.serving import grpc_server

    class Context:
        def abort(self, code, details):
            self.code, self.details = code, details
            raise grpc.RpcError()

    def bug():
        raise RuntimeError("secret path /srv/models/x")

    context = Context()
    with pytest.raises(grpc.RpcError):
        grpc_server._answer(context, "Predict", bug)
    assert context.code == grpc.StatusCode.INTERNAL
    assert context.details == "Internal server error (the server's log has the details)"
    assert "secret" in caplog.text


def test_metadata_and_status_errors(server):
    predict, model = server["predict"], server["model"]
    assert _code(lambda: _metadata(predict, "nope")) == (
        "NOT_FOUND", "Servable not found for request: Latest(nope)")
    assert _code(lambda: _metadata(predict, "toy", fields=())) == (
        "INVALID_ARGUMENT", "GetModelMetadataRequest must specify at least one metadata_field")
    assert _code(lambda: _metadata(predict, "toy", fields=("signature_def", "x"))) == (
        "INVALID_ARGUMENT", "Metadata field x is not supported")
    assert _code(lambda: _status(model, "nope")) == (
        "NOT_FOUND", "Could not find any versions of model nope")
    assert _code(lambda: _status(model, "toy", 9)) == (
        "NOT_FOUND", "Could not find version 9 of model toy")


def test_unimplemented_methods(server):
    calls = {"Classify": lambda: server["predict"].Classify(
                 classification_pb2.ClassificationRequest(), timeout=30),
             "Regress": lambda: server["predict"].Regress(
                 regression_pb2.RegressionRequest(), timeout=30),
             "MultiInference": lambda: server["predict"].MultiInference(
                 inference_pb2.MultiInferenceRequest(), timeout=30),
             "HandleReloadConfigRequest": lambda: server["model"].HandleReloadConfigRequest(
                 model_management_pb2.ReloadConfigRequest(), timeout=30)}
    for method, call in calls.items():
        code, details = _code(call)
        assert code == "UNIMPLEMENTED" and method in details


# --- Concurrency and batching. ---

def _texts(client, request):
    """1 to 3 texts, distinct across all requests of the test."""
    rows = 1 + (client + request) % 3
    return [f"The {WORDS[(client + i) % len(WORDS)]} {WORDS[(request + 3 * i) % len(WORDS)]} "
            f"meal number {client}-{request}-{i}." for i in range(rows)]


def test_concurrent_clients_get_their_own_answers(server, sentiment_in_process):
    stub = server["predict"]
    expected = _expected(sentiment_in_process, [
        t for c in range(CLIENTS) for r in range(REQUESTS_PER_CLIENT) for t in _texts(c, r)])
    errors, answered = [], [0] * CLIENTS

    def client(c):
        try:
            for r in range(REQUESTS_PER_CLIENT):
                texts = _texts(c, r)
                _check_sentiment(_predict(stub, "sentiment", {"text": texts})[1], texts,
                                 expected)
                answered[c] += 1
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(f"client {c}: {e!r}")

    threads = [threading.Thread(target=client, args=(c,)) for c in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert answered == [REQUESTS_PER_CLIENT] * CLIENTS


def _merged_calls(log):
    """Requests per merged call, from the server's --v=1 batching log lines."""
    return [int(n) for n in re.findall(r"Ran (\d+) requests \(\d+ rows\) of \('sentiment'",
                                       log.read_text())]


def test_batching_merges_concurrent_requests(servers):
    channel = grpc.insecure_channel(servers["batching"]["target"])
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    before = len(_merged_calls(servers["batching"]["log"]))
    barrier = threading.Barrier(CLIENTS)

    def client(c):
        barrier.wait()
        for r in range(10):
            _predict(stub, "sentiment", {"text": [f"Request {c}-{r} was lovely."]})

    threads = [threading.Thread(target=client, args=(c,)) for c in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    channel.close()
    merged = _merged_calls(servers["batching"]["log"])[before:]
    assert merged and max(merged) > 1
    assert _merged_calls(servers["plain"]["log"]) == []


def test_servers_replayed_the_warmup_requests(servers):
    for kind in servers:
        log = servers[kind]["log"].read_text()
        assert re.search(r"Warm-up of sentiment version 1: replayed 1 requests in", log), kind
        assert "Warm-up of toy" not in log  # the toy models have no warm-up file
