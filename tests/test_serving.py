"""kerlm.serving: real SavedModels, a real `apps/serve.py` process, real HTTP."""

import base64
import json
import subprocess
import sys
from concurrent import futures

import numpy as np
import pytest
import requests
import tensorflow as tf

from conftest import ROOT as REPO
from conftest import free_port, start_server, wait_until_serving
from kerlm.serving import ModelRegistry, ServingError, codec, parse_model_config


@pytest.fixture(scope="module")
def servers(models, tmp_path_factory):
    """Two servers started side by side: one from flags, one from --model_config_file."""
    tmp = tmp_path_factory.mktemp("serve")
    config = tmp / "models.config"
    config.write_text(f"""
        model_config_list {{
          config {{ name: 'sentiment' base_path: '{models / "sentiment"}'
                   model_platform: 'tensorflow' }}
          config {{ name: "other" base_path: "{models / "other"}" }}
        }}""")
    started = {
        "flags": start_server(tmp, "--model_name", "sentiment", "--model_base_path",
                        str(models / "sentiment"), "--max_body_bytes", "65536"),
        "config": start_server(tmp, "--model_config_file", str(config)),
    }
    try:
        for process, url, log in started.values():
            wait_until_serving(process, url + "/v1/models/sentiment", log)
        yield {key: url for key, (_, url, _) in started.items()}
    finally:
        for process, _, _ in started.values():
            process.terminate()
            process.wait(timeout=10)


@pytest.fixture(scope="module")
def url(servers):
    return servers["flags"] + "/v1/models/sentiment"


def _ok(response):
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    return response.json()


def _b64(data):
    return base64.b64encode(data).decode("ascii")


# --- Status and metadata. ---

def _status(*versions):
    return {"model_version_status": [
        {"version": v, "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
        for v in versions]}


def test_status_lists_integer_versions_only(url):
    assert _ok(requests.get(url)) == _status("2", "1")
    assert _ok(requests.get(url + "/versions/1")) == _status("1")


def test_metadata(url):
    metadata = _ok(requests.get(url + "/metadata"))
    assert metadata["model_spec"] == {"name": "sentiment", "signature_name": "", "version": "2"}
    signatures = metadata["metadata"]["signature_def"]["signature_def"]
    assert {"serving_default", "length", "weigh"} <= set(signatures)
    default = signatures["serving_default"]
    assert default["method_name"] == "tensorflow/serving/predict"
    text = default["inputs"]["text"]
    assert text["dtype"] == "DT_STRING"
    assert text["tensor_shape"] == {"dim": [{"size": "-1", "name": ""}], "unknown_rank": False}
    assert text["name"].endswith(":0")
    assert set(default["outputs"]) == {"label", "label_id", "probabilities", "text_bytes"}
    assert default["outputs"]["label_id"]["dtype"] == "DT_INT64"
    assert [d["size"] for d in default["outputs"]["probabilities"]["tensor_shape"]["dim"]] == [
        "-1", "2"]
    assert set(signatures["weigh"]["inputs"]) == {"text", "weight"}
    assert _ok(requests.get(url + "/versions/1/metadata"))["model_spec"]["version"] == "1"


# --- Predict. ---

def _prediction(text, threshold=5):
    is_long = len(text.encode()) > threshold
    return {"label": "long" if is_long else "short", "label_id": int(is_long),
            "probabilities": [0.25, 0.75] if is_long else [0.75, 0.25],
            "text_bytes": {"b64": _b64(text.encode())}}


def test_predict_row_format(url):
    texts = ["abc", "abcdefg"]
    expected = {"predictions": [_prediction(t) for t in texts]}
    assert _ok(requests.post(url + ":predict", json={"instances": texts})) == expected
    named = [{"text": t} for t in texts]
    assert _ok(requests.post(url + ":predict", json={"instances": named})) == expected


def test_predict_columnar_format(url):
    texts = ["abc", "abcdefg"]
    rows = [_prediction(t) for t in texts]
    expected = {"outputs": {key: [row[key] for row in rows] for key in rows[0]}}
    assert _ok(requests.post(url + ":predict", json={"inputs": texts})) == expected
    assert _ok(requests.post(url + ":predict", json={"inputs": {"text": texts}})) == expected


def test_signature_with_one_output_returns_bare_values(url):
    body = {"signature_name": "length", "instances": ["abc", "abcdefg"]}
    assert _ok(requests.post(url + ":predict", json=body)) == {"predictions": [3, 7]}
    body = {"signature_name": "length", "inputs": {"text": ["ab"]}}
    assert _ok(requests.post(url + ":predict", json=body)) == {"outputs": [2]}


def test_signature_with_two_inputs(url):
    body = {"signature_name": "weigh", "instances": [{"text": "ab", "weight": 0.5},
                                                     {"text": "abcd", "weight": 2}]}
    assert _ok(requests.post(url + ":predict", json=body)) == {"predictions": [1.0, 8.0]}
    body = {"signature_name": "weigh", "inputs": {"text": ["ab"], "weight": [1.5]}}
    assert _ok(requests.post(url + ":predict", json=body)) == {"outputs": [3.0]}


def test_b64_input(url):
    data = "héllo wörld".encode()
    body = {"instances": [{"b64": _b64(data)}]}
    assert _ok(requests.post(url + ":predict", json=body)) == {
        "predictions": [_prediction("héllo wörld")]}
    body = {"signature_name": "length", "instances": [{"text": {"b64": _b64(b"\xff\x00")}}]}
    assert _ok(requests.post(url + ":predict", json=body)) == {"predictions": [2]}


def test_versions_answer_differently(url):
    body = {"signature_name": "serving_default", "instances": ["abcd"]}
    latest = _ok(requests.post(url + ":predict", json=body))["predictions"][0]
    v2 = _ok(requests.post(url + "/versions/2:predict", json=body))["predictions"][0]
    v1 = _ok(requests.post(url + "/versions/1:predict", json=body))["predictions"][0]
    assert latest == v2 == _prediction("abcd", threshold=5)
    assert v1 == _prediction("abcd", threshold=3)
    assert v1["label"] != v2["label"]


def test_concurrent_requests(url):
    texts = ["x" * n for n in range(16)]
    with futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(
            lambda t: _ok(requests.post(url + ":predict", json={"instances": [t]})), texts))
    assert [r["predictions"][0] for r in results] == [_prediction(t) for t in texts]


