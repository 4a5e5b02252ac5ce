"""apps/serve.py's bounds on each request: memory that does not grow with the batch, timeouts
on a stalled body or headers, and no server detail in any answer (issue 19)."""

import asyncio
import json
import socket
import time

import pytest
import requests
import tensorflow as tf
from aiohttp import test_utils

from conftest import start_server, wait_until_serving
from kerlm.serving import ServingError, make_app

MIB_PER_ROW = 1
ROWS = 600  # 600 MiB of activations if they were computed in one call
STEP = 16  # --max_execution_batch_size of the "bounded" server: 16 MiB per call
MEMORY_BOUND_MB = 250
TIMEOUT_MS = 1000  # --rest_api_timeout_in_ms of the "timeouts" server


class MemoryHog(tf.Module):
    """A signature whose activations take `MIB_PER_ROW` MiB per row, like a wide model's."""

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    def hog(self, text):
        rows = tf.shape(text)[0]
        noise = tf.random.uniform(tf.stack([rows, 256 * MIB_PER_ROW, 1024]))
        return {"mean": tf.reduce_mean(noise, axis=[1, 2])}

    def save(self, path):
        tf.saved_model.save(self, str(path), signatures={"serving_default": self.hog})


def _start(tmp_path, name, base_path, *flags):
    process, url, log = start_server(tmp_path, f"--model_name={name}",
                                     f"--model_base_path={base_path}", *flags)
    try:
        wait_until_serving(process, f"{url}/v1/models/{name}", log)
    except BaseException:
        process.kill()
        raise
    return process, url, log


def _stop(process):
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture(scope="module")
def hog_server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hog")
    MemoryHog().save(tmp / "hog" / "1")
    process, url, log = _start(tmp, "hog", tmp / "hog", f"--max_execution_batch_size={STEP}",
                               f"--max_request_batch_size={ROWS}")
    yield process, url + "/v1/models/hog", log
    _stop(process)


