"""kerlm.serving: real SavedModels, a real `apps/serve.py` process, real HTTP."""

import base64
import json
import shutil
import subprocess
import sys
import time
from concurrent import futures

import numpy as np
import pytest
import requests
import tensorflow as tf

from conftest import ROOT as REPO
from conftest import free_port, start_server, wait_until_serving
from kerlm.serving import (ModelRegistry, ServingError, VersionPolicy, codec,
                           parse_model_config, parse_model_server_config, servables)
from kerlm.serving.model_config import ALL

MAX_ROWS = 40  # --max_request_batch_size of the "flags" server, which runs 3 rows per call


@pytest.fixture(scope="module")
def servers(models, tmp_path_factory):
    """Two servers started side by side: one from flags (the latest version only, small
    batch limits), one from --model_config_file (every version of sentiment)."""
    tmp = tmp_path_factory.mktemp("serve")
    config = tmp / "models.config"
    config.write_text(f"""
        model_config_list {{
          config {{ name: 'sentiment' base_path: '{models / "sentiment"}'
                   model_platform: 'tensorflow' model_version_policy {{ all {{}} }} }}
          config {{ name: "other" base_path: "{models / "other"}" }}
        }}""")
    started = {
        "flags": start_server(tmp, "--model_name", "sentiment", "--model_base_path",
                              str(models / "sentiment"), "--max_body_bytes", "65536",
                              f"--max_request_batch_size={MAX_ROWS}",
                              "--max_execution_batch_size=3"),
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


@pytest.fixture(scope="module")
def all_versions_url(servers):
    return servers["config"] + "/v1/models/sentiment"


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


def test_flags_serve_the_latest_version_only(url):
    assert _ok(requests.get(url)) == _status("2")
    assert _ok(requests.get(url + "/versions/2")) == _status("2")
    for path in ("/versions/1", "/versions/1/metadata"):
        response = requests.get(url + path)
        assert response.status_code == 404
        assert response.json() == {
            "error": "Servable not found for request: Specific(sentiment, 1)"}


def test_status_lists_integer_versions_only(all_versions_url):
    assert _ok(requests.get(all_versions_url)) == _status("2", "1")
    assert _ok(requests.get(all_versions_url + "/versions/1")) == _status("1")


def test_metadata(url, all_versions_url):
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
    assert _ok(requests.get(all_versions_url + "/versions/1/metadata"))["model_spec"][
        "version"] == "1"


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


def test_large_requests_run_in_calls_of_max_execution_batch_size(url):
    """The flags server runs 3 rows per call: 3 calls of 3 rows and one of 1 here, each
    row still getting its own answer; a side input without batch dimension goes to all."""
    texts = ["x" * n for n in range(10)]
    assert _ok(requests.post(url + ":predict", json={"instances": texts})) == {
        "predictions": [_prediction(t) for t in texts]}
    body = {"signature_name": "weigh",
            "inputs": {"text": texts, "weight": [float(n) for n in range(10)]}}
    assert _ok(requests.post(url + ":predict", json=body)) == {
        "outputs": [float(n * n) for n in range(10)]}
    body = {"instances": ["x"] * MAX_ROWS}  # The largest request allowed.
    assert len(_ok(requests.post(url + ":predict", json=body))["predictions"]) == MAX_ROWS


def test_empty_batches_answer_as_tf_serving_does(url):
    """TF Serving (json_tensor.cc) refuses an empty 'instances' list (its size is the batch,
    and there is no first row to read the shapes from) but runs an empty columnar list as
    a tensor of 0 rows: the same here, with outputs of 0 rows."""
    response = requests.post(url + ":predict", json={"instances": []})
    assert response.status_code == 400
    assert "No values in 'instances' array" in response.json()["error"]
    empty = {"outputs": {"label": [], "label_id": [], "probabilities": [], "text_bytes": []}}
    assert _ok(requests.post(url + ":predict", json={"inputs": {"text": []}})) == empty
    assert _ok(requests.post(url + ":predict", json={"inputs": []})) == empty
    body = {"signature_name": "weigh", "inputs": {"text": [], "weight": []}}
    assert _ok(requests.post(url + ":predict", json=body)) == {"outputs": []}


def test_versions_answer_differently(all_versions_url):
    url = all_versions_url
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
_TOO_MANY = f"Task size {MAX_ROWS + 1} is larger than maximum input batch size {MAX_ROWS}"


def _nested(depth, leaf="a"):
    return "[" * depth + json.dumps(leaf) + "]" * depth


ERRORS = [
    # (method, path, JSON body or raw bytes, status, text expected in the error)
    ("POST", _PREDICT, b"{not json", 400, "Malformed JSON"),
    ("POST", _PREDICT, b'["a"]', 400, "JSON object"),
    ("POST", _PREDICT, {"signature_name": "length"}, 400, "'instances'"),
    ("POST", _PREDICT, {"instances": ["a"], "inputs": ["a"]}, 400, "exactly one"),
    ("POST", _PREDICT, {"instances": []}, 400, "No values in 'instances' array"),
    ("POST", _PREDICT, {"instances": "a"}, 400, "'instances' must be a list"),
    # Over --max_request_batch_size, in both formats: refused before any tensor is built.
    ("POST", _PREDICT, {"instances": ["a"] * (MAX_ROWS + 1)}, 400, _TOO_MANY),
    ("POST", _PREDICT, {"inputs": {"text": ["a"] * (MAX_ROWS + 1)}}, 400, _TOO_MANY),
    ("POST", _PREDICT, {"inputs": ["a"] * (MAX_ROWS + 1)}, 400, _TOO_MANY),
    ("POST", _PREDICT, {**_WEIGH, "inputs": {"text": ["a"], "weight": [1.0] * (MAX_ROWS + 1)}},
     400, _TOO_MANY),
    # Deep nesting: past Python's recursion limit in the parser (the 500), and past
    # TensorFlow's 254 dimensions (which would abort the whole server process).
    ("POST", _PREDICT, ('{"instances": ' + _nested(20000) + "}").encode(), 400,
     "nested too deeply"),
    ("POST", _PREDICT, ('{"instances": ' + _nested(300) + "}").encode(), 400,
     "Input 'text': lists nested more than 32 deep"),
    ("POST", _PREDICT, ('{"inputs": {"text": ' + _nested(33) + "}}").encode(), 400,
     "nested more than 32 deep"),
    ("POST", _PREDICT, {"inputs": {"text": [{"a": {"b": 1}}]}}, 400,
     "unexpected JSON object with keys ['a']"),
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
    # On disk, but not served: the flags serve the latest version only, as TF Serving does.
    ("POST", "/v1/models/sentiment/versions/1:predict", {"instances": ["a"]}, 404,
     "Servable not found for request: Specific(sentiment, 1)"),
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


def test_error_messages_stay_short(url):
    """TensorFlow's conversion errors quote the whole value: the answer keeps 1,000 chars."""
    body = {**_WEIGH, "instances": [{"text": "a", "weight": "x" * 100} for _ in range(MAX_ROWS)]}
    response = requests.post(url + ":predict", json=body)
    assert response.status_code == 400
    assert "'weight' cannot be converted" in response.json()["error"]
    assert len(response.json()["error"]) < 1100


def test_server_still_serves_after_errors(url):
    requests.post(url + ":predict", data=b"{")
    requests.post(url + ":predict", data=('{"instances": ' + _nested(300) + "}").encode())
    assert _ok(requests.get(url)) == _status("2")


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


@pytest.mark.slow
def test_startup_fails_on_base_path_without_versions(models):
    empty = str(models / "empty")
    result = _runstart_server("--model_name", "m", "--model_base_path", empty)
    assert result.returncode != 0
    assert f"No versions of servable m found under base path {empty}" in result.stderr


@pytest.mark.slow
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
    assert parse_model_server_config(text)['b"q'].version_policy == ALL


def test_parse_model_version_policies():
    text = """model_config_list {
        config { name: 'default' base_path: '/m/d' }
        config { name: 'latest' base_path: '/m/l'
                 model_version_policy { latest { num_versions: 2 } } }
        config { name: 'latest0' base_path: '/m/l' model_version_policy { latest {} } }
        config { name: 'all' base_path: '/m/a' model_version_policy: { all: {} } }
        config { name: 'specific' base_path: '/m/s'
                 model_version_policy { specific { versions: 3 versions: 1 } } }
        config { name: 'list' base_path: '/m/s'
                 model_version_policy { specific { versions: [7, 2, 7] } } }
        config { name: 'labels' base_path: '/m/s' version_labels { key: 'a' value: 1 } }
    }"""
    policies = {name: config.version_policy
                for name, config in parse_model_server_config(text).items()}
    assert policies == {
        "default": VersionPolicy("latest", num_versions=1),
        "latest": VersionPolicy("latest", num_versions=2),
        "latest0": VersionPolicy("latest", num_versions=1),
        "all": VersionPolicy("all"),
        "specific": VersionPolicy("specific", versions=(1, 3)),
        "list": VersionPolicy("specific", versions=(2, 7)),
        "labels": VersionPolicy("latest", num_versions=1)}
    on_disk = [1, 2, 3, 10]
    assert {name: policy.select(on_disk) for name, policy in policies.items()} == {
        "default": [10], "latest": [3, 10], "latest0": [10], "all": on_disk,
        "specific": [1, 3], "list": [2], "labels": [10]}
    assert policies["list"].missing(on_disk) == [7]


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
    ("model_config_list { config { name: 'a' base_path: '/a' "
     "model_version_policy { newest {} } } }", "unknown policy 'newest'"),
    ("model_config_list { config { name: 'a' base_path: '/a' "
     "model_version_policy { all {} latest {} } } }", "exactly one of"),
    ("model_config_list { config { name: 'a' base_path: '/a' "
     "model_version_policy { specific {} } } }", "no versions listed"),
    ("model_config_list { config { name: 'a' base_path: '/a' "
     "model_version_policy { specific { versions: -1 } } } }", "non-negative integer"),
    ("model_config_list { config { name: 'a' base_path: '/a' "
     "model_version_policy { latest { num_versions: 2 count: 1 } } } }", "unknown fields"),
    ("model_config_list { config { name: 'a' base_path: '/a' "
     "model_version_policy { specific { versions: [1 2] } } } }", "expected ',' or ']'"),
    ("model_config_list { config { name: 'a' base_path: '/a' "
     "model_version_policy { specific { versions: [1, 2 } } } }", "expected ',' or ']'"),
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
    assert registry.add("sentiment", str(models / "sentiment"), ALL) == [1, 2]
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


# --- Version policies: which versions on disk are loaded. ---

@pytest.fixture(scope="module")
def three_versions(models, tmp_path_factory):
    """toy/{1,2,3} (thresholds 3, 5, 3) and a .tmp-4-1 an export left half written."""
    base = tmp_path_factory.mktemp("three") / "toy"
    for version, source in ((1, "sentiment/1"), (2, "sentiment/2"), (3, "other/7"),
                            (".tmp-4-1", "sentiment/1")):
        shutil.copytree(models / source, base / str(version))
    return base


@pytest.mark.parametrize("policy,loaded", [
    (None, [3]),  # TF Serving's default: the latest version only.
    (VersionPolicy("latest", num_versions=2), [2, 3]),
    (ALL, [1, 2, 3]),
    (VersionPolicy("specific", versions=(1, 3)), [1, 3]),
    (VersionPolicy("specific", versions=(2, 9)), [2]),  # 9 is logged, as TF Serving does.
])
def test_version_policy_loads_only_the_selected_versions(three_versions, policy, loaded):
    registry = ModelRegistry()
    args = () if policy is None else (policy,)
    assert registry.add("toy", str(three_versions), *args) == loaded
    assert registry.versions("toy") == loaded[::-1]
    assert registry.get("toy").version == loaded[-1]
    assert registry.status("toy") == _status(*map(str, loaded[::-1]))
    for version in set(range(1, 5)) - set(loaded):
        with pytest.raises(ServingError) as error:
            registry.get("toy", version)
        assert (error.value.status, str(error.value)) == (
            404, f"Servable not found for request: Specific(toy, {version})")


def test_specific_versions_none_on_disk_fail_the_load(three_versions):
    with pytest.raises(ValueError, match=r"No versions of servable toy found under base path "
                                         r".* among \[1, 2, 3\] for VersionPolicy\(kind="
                                         r"'specific', versions=\(8, 9\)\)"):
        ModelRegistry().add("toy", str(three_versions), VersionPolicy("specific", versions=(8, 9)))


def test_config_file_version_policies_on_a_server(three_versions, tmp_path):
    config = tmp_path / "models.config"
    config.write_text(f"""model_config_list {{
        config {{ name: 'latest' base_path: '{three_versions}' }}
        config {{ name: 'two' base_path: '{three_versions}'
                 model_version_policy {{ specific {{ versions: [1, 2] }} }} }}
    }}""")
    process, base, log = start_server(tmp_path, f"--model_config_file={config}")
    try:
        wait_until_serving(process, base + "/v1/models/two", log)
        assert _ok(requests.get(base + "/v1/models/latest")) == _status("3")
        assert _ok(requests.get(base + "/v1/models/two")) == _status("2", "1")
        body = {"instances": ["abcd"]}
        assert _ok(requests.post(base + "/v1/models/two:predict", json=body)) == {
            "predictions": [_prediction("abcd", threshold=5)]}
        response = requests.post(base + "/v1/models/two/versions/3:predict", json=body)
        assert (response.status_code, response.json()) == (
            404, {"error": "Servable not found for request: Specific(two, 3)"})
        response = requests.post(base + "/v1/models/latest/versions/1:predict", json=body)
        assert response.status_code == 404
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert "Loaded latest versions [3]" in log.read_text()


# --- Per-request bounds without HTTP: batch limit, calls of bounded size, deadlines. ---

class _Recorder:
    """Wraps a signature, recording the rows of each call; optionally sleeps per call, or
    computes `fn(**inputs)` instead. Other attributes are the signature's."""

    def __init__(self, signature, sleep=0.0, fn=None):
        self.signature, self.sleep, self.fn, self.rows = signature, sleep, fn, []

    def __call__(self, **inputs):
        self.rows.append(int(inputs["text"].shape[0]))
        time.sleep(self.sleep)
        return (self.fn or self.signature)(**inputs)

    def __getattr__(self, name):
        return getattr(self.signature, name)


@pytest.fixture
def bounded(models):
    """Version 2 of the toy with at most 10 rows a request, in calls of at most 4."""
    return servables.ServedModel("toy", 2, str(models / "sentiment" / "2"),
                                 max_batch_size=10, execution_batch_size=4)


def test_run_splits_large_requests_and_concatenates_the_outputs(bounded):
    recorder = bounded.signatures["weigh"] = _Recorder(bounded.signatures["weigh"])
    texts = ["x" * n for n in range(10)]
    outputs = bounded.run("weigh", {"text": tf.constant(texts),
                                    "weight": tf.constant([2.0] * 10)})
    assert recorder.rows == [4, 4, 2]
    assert outputs["score"].tolist() == [2.0 * n for n in range(10)]
    recorder.rows.clear()
    assert bounded.predict("weigh", "instances", [{"text": "ab", "weight": 1}] * 4) == {
        "predictions": [2.0] * 4}
    assert recorder.rows == [4]  # Small requests: one call, as before.


def test_batch_limit_is_checked_before_conversion(bounded, monkeypatch):
    def no_conversion(*args):
        raise AssertionError("the request was converted to tensors")

    monkeypatch.setattr(codec, "instances_to_tensors", no_conversion)
    monkeypatch.setattr(codec, "inputs_to_tensors", no_conversion)
    message = "Task size 11 is larger than maximum input batch size 10"
    for request_format, payload in [("instances", ["a"] * 11), ("inputs", ["a"] * 11),
                                    ("inputs", {"text": ["a"] * 11})]:
        with pytest.raises(ServingError, match=message) as error:
            bounded.predict("length", request_format, payload)
        assert (error.value.status, error.value.code) == (400, "INVALID_ARGUMENT")
    with pytest.raises(ServingError, match=message):
        bounded.run("length", {"text": np.array([b"a"] * 11, dtype=object)})


def test_outputs_without_batch_dimension_cannot_be_split(bounded):
    bounded.signatures["length"] = _Recorder(bounded.signatures["length"], fn=lambda text: {
        "total": tf.reduce_sum(tf.strings.length(text))})
    assert int(bounded.run("length", {"text": tf.constant(["ab", "c"])})["total"]) == 3
    with pytest.raises(ServingError, match=r"Output 'total' of signature 'length' has shape "
                                           r"\[\] for 4 rows: .* send at most 4 rows"):
        bounded.run("length", {"text": tf.constant(["ab"] * 6)})


def test_no_call_starts_past_the_deadline(bounded):
    """10 rows in calls of 4, each call taking 0.3 s, with 0.45 s to run: the first call (or
    two, under load) runs, then DEADLINE_EXCEEDED (HTTP 504) instead of the rest."""
    recorder = bounded.signatures["length"] = _Recorder(bounded.signatures["length"], 0.3)
    with pytest.raises(ServingError, match="Deadline exceeded") as error:
        bounded.run("length", {"text": tf.constant(["a"] * 10)}, time.monotonic() + 0.45)
    assert (error.value.status, error.value.code) == (504, "DEADLINE_EXCEEDED")
    assert 1 <= len(recorder.rows) < 3
    with pytest.raises(ServingError, match="Deadline exceeded"):
        bounded.run("length", {"text": tf.constant(["a"])}, time.monotonic() - 1)


def test_batcher_gets_calls_no_larger_than_its_batches(models):
    from kerlm.serving import BatchScheduler
    scheduler = BatchScheduler(max_batch_size=3)
    try:
        model = servables.ServedModel("toy", 2, str(models / "sentiment" / "2"), scheduler,
                                      execution_batch_size=64)
        recorder = model.signatures["length"] = _Recorder(model.signatures["length"])
        assert model.predict("length", "instances", ["ab"] * 7) == {"predictions": [2] * 7}
        assert recorder.rows == [3, 3, 1]
    finally:
        scheduler.close()