# --- Errors: always a JSON {"error": ...} with a 4xx status. ---

_PREDICT = "/v1/models/sentiment:predict"
_WEIGH = {"signature_name": "weigh"}
ERRORS = [
    # (method, path, JSON body or raw bytes, status, text expected in the error)
    ("POST", _PREDICT, b"{not json", 400, "Malformed JSON"),
    ("POST", _PREDICT, b'["a"]', 400, "JSON object"),
    ("POST", _PREDICT, {"signature_name": "length"}, 400, "'instances'"),
    ("POST", _PREDICT, {"instances": ["a"], "inputs": ["a"]}, 400, "exactly one"),
    ("POST", _PREDICT, {"instances": []}, 400, "non-empty"),
    ("POST", _PREDICT, {"signature_name": "nope", "instances": ["a"]}, 400, "serving_default"),
    ("POST", _PREDICT, {"signature_name": 3, "instances": ["a"]}, 400, "signature_name"),
    ("POST", _PREDICT, {"instances": [{"txt": "a"}]}, 400, "'txt'"),
    ("POST", _PREDICT, {"inputs": {"text": ["a"], "extra": [1]}}, 400, "'extra'"),
    ("POST", _PREDICT, {**_WEIGH, "instances": [{"text": "a"}]}, 400, "'weight'"),
    ("POST", _PREDICT, {**_WEIGH, "instances": ["a"]}, 400, "object mapping input names"),
    ("POST", _PREDICT, {**_WEIGH, "inputs": ["a"]}, 400, "object mapping input names"),
    ("POST", _PREDICT, {"instances": [{"text": "a"}, "b"]}, 400, "mixes"),
    ("POST", _PREDICT, {"instances": [{"text": "a"}, {}]}, 400, "Instance 1"),
    ("POST", _PREDICT, {"instances": [1, 2]}, 400, "'text'"),
    ("POST", _PREDICT, {"instances": [None]}, 400, "'text'"),
    ("POST", _PREDICT, {**_WEIGH, "instances": [{"text": "a", "weight": "x"}]}, 400, "'weight'"),
    ("POST", _PREDICT, {"inputs": [["a"]]}, 400, "shape"),
    ("POST", _PREDICT, {"instances": [{"b64": "not base64!"}]}, 400, "base64"),
    ("POST", _PREDICT, {**_WEIGH, "inputs": {"text": ["a", "b"], "weight": [1.0]}}, 400,
     "batch sizes"),
    ("POST", _PREDICT, {**_WEIGH, "instances": [{"text": "a", "weight": -1}]}, 400,
     "weight must be >= 0"),
    ("POST", _PREDICT, {"instances": ["x" * 70000]}, 413, "Maximum request body size"),
    ("POST", "/v1/models/nope:predict", {"instances": ["a"]}, 404,
     "Servable not found for request: Latest(nope)"),
    ("POST", "/v1/models/sentiment/versions/9:predict", {"instances": ["a"]}, 404,
     "Servable not found for request: Specific(sentiment, 9)"),
    ("GET", "/v1/models/nope", None, 404, "Latest(nope)"),
    ("GET", "/v1/models/nope/metadata", None, 404, "Latest(nope)"),
    ("GET", "/v1/models/sentiment/versions/3", None, 404, "Specific(sentiment, 3)"),
    ("GET", "/v1/models/sentiment/versions/3/metadata", None, 404, "Specific(sentiment, 3)"),
    ("GET", "/v1/models/sentiment/versions/x", None, 404, "Not Found"),
    ("GET", "/v2/models", None, 404, "Not Found"),
    ("GET", _PREDICT, None, 405, "Method Not Allowed"),
    ("POST", "/v1/models/sentiment", {}, 405, "Method Not Allowed"),
    ("DELETE", "/v1/models/sentiment/metadata", None, 405, "Method Not Allowed"),
]


