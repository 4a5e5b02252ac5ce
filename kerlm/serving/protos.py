"""TF Serving's protobuf side: a SavedModel's SignatureDefs and Predict on PredictRequests.

Shared by the gRPC server and the warm-up replay. Errors are ServingErrors whose gRPC codes
and messages follow TF Serving's (`tensorflow_serving/servables/tensorflow/predict_util.cc`).

>>> from tensorflow_serving.apis import predict_pb2
>>> request = predict_pb2.PredictRequest()
>>> request.inputs["text"].CopyFrom(tf.make_tensor_proto(["hi"]))
>>> request_inputs(request, {"text": tf.TensorSpec([None], tf.string)})
{'text': array([b'hi'], dtype=object)}
"""

import os

import tensorflow as tf
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import predict_pb2

from kerlm.serving.codec import DEFAULT_SIGNATURE, ServingError


def read_signature_defs(path):
    """{name: SignatureDef proto} of the "serve" MetaGraph of the SavedModel at `path`."""
    with open(os.path.join(path, "saved_model.pb"), "rb") as f:
        saved_model = saved_model_pb2.SavedModel.FromString(f.read())
    graph = next((g for g in saved_model.meta_graphs if "serve" in g.meta_info_def.tags),
                 saved_model.meta_graphs[0])
    return dict(graph.signature_def)


def _names(names):
    return "{" + ",".join(sorted(names)) + "}"


def _dtype(enum):
    return types_pb2.DataType.Name(enum)


def request_inputs(request, specs):
    """The request's inputs as numpy arrays, checked against {input name: tf.TensorSpec}.

    Raises:
      ServingError: INVALID_ARGUMENT naming the input that is missing, unknown, of another
        dtype or shape, or unparsable.
    """
    sent = set(request.inputs)
    if len(sent) != len(specs):
        raise ServingError(
            f"input size does not match signature: {len(sent)}!={len(specs)} "
            f"len({_names(sent)}) != len({_names(specs)}). Sent extra: "
            f"{_names(sent - set(specs))}. Missing but required: {_names(set(specs) - sent)}.")
    unknown = sorted(sent - set(specs))
    if unknown:
        raise ServingError(f"input tensor alias not found in signature: {unknown[0]}. Inputs "
                           f"expected to be in the set {_names(specs)}.")
    arrays = {}
    for name, spec in specs.items():
        proto = request.inputs[name]
        if proto.dtype != spec.dtype.as_datatype_enum:
            raise ServingError(f"input '{name}' must be {_dtype(spec.dtype.as_datatype_enum)}, "
                               f"got {_dtype(proto.dtype)}")
        # The shape is checked before the array is built: a proto may give one value for
        # a shape of any size (TensorFlow then repeats it), so a few bytes could otherwise
        # make the server allocate gigabytes before their shape is refused.
        if not proto.tensor_shape.unknown_rank:
            dims = [d.size for d in proto.tensor_shape.dim]
            if not spec.shape.is_compatible_with(dims):
                raise ServingError(f"input '{name}' has shape {dims} but the signature "
                                   f"expects {spec.shape}")
        try:
            array = tf.make_ndarray(proto)
        except (TypeError, ValueError) as e:
            raise ServingError(f"tensor parsing error: {name} ({e})") from e
        if not spec.shape.is_compatible_with(array.shape):
            raise ServingError(f"input '{name}' has shape {list(array.shape)} but the "
                               f"signature expects {spec.shape}")
        arrays[name] = array
    return arrays


def _output_names(output_filter, outputs):
    """The outputs a request asks for: its `output_filter`, or all when that is empty."""
    for i, name in enumerate(output_filter):
        if name not in outputs:
            raise ServingError(f"output tensor alias not found in signature: {name} Outputs "
                               f"expected to be in the set {_names(outputs)}.")
        if name in output_filter[:i]:
            raise ServingError(f"duplicate output tensor alias: {name}")
    return list(output_filter) or list(outputs)


def batch_size(request):
    """The longest first dimension of a PredictRequest's inputs (None if all are scalars),
    read from the shapes alone, before any tensor is built."""
    rows = [proto.tensor_shape.dim[0].size for proto in request.inputs.values()
            if proto.tensor_shape.dim]
    return max(rows) if rows else None


def predict(model, request, deadline=None):
    """Runs a PredictRequest on `model` (a servables.ServedModel); returns a PredictResponse.

    The response's model_spec names the version and signature that answered. `deadline`
    (time.monotonic()) is passed on to `model.run`.
    """
    signature_name = request.model_spec.signature_name or DEFAULT_SIGNATURE
    if signature_name not in model.signatures:
        raise ServingError(f'Serving signature key "{signature_name}" not found.',
                           code="FAILED_PRECONDITION")
    names = _output_names(request.output_filter,
                          model.signature_defs[signature_name].outputs)
    model.check_batch_size(batch_size(request))
    inputs = request_inputs(request, model.input_specs(signature_name))
    outputs = model.run(signature_name, inputs, deadline)
    response = predict_pb2.PredictResponse()
    response.model_spec.name = request.model_spec.name or model.name
    response.model_spec.version.value = model.version
    response.model_spec.signature_name = signature_name
    for name in names:
        response.outputs[name].CopyFrom(tf.make_tensor_proto(outputs[name]))
    return response