def _memory_mb(pid):
    """(VmRSS, VmHWM) of a process in MB: its resident memory now and at its peak."""
    with open(f"/proc/{pid}/status") as f:
        fields = dict(line.split(":", 1) for line in f)
    return tuple(int(fields[key].split()[0]) // 1024 for key in ("VmRSS", "VmHWM"))


def test_memory_stays_bounded_for_a_large_batch(hog_server):
    """600 rows of 1 MiB each run 16 at a time: the server's peak and lasting memory grow
    by much less than the 600 MiB one call of all rows would take (or the 2.3 GB that
    20,000 instances kept before issue 19's fix)."""
    process, url, _ = hog_server
    body = {"instances": ["a"] * ROWS}
    assert requests.post(url + ":predict", json={"instances": ["a"] * STEP}, timeout=60).ok
    before, _ = _memory_mb(process.pid)
    try:  # Resets the peak (VmHWM) to the current RSS (Linux's clear_refs).
        with open(f"/proc/{process.pid}/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass  # Then VmHWM may include the start-up peak: still bounded below.
    response = requests.post(url + ":predict", json=body, timeout=120)
    assert response.status_code == 200, response.text
    means = response.json()["predictions"]
    assert len(means) == ROWS and all(0.49 < m < 0.51 for m in means)
    after, peak = _memory_mb(process.pid)
    assert peak - before < MEMORY_BOUND_MB, (before, peak, after)
    assert after - before < MEMORY_BOUND_MB, (before, peak, after)


def test_over_the_batch_limit_is_refused_before_any_work(hog_server):
    process, url, _ = hog_server
    before, _ = _memory_mb(process.pid)
    for body in ({"instances": ["a"] * (ROWS + 1)}, {"inputs": {"text": ["a"] * (ROWS + 1)}}):
        response = requests.post(url + ":predict", json=body, timeout=60)
        assert response.status_code == 400
        assert response.json() == {"error": f"Task size {ROWS + 1} is larger than maximum "
                                            f"input batch size {ROWS} "
                                            "(--max_request_batch_size): split the request"}
    assert _memory_mb(process.pid)[0] - before < 50


# --- Timeouts, with raw sockets. ---

@pytest.fixture(scope="module")
def timeouts_server(models, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("timeouts")
    process, url, log = _start(tmp, "sentiment", models / "sentiment",
                               f"--rest_api_timeout_in_ms={TIMEOUT_MS}")
    yield process, url, log
    _stop(process)


def _connect(url):
    host, port = url.rsplit("/", 1)[1].split(":")
    return socket.create_connection((host, int(port)), timeout=15)


def _read_until_closed(connection):
    """All the server sends until it closes the connection (15 s at most between bytes)."""
    data = b""
    while chunk := connection.recv(65536):
        data += chunk
    return data


HEADERS = (b"POST /v1/models/sentiment:predict HTTP/1.1\r\nHost: localhost\r\n"
           b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n")


def test_a_stalled_body_is_answered_408_and_closed(timeouts_server):
    """The issue's client: 1000 bytes announced, 10 sent, then silence."""
    _, url, log = timeouts_server
    with _connect(url) as connection:
        start = time.monotonic()
        connection.sendall(HEADERS + b'{"instanc')
        answer = _read_until_closed(connection)
        waited = time.monotonic() - start
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), answer
    assert b"Connection: close" in head
    assert json.loads(body) == {"error": f"Timed out after {TIMEOUT_MS} ms waiting for the "
                                         "request body (--rest_api_timeout_in_ms)"}
    assert waited >= TIMEOUT_MS / 1000 * 0.9
    assert "408" in log.read_text() and "Traceback" not in log.read_text()


def test_stalled_headers_and_idle_connections_are_closed(timeouts_server):
    _, url, _ = timeouts_server
    for data in (b"POST /v1/models/sentiment:predict HTTP/1.1\r\nContent-Le", b""):
        with _connect(url) as connection:
            start = time.monotonic()
            connection.sendall(data)
            assert _read_until_closed(connection) == b""
            assert time.monotonic() - start >= TIMEOUT_MS / 1000 * 0.9


def test_a_client_leaving_mid_body_leaves_no_traceback(timeouts_server):
    process, url, log = timeouts_server
    with _connect(url) as connection:
        connection.sendall(HEADERS + b'{"instanc')
        time.sleep(0.2)
    deadline = time.monotonic() + 15
    while "closed the connection" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    text = log.read_text()
    assert "the client closed the connection before sending its whole body" in text
    assert "Traceback" not in text and "-> 500" not in text
    response = requests.post(url + "/v1/models/sentiment:predict",
                             json={"instances": ["abc"]}, timeout=30)
    assert response.status_code == 200 and process.poll() is None


def test_malformed_http_is_a_400_logged_in_one_line(timeouts_server):
    _, url, log = timeouts_server
    with _connect(url) as connection:
        connection.sendall(b"POST /v1/models/sentiment:predict HTTP/1.1\r\nBad Header\r\n\r\n")
        answer = _read_until_closed(connection)
    assert answer.split(b"\r\n")[0].endswith(b" 400 Bad Request"), answer
    deadline = time.monotonic() + 15
    while "malformed HTTP request" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "malformed HTTP request (Invalid header token" in log.read_text()
    assert "Traceback" not in log.read_text()


def test_requests_within_the_timeout_are_served(timeouts_server):
    _, url, _ = timeouts_server
    with _connect(url) as connection:  # A slow but steady body, then keep-alive.
        body = json.dumps({"instances": ["abcdef"]}).encode()
        connection.sendall(HEADERS.replace(b"1000", str(len(body)).encode()) + body[:5])
        time.sleep(0.3)
        connection.sendall(body[5:])
        head = connection.recv(65536)
    assert head.startswith(b"HTTP/1.1 200 OK"), head


# --- Internal errors and deadlines of the REST app, in process. ---

class _Model:
    def __init__(self, fail=None, sleep=0.0):
        self.fail, self.sleep = fail, sleep

    def predict(self, signature_name, request_format, payload, deadline=None):
        time.sleep(self.sleep)
        if self.fail:
            raise self.fail
        return {"predictions": payload}


class _Registry:
    def __init__(self, model):
        self.model = model

    def get(self, name, version=None):
        if name == "broken":
            raise KeyError("internal table /secret/state")
        return self.model


def _post(registry, path, body, timeout_ms=30_000):
    async def run():
        async with test_utils.TestClient(test_utils.TestServer(
                make_app(registry, timeout_ms=timeout_ms))) as client:
            response = await client.post(path, json=body)
            return response.status, await response.json()
    return asyncio.run(run())


def test_internal_errors_answer_a_bare_500(caplog):
    """A bug of the server: 500 with a generic message, the details in the log only."""
    bug = _Registry(_Model(fail=RuntimeError("secret /srv/models/x")))
    for path in ("/v1/models/m:predict", "/v1/models/broken:predict"):
        status, body = _post(bug, path, {"instances": ["a"]})
        assert status == 500
        assert body == {"error": "Internal server error (the server's log has the details)"}
    assert "secret /srv/models/x" in caplog.text and "/secret/state" in caplog.text


def test_inference_past_the_timeout_is_answered_504():
    status, body = _post(_Registry(_Model(sleep=2.0)), "/v1/models/m:predict",
                         {"instances": ["a"]}, timeout_ms=300)
    assert status == 504
    assert body == {"error": "Deadline exceeded: no answer within 300 ms "
                             "(--rest_api_timeout_in_ms)"}
    assert _post(_Registry(_Model()), "/v1/models/m:predict", {"instances": ["a"]},
                 timeout_ms=0) == (200, {"predictions": ["a"]})
    status, body = _post(_Registry(_Model(fail=ServingError("x" * 5000))), "/v1/models/m:predict",
                         {"instances": ["a"]})
    assert status == 400 and len(body["error"]) < 1100
