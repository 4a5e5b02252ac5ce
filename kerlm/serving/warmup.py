"""SavedModel warm-up in TF Serving's format: ``assets.extra/tf_serving_warmup_requests``.

The file is a TFRecord of `PredictionLog` protos whose `predict_log.request` is a
PredictRequest. A server replays them when it loads a version, before serving it, so the
runtime's one-time work (function instantiation, graph optimization) is not paid by the
first real request. TF Serving and kerlm's server both do; `export.export_task` writes one
request per signature into every export:

    write_requests("saved_models/sentiment/1", "sentiment")
    [r.model_spec.signature_name for r in read_requests(
        "saved_models/sentiment/1/" + WARMUP_FILE)]                # ['serving_default']

Example inputs are a batch of `EXAMPLE_ROWS` values per input: a short sentence for strings,
8 for integers, 0 for floats, False for booleans; a task may give its own with a
`warmup_inputs()` method returning ``{signature: {input name: list of rows}}``.
"""

import os
import time

import numpy as np
import tensorflow as tf
from absl import logging
from google.protobuf import message
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

from kerlm.serving import protos

WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
EXAMPLE_TEXT = "The quick brown fox jumps over the lazy dog."
EXAMPLE_ROWS = 2


def _example_array(name, tensor_info):
    """`EXAMPLE_ROWS` rows of a default value fitting a SignatureDef input."""
    dtype = tf.dtypes.as_dtype(tensor_info.dtype)
    if dtype == tf.string:
        value = EXAMPLE_TEXT.encode()
    elif dtype.is_integer:
        value = 8
    elif dtype.is_floating:
        value = 0.0
    elif dtype.is_bool:
        value = False
    else:
        raise ValueError(f"No default warm-up value for input '{name}' of dtype {dtype.name}: "
                         "give one with the task's warmup_inputs()")
    shape = tf.TensorShape(tensor_info.tensor_shape)
    dims = [EXAMPLE_ROWS] if shape.rank is None else [
        d if d is not None else EXAMPLE_ROWS if i == 0 else 1
        for i, d in enumerate(shape.as_list())]
    return np.full(dims, value, dtype=object if dtype == tf.string else dtype.as_numpy_dtype)


def example_requests(signature_defs, model_name, inputs=None):
    """One PredictRequest per predict signature (sorted by name), with example inputs.

    Args:
      signature_defs: {signature name: SignatureDef proto}; those that are not predict
        signatures (such as ``__saved_model_init_op``) are skipped.
      model_name: the name put in each request's model_spec.
      inputs: optional {signature name: {input name: values}}; a signature named there must
        be given all its inputs, the others get default examples.
    Raises:
      ValueError: for a signature or input in `inputs` that the model lacks, or a signature
        of `inputs` missing one of its inputs.
    """
    inputs = inputs or {}
    signature_defs = {name: signature for name, signature in signature_defs.items()
                      if signature.method_name == tf.saved_model.PREDICT_METHOD_NAME}
    unknown = sorted(set(inputs) - set(signature_defs))
    if unknown:
        raise ValueError(f"Warm-up inputs for unknown signatures {unknown}; the model has "
                         f"{sorted(signature_defs)}")
    requests = []
    for signature_name, signature in sorted(signature_defs.items()):
        given = inputs.get(signature_name)
        if given is not None and set(given) != set(signature.inputs):
            raise ValueError(f"Warm-up inputs of signature '{signature_name}' are "
                             f"{sorted(given)}; it takes {sorted(signature.inputs)}")
        request = predict_pb2.PredictRequest()
        request.model_spec.name = model_name
        request.model_spec.signature_name = signature_name
        for name, info in signature.inputs.items():
            value = (given[name] if given is not None else _example_array(name, info))
            request.inputs[name].CopyFrom(tf.make_tensor_proto(
                value, dtype=tf.dtypes.as_dtype(info.dtype)))
        requests.append(request)
    return requests


def write_requests(export_path, model_name, inputs=None):
    """Writes `example_requests` for the SavedModel at `export_path`; returns the file path."""
    requests = example_requests(protos.read_signature_defs(export_path), model_name, inputs)
    path = os.path.join(export_path, WARMUP_FILE)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as writer:
        for request in requests:
            log = prediction_log_pb2.PredictionLog()
            log.predict_log.request.CopyFrom(request)
            writer.write(log.SerializeToString())
    return path


def read_requests(path):
    """The PredictRequests of a warm-up file.

    Raises:
      ValueError: for a record that is not a PredictionLog with a predict_log (kerlm's
        server answers Predict only).
    """
    requests = []
    try:
        records = list(tf.data.TFRecordDataset(path).as_numpy_iterator())
        logs = [prediction_log_pb2.PredictionLog.FromString(r) for r in records]
    except (tf.errors.OpError, message.DecodeError) as e:
        raise ValueError(f"{path} is not a TFRecord of PredictionLog protos: {e}") from e
    for i, log in enumerate(logs):
        if log.WhichOneof("log_type") != "predict_log":
            raise ValueError(f"{path}: record {i} is a {log.WhichOneof('log_type')}; only "
                             "predict_log warm-up records are supported")
        requests.append(log.predict_log.request)
    return requests


def replay(model):
    """Runs the warm-up requests of `model` (a ServedModel), if it has a warm-up file.

    Returns:
      The number of requests replayed.
    Raises:
      ValueError: if the file is malformed or a request fails, naming the record.
    """
    path = os.path.join(model.path, WARMUP_FILE)
    if not os.path.exists(path):
        return 0
    start = time.perf_counter()
    requests = read_requests(path)
    for i, request in enumerate(requests):
        try:
            protos.predict(model, request)
        except Exception as e:
            raise ValueError(f"Warm-up request {i} of {model.name} version {model.version} "
                             f"({path}) failed: {e}") from e
    logging.info("Warm-up of %s version %d: replayed %d requests in %.1f ms", model.name,
                 model.version, len(requests), 1000 * (time.perf_counter() - start))
    return len(requests)