@pytest.mark.parametrize("method,path,body,status,message", ERRORS,
                         ids=[f"{status}-{message[:24]}" for *_, status, message in ERRORS])
def test_errors(servers, method, path, body, status, message):
    kwargs = {"data": body} if isinstance(body, bytes) else {"json": body}
    response = requests.request(method, servers["flags"] + path, **kwargs)
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    assert set(response.json()) == {"error"}
    assert message in response.json()["error"]


def test_server_still_serves_after_errors(url):
    requests.post(url + ":predict", data=b"{")
    assert _ok(requests.get(url)) == _status("2", "1")


# --- Startup: config file, failures. ---

def test_model_config_file_serves_two_models(servers):
    base = servers["config"] + "/v1/models"
    assert _ok(requests.get(base + "/sentiment")) == _status("2", "1")
    assert _ok(requests.get(base + "/other")) == _status("7")
    body = {"instances": ["abcd"]}
    assert _ok(requests.post(base + "/other:predict", json=body)) == {
        "predictions": [_prediction("abcd", threshold=3)]}
    assert _ok(requests.post(base + "/sentiment:predict", json=body)) == {
        "predictions": [_prediction("abcd", threshold=5)]}


def _runstart_server(*flags):
    return subprocess.run([sys.executable, "apps/serve.py", "--rest_api_port",
                           str(free_port()), *flags], cwd=REPO, capture_output=True,
                          text=True, timeout=60)


def test_startup_fails_on_base_path_without_versions(models):
    empty = str(models / "empty")
    result = _runstart_server("--model_name", "m", "--model_base_path", empty)
    assert result.returncode != 0
    assert f"No versions of servable m found under base path {empty}" in result.stderr


def test_startup_requires_model_flags():
    result = _runstart_server("--model_name", "m")
    assert result.returncode != 0
    assert "--model_base_path" in result.stderr and "--model_config_file" in result.stderr


# --- Units: config parser, request conversion, response formatting, registry. ---

def test_parse_model_config():
    text = """
        # Two models; the second uses ':' and '<>' as text protos may.
        model_config_list: {
          config { name: 'a' base_path: '/m/a' model_platform: "tensorflow" }
          config: < name: "b\\"q" base_path: "/m/b", model_version_policy { all {} } >
        }
    """
    assert parse_model_config(text) == {"a": "/m/a", 'b"q': "/m/b"}


@pytest.mark.parametrize("text,message", [
    ("", "no 'model_config_list"),
    ("model_config_list { config { name: 'a' } }", "base_path"),
    ("model_config_list { config { name: 'a' base_path: '/a' }", "missing '}'"),
    ("model_config_list { config { name: 'a' base_path: '/a' } } }", "expected a field name"),
    ("model_config_list { config { name: 'a' base_path: } }", "no value"),
    ("model_config_list { config { name: 'a base_path: '/a' } }", "unexpected character"),
    ("custom_model_config { }", "unsupported top-level field"),
    ("model_config_list { config { name: 'a' base_path: '/a' model_platform: 'onnx' } }",
     "model_platform"),
    ("model_config_list { config { name: 'a' base_path: '/a' } "
     "config { name: 'a' base_path: '/b' } }", "twice"),
])
def test_parse_model_config_errors(text, message):
    with pytest.raises(ValueError, match=message):
        parse_model_config(text)


