"""An aiohttp server speaking TF Serving's REST API (status, metadata and predict).

Routes, with ``[/versions/N]`` optional (default: the highest loaded version):

    GET  /v1/models/NAME[/versions/N]            model status
    GET  /v1/models/NAME[/versions/N]/metadata   signature defs
    POST /v1/models/NAME[/versions/N]:predict    {"instances": [...]} or {"inputs": ...}

Every error is a JSON ``{"error": message}``: 4xx for a client's mistake, and a bare
"Internal server error" 500 (details in the server's log only) for a bug of the server.
Inference runs in a thread pool so the event loop keeps serving other requests.

Each predict has `timeout_ms` (TF Serving's `--rest_api_timeout_in_ms`, 30 s) from the
moment its headers are read: a body that has not fully arrived by then is answered 408 and
the connection closed; inference still running then is answered 504 (TF Serving's
DEADLINE_EXCEEDED) and no further batch of its rows is started. A connection idle, or
stalled inside its headers, that long is closed. Start it with `apps/serve.py`, or:

    registry = ModelRegistry()
    registry.add("sentiment", "saved_models/sentiment")
    serve(registry, host="127.0.0.1", port=8501)
"""

import asyncio
import json
import logging as std_logging
import time
from concurrent import futures

from absl import logging
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from kerlm.serving import codec
from kerlm.serving.codec import ServingError

DEFAULT_MAX_BODY_BYTES = 16 << 20
DEFAULT_TIMEOUT_MS = 30_000  # TF Serving's --rest_api_timeout_in_ms
_REGISTRY = web.AppKey("registry", object)
_EXECUTOR = web.AppKey("executor", futures.ThreadPoolExecutor)
_TIMEOUT = web.AppKey("timeout", object)  # seconds, or None for no timeout
_INTERNAL_ERROR = "Internal server error (the server's log has the details)"
_MODEL = r"/v1/models/{name:[^/:]+}"
_VERSION = r"/versions/{version:\d+}"


class _BodyTimeout(Exception):
    """The request body did not arrive within the timeout."""


class _ClientGone(Exception):
    """The client closed the connection before sending its whole body."""


def _json(data, status=200, headers=None):
    return web.Response(text=json.dumps(data), status=status, headers=headers,
                        content_type="application/json")


@web.middleware
async def _errors_and_logging(request, handler):
    """Turns every error, aiohttp's own 404/405/413 included, into JSON; logs the request."""
    start = time.perf_counter()
    try:
        response = await handler(request)
    except ServingError as e:
        response = _json({"error": str(e)}, e.status)
    except web.HTTPException as e:
        allow = {"Allow": e.headers["Allow"]} if "Allow" in e.headers else None
        response = _json({"error": e.text or e.reason}, e.status, allow)
    except _BodyTimeout:
        timeout = request.app[_TIMEOUT]
        response = _json({"error": f"Timed out after {1000 * timeout:.0f} ms waiting for the "
                                   "request body (--rest_api_timeout_in_ms)"}, 408)
        await _send_and_close(request, response)
    except _ClientGone:
        logging.info("%s %s: the client closed the connection before sending its whole body",
                     request.method, request.path)
        # TF Serving's CLIENT_CLOSED_REQUEST; nobody reads it, aiohttp drops it quietly.
        response = web.Response(status=499)
    except Exception:  # A bug in this server, not in the request: no details to the client.
        logging.exception("Internal error on %s %s", request.method, request.path)
        response = _json({"error": _INTERNAL_ERROR}, 500)
    logging.info("%s %s -> %d (%.1f ms)", request.method, request.path, response.status,
                 1000 * (time.perf_counter() - start))
    return response


async def _send_and_close(request, response):
    """Sends `response` now and closes the connection, rather than letting aiohttp wait up
    to its lingering time for the rest of a body that is not coming."""
    response.force_close()
    try:
        await response.prepare(request)
        await response.write_eof()
    except ConnectionError:
        pass
    request.protocol.force_close()


async def _read_body(request):
    """The whole body, within the app's timeout; raises _BodyTimeout or _ClientGone."""
    try:
        return await asyncio.wait_for(request.read(), request.app[_TIMEOUT])
    except asyncio.TimeoutError as e:
        raise _BodyTimeout() from e
    except ConnectionError as e:
        raise _ClientGone() from e


