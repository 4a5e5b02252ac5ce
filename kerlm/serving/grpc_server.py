"""TF Serving's gRPC API over a ModelRegistry, with the stubs of tensorflow-serving-api.

`PredictionService`: Predict, GetModelMetadata (``metadata_field: "signature_def"``);
`ModelService`: GetModelStatus. Classify, Regress, MultiInference and
HandleReloadConfigRequest answer UNIMPLEMENTED. Errors carry TF Serving's status codes and
messages: NOT_FOUND for an unknown model or version, FAILED_PRECONDITION for an unknown
signature, INVALID_ARGUMENT for bad inputs or a batch over the server's limit, and a bare
INTERNAL for a bug of the server (details in its log). A large batch runs in bounded
calls like REST's (see `servables`); no further call starts past the client's deadline.
Start it with `apps/serve.py --port`, or:

    server = make_server(registry, "127.0.0.1", 8500)
    server.start()
    server.wait_for_termination()

A client needs only grpcio, tensorflow-serving-api and TensorFlow's tensor protos:

    stub = prediction_service_pb2_grpc.PredictionServiceStub(
        grpc.insecure_channel("127.0.0.1:8500"))
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "sentiment"
    request.inputs["text"].CopyFrom(tf.make_tensor_proto(["a great film"]))
    tf.make_ndarray(stub.Predict(request, timeout=10).outputs["label"])   # [b'positive']
"""

import time
from concurrent import futures

import grpc
from absl import logging
from tensorflow_serving.apis import (get_model_metadata_pb2, get_model_status_pb2,
                                     model_service_pb2_grpc, prediction_service_pb2_grpc)

from kerlm.serving import protos
from kerlm.serving.codec import ServingError

DEFAULT_MAX_THREADS = 64
_MAX_MESSAGE_BYTES = 2**31 - 1  # TF Serving's limit: INT32_MAX


def _answer(context, method, fn):
    """`fn()`, with ServingErrors and bugs turned into gRPC statuses."""
    try:
        return fn()
    except ServingError as e:
        context.abort(getattr(grpc.StatusCode, e.code), str(e))
    except Exception:  # A bug in this server, not in the request: no details to the client.
        logging.exception("Internal error in %s", method)
        context.abort(grpc.StatusCode.INTERNAL,
                      "Internal server error (the server's log has the details)")


def _unimplemented(context, method):
    context.abort(grpc.StatusCode.UNIMPLEMENTED,
                  f"{method} is not implemented by kerlm's server; use Predict")


def _model_spec(request):
    """(name, version or None) of a request's ModelSpec."""
    if not request.HasField("model_spec"):
        raise ServingError("Missing ModelSpec")
    spec = request.model_spec
    if spec.version_label:
        raise ServingError(f"Unrecognized servable version label: {spec.version_label}")
    return spec.name, spec.version.value if spec.HasField("version") else None


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    """Predict and GetModelMetadata on a ModelRegistry's models."""

    def __init__(self, registry):
        self._registry = registry

    def Predict(self, request, context):
        remaining = context.time_remaining()  # The client's deadline, if it set one.
        deadline = None if remaining is None else time.monotonic() + remaining
        return _answer(context, "Predict", lambda: protos.predict(
            self._registry.get(*_model_spec(request)), request, deadline))

    def GetModelMetadata(self, request, context):
        return _answer(context, "GetModelMetadata", lambda: self._metadata(request))

    def _metadata(self, request):
        if not request.metadata_field:
            raise ServingError("GetModelMetadataRequest must specify at least one "
                               "metadata_field")
        for field in request.metadata_field:
            if field != "signature_def":
                raise ServingError(f"Metadata field {field} is not supported")
        model = self._registry.get(*_model_spec(request))
        signature_map = get_model_metadata_pb2.SignatureDefMap()
        for name, signature in model.signature_defs.items():
            signature_map.signature_def[name].CopyFrom(signature)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = model.name
        response.model_spec.version.value = model.version
        response.metadata["signature_def"].Pack(signature_map)
        return response

    def Classify(self, request, context):
        _unimplemented(context, "Classify")

    def Regress(self, request, context):
        _unimplemented(context, "Regress")

    def MultiInference(self, request, context):
        _unimplemented(context, "MultiInference")


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    """GetModelStatus: every loaded version is AVAILABLE (loaded and warmed up)."""

    def __init__(self, registry):
        self._registry = registry

    def GetModelStatus(self, request, context):
        return _answer(context, "GetModelStatus", lambda: self._status(request))

    def _status(self, request):
        name, version = _model_spec(request)
        if name not in self._registry.names():
            raise ServingError(f"Could not find any versions of model {name}", status=404)
        versions = self._registry.versions(name)
        if version is not None:
            if version not in versions:
                raise ServingError(f"Could not find version {version} of model {name}",
                                   status=404)
            versions = [version]
        response = get_model_status_pb2.GetModelStatusResponse()
        for v in versions:
            response.model_version_status.add(
                version=v, state=get_model_status_pb2.ModelVersionStatus.AVAILABLE)
        return response

    def HandleReloadConfigRequest(self, request, context):
        _unimplemented(context, "HandleReloadConfigRequest")


def make_server(registry, host="127.0.0.1", port=8500, max_threads=DEFAULT_MAX_THREADS):
    """A gRPC server (not yet started) for `registry`, bound to host:port.

    `max_threads` bounds the requests handled at once; with batching, it also bounds how
    many can wait to be merged.

    Raises:
      OSError: if the address cannot be bound.
    """
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_threads, thread_name_prefix="grpc"),
        options=[("grpc.max_send_message_length", _MAX_MESSAGE_BYTES),
                 ("grpc.max_receive_message_length", _MAX_MESSAGE_BYTES)])
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionService(registry), server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(registry), server)
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        server.add_insecure_port(address)
    except RuntimeError as e:
        raise OSError(f"Cannot listen for gRPC on {address}: {e}") from e
    return server