def test_parse_predict_request():
    assert codec.parse_predict_request(b'{"instances": [1]}') == (
        "serving_default", "instances", [1])
    assert codec.parse_predict_request('{"inputs": {"x": 1}, "signature_name": "s"}') == (
        "s", "inputs", {"x": 1})
    with pytest.raises(ServingError, match="Malformed JSON"):
        codec.parse_predict_request(b"\xff")


def test_request_to_tensors():
    specs = {"ids": tf.TensorSpec([None, 2], tf.int32), "text": tf.TensorSpec([None], tf.string)}
    tensors = codec.instances_to_tensors(
        [{"ids": [1, 2], "text": "a"}, {"ids": [3, 4], "text": {"b64": _b64(b"\xff")}}], specs)
    assert tensors["ids"].dtype == tf.int32
    assert tensors["ids"].numpy().tolist() == [[1, 2], [3, 4]]
    assert tensors["text"].numpy().tolist() == [b"a", b"\xff"]
    tensors = codec.inputs_to_tensors({"ids": [[1, 2]], "text": ["a"]}, specs)
    assert tensors["ids"].shape == (1, 2)
    scalar = {"x": tf.TensorSpec([], tf.float32)}
    assert codec.inputs_to_tensors(2, scalar)["x"].numpy() == 2.0
    with pytest.raises(ServingError, match=r"'ids' has shape \[2, 3\]"):
        codec.inputs_to_tensors({"ids": [[1, 2, 3]] * 2, "text": ["a", "b"]}, specs)
    with pytest.raises(ServingError, match="'ids' cannot be converted to a int32"):
        codec.instances_to_tensors([{"ids": [1.5, 2], "text": "a"}], specs)
    with pytest.raises(ServingError, match="'ids' cannot be converted"):
        codec.instances_to_tensors([{"ids": [1, 2], "text": "a"}, {"ids": [1], "text": "b"}],
                                   specs)


def test_format_predictions_and_outputs():
    outputs = {"label": np.array([b"pos", b"\xff"]), "raw_bytes": np.array([b"a", b"b"]),
               "p": np.array([[0.5, 0.5], [1.0, 0.0]], np.float32)}
    assert codec.format_predictions(outputs, batch_size=2) == [
        {"label": "pos", "raw_bytes": {"b64": "YQ=="}, "p": [0.5, 0.5]},
        {"label": {"b64": "/w=="}, "raw_bytes": {"b64": "Yg=="}, "p": [1.0, 0.0]}]
    assert codec.format_outputs(outputs) == {
        "label": ["pos", {"b64": "/w=="}], "raw_bytes": [{"b64": "YQ=="}, {"b64": "Yg=="}],
        "p": [[0.5, 0.5], [1.0, 0.0]]}
    assert codec.format_outputs({"n": np.int64(3)}) == 3
    assert json.dumps(codec.format_predictions({"n": np.array([1, 2])})) == "[1, 2]"
    with pytest.raises(ServingError, match="'n' has shape \\[\\]"):
        codec.format_predictions({"n": np.int64(3)}, batch_size=1)
    with pytest.raises(ServingError, match="'q' has shape \\[3\\]"):
        codec.format_predictions({"p": np.zeros(2), "q": np.zeros(3)}, batch_size=2)


def test_registry_without_http(models):
    registry = ModelRegistry()
    assert registry.add("sentiment", str(models / "sentiment")) == [1, 2]
    assert registry.names() == ["sentiment"]
    assert registry.get("sentiment").version == 2
    assert registry.get("sentiment", 1).predict("length", "inputs", ["abcd"]) == {
        "outputs": [4]}
    assert registry.status("sentiment", 1) == _status("1")
    with pytest.raises(ServingError, match=r"Latest\(x\)") as error:
        registry.get("x")
    assert error.value.status == 404
    with pytest.raises(ValueError, match="Could not find base path"):
        registry.add("x", str(models / "missing"))