def _model(request):
    version = request.match_info.get("version")
    return request.match_info["name"], None if version is None else int(version)


async def _status(request):
    return _json(request.app[_REGISTRY].status(*_model(request)))


async def _metadata(request):
    return _json(request.app[_REGISTRY].get(*_model(request)).metadata())


def _predict_json(model, body, deadline):
    """Blocking part of predict (JSON parsing, tensors, inference): runs in the executor."""
    try:
        response = model.predict(*codec.parse_predict_request(body), deadline=deadline)
    except RecursionError as e:  # Deep nesting that got past the JSON parser.
        raise ServingError("The request's lists or objects are nested too deeply") from e
    return json.dumps(response)


async def _predict(request):
    timeout = request.app[_TIMEOUT]
    deadline = None if timeout is None else time.monotonic() + timeout
    model = request.app[_REGISTRY].get(*_model(request))
    body = await _read_body(request)
    loop = asyncio.get_running_loop()
    work = loop.run_in_executor(request.app[_EXECUTOR], _predict_json, model, body, deadline)
    try:
        text = await asyncio.wait_for(
            work, None if deadline is None else max(0.0, deadline - time.monotonic()))
    except asyncio.TimeoutError as e:  # The thread stops before its next batch of rows.
        raise ServingError(f"Deadline exceeded: no answer within {1000 * timeout:.0f} ms "
                           "(--rest_api_timeout_in_ms)", status=504) from e
    return web.Response(text=text, content_type="application/json")


class _QuietParseErrors(std_logging.Filter):
    """Logs aiohttp's answers to malformed HTTP (its own 400s) in one line, not a traceback."""

    def filter(self, record):
        if record.exc_info and isinstance(record.exc_info[1], HttpProcessingError):
            record.msg = f"{record.msg}: malformed HTTP request ({record.exc_info[1].message})"
            record.exc_info = record.exc_text = None
        return True


def _timeout_seconds(timeout_ms):
    return timeout_ms / 1000 if timeout_ms and timeout_ms > 0 else None


def make_app(registry, max_body_bytes=DEFAULT_MAX_BODY_BYTES, timeout_ms=DEFAULT_TIMEOUT_MS):
    """The aiohttp application serving `registry` (a servables.ModelRegistry).

    Bodies over `max_body_bytes` are refused with 413. `timeout_ms` bounds each predict
    (see the module docstring); 0 or less: no timeout, as in TF Serving.
    """
    app = web.Application(client_max_size=max_body_bytes, middlewares=[_errors_and_logging])
    app[_REGISTRY] = registry
    app[_TIMEOUT] = _timeout_seconds(timeout_ms)
    app[_EXECUTOR] = futures.ThreadPoolExecutor(thread_name_prefix="predict")

    async def shutdown_executor(app):
        app[_EXECUTOR].shutdown(wait=False, cancel_futures=True)

    app.on_cleanup.append(shutdown_executor)
    for prefix in (_MODEL, _MODEL + _VERSION):
        app.router.add_get(prefix, _status)
        app.router.add_get(prefix + "/metadata", _metadata)
        app.router.add_post(prefix + ":predict", _predict)
    return app


def serve(registry, host="127.0.0.1", port=8501, max_body_bytes=DEFAULT_MAX_BODY_BYTES,
          timeout_ms=DEFAULT_TIMEOUT_MS):
    """Serves `registry` until interrupted; prints one line per model once listening.

    A connection that sends nothing, or stalls inside its headers, is closed after
    `timeout_ms` (aiohttp's keep-alive timeout; 75 s without a timeout).
    """

    def announce(_):
        for name in registry.names():
            print(f"Serving {name} versions {sorted(registry.versions(name))} at "
                  f"http://{host}:{port}/v1/models/{name}", flush=True)

    server_log = std_logging.getLogger("aiohttp.server")
    if not any(isinstance(f, _QuietParseErrors) for f in server_log.filters):
        server_log.addFilter(_QuietParseErrors())
    timeout = _timeout_seconds(timeout_ms)
    web.run_app(make_app(registry, max_body_bytes, timeout_ms), host=host, port=port,
                print=announce, access_log=None,
                keepalive_timeout=75.0 if timeout is None else timeout)
