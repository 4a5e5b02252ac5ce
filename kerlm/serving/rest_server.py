"""An aiohttp server speaking TF Serving's REST API (status, metadata and predict).

Routes, with ``[/versions/N]`` optional (default: the highest loaded version):

    GET  /v1/models/NAME[/versions/N]            model status
    GET  /v1/models/NAME[/versions/N]/metadata   signature defs
    POST /v1/models/NAME[/versions/N]:predict    {"instances": [...]} or {"inputs": ...}

Every error is a JSON ``{"error": message}``. Inference runs in a thread pool so the event
loop keeps serving other requests. Start it with `apps/serve.py`, or:

    registry = ModelRegistry()
    registry.add("sentiment", "saved_models/sentiment")
    serve(registry, host="127.0.0.1", port=8501)
"""

import asyncio
import json
import time
from concurrent import futures

from absl import logging
from aiohttp import web

from kerlm.serving import codec
from kerlm.serving.codec import ServingError

DEFAULT_MAX_BODY_BYTES = 16 << 20
_REGISTRY = web.AppKey("registry", object)
_EXECUTOR = web.AppKey("executor", futures.ThreadPoolExecutor)
_MODEL = r"/v1/models/{name:[^/:]+}"
_VERSION = r"/versions/{version:\d+}"


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
    except Exception as e:  # A bug in this server, not in the request.
        logging.exception("Internal error on %s %s", request.method, request.path)
        response = _json({"error": f"Internal server error: {e!r}"}, 500)
    logging.info("%s %s -> %d (%.1f ms)", request.method, request.path, response.status,
                 1000 * (time.perf_counter() - start))
    return response


def _model(request):
    version = request.match_info.get("version")
    return request.match_info["name"], None if version is None else int(version)


async def _status(request):
    return _json(request.app[_REGISTRY].status(*_model(request)))


async def _metadata(request):
    return _json(request.app[_REGISTRY].get(*_model(request)).metadata())


def _predict_json(model, body):
    """Blocking part of predict (JSON parsing, tensors, inference): runs in the executor."""
    response = model.predict(*codec.parse_predict_request(body))
    return json.dumps(response)


async def _predict(request):
    model = request.app[_REGISTRY].get(*_model(request))
    body = await request.read()
    loop = asyncio.get_running_loop()
    text = await loop.run_in_executor(request.app[_EXECUTOR], _predict_json, model, body)
    return web.Response(text=text, content_type="application/json")


def make_app(registry, max_body_bytes=DEFAULT_MAX_BODY_BYTES):
    """The aiohttp application serving `registry` (a servables.ModelRegistry).

    Bodies over `max_body_bytes` are refused with 413.
    """
    app = web.Application(client_max_size=max_body_bytes, middlewares=[_errors_and_logging])
    app[_REGISTRY] = registry
    app[_EXECUTOR] = futures.ThreadPoolExecutor(thread_name_prefix="predict")

    async def shutdown_executor(app):
        app[_EXECUTOR].shutdown(wait=False, cancel_futures=True)

    app.on_cleanup.append(shutdown_executor)
    for prefix in (_MODEL, _MODEL + _VERSION):
        app.router.add_get(prefix, _status)
        app.router.add_get(prefix + "/metadata", _metadata)
        app.router.add_post(prefix + ":predict", _predict)
    return app


def serve(registry, host="127.0.0.1", port=8501, max_body_bytes=DEFAULT_MAX_BODY_BYTES):
    """Serves `registry` until interrupted; prints one line per model once listening."""

    def announce(_):
        for name in registry.names():
            print(f"Serving {name} versions {sorted(registry.versions(name))} at "
                  f"http://{host}:{port}/v1/models/{name}", flush=True)

    web.run_app(make_app(registry, max_body_bytes), host=host, port=port, print=announce,
                access_log=None)
