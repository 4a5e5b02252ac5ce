"""TF Serving's JSON predict format: request values -> tensors, output arrays -> JSON values.

Row format ("instances") and columnar format ("inputs") follow TF Serving's REST API:
binary strings may be sent as ``{"b64": "..."}``; string outputs come back as UTF-8 text,
or as ``{"b64": "..."}`` when the output's name ends with ``_bytes`` or the bytes are not
valid UTF-8.

>>> import tensorflow as tf
>>> specs = {"text": tf.TensorSpec([None], tf.string)}
>>> instances_to_tensors(["hi", {"b64": "aGk="}], specs)["text"].numpy().tolist()
[b'hi', b'hi']
>>> format_predictions({"label": np.array([b"pos", b"neg"])})
['pos', 'neg']
"""

import base64
import binascii
import json

import numpy as np
import tensorflow as tf


DEFAULT_SIGNATURE = "serving_default"
# Lists nested deeper than this in an input value are refused: TensorFlow aborts the whole
# process when asked for a tensor of more than 254 dimensions, and no served signature
# takes a rank anywhere near this.
MAX_NESTING = 32


class ServingError(Exception):
    """An error for the client: REST answers ``{"error": message}`` with HTTP `status`,
    gRPC the status `code` (a grpc.StatusCode name; by default the one for `status`)."""

    _CODES = {400: "INVALID_ARGUMENT", 404: "NOT_FOUND", 408: "DEADLINE_EXCEEDED",
              503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}

    MAX_MESSAGE = 1000  # characters: TensorFlow's messages can quote a whole input value

    def __init__(self, message, status=400, code=None):
        if len(message) > self.MAX_MESSAGE:
            message = (f"{message[:self.MAX_MESSAGE]}... ({len(message) - self.MAX_MESSAGE} "
                       "more characters)")
        super().__init__(message)
        self.status = status
        self.code = code or self._CODES.get(status, "INTERNAL")


def parse_predict_request(body):
    """Parses a predict body into (signature_name, format, payload).

    `format` is "instances" (row) or "inputs" (columnar); `payload` is that key's value.

    >>> parse_predict_request(b'{"signature_name": "s", "inputs": ["a"]}')
    ('s', 'inputs', ['a'])
    """
    try:
        request = json.loads(body)
    except ValueError as e:
        raise ServingError(f"Malformed JSON request body: {e}") from e
    except RecursionError as e:  # Python's parser recurses once per nested list or object.
        raise ServingError("Malformed JSON request body: lists or objects are nested too "
                           f"deeply (input values may nest lists {MAX_NESTING} deep)") from e
    if not isinstance(request, dict):
        raise ServingError("The request body must be a JSON object")
    formats = [key for key in ("instances", "inputs") if key in request]
    if len(formats) != 1:
        raise ServingError("The request must have exactly one of 'instances' (row format) "
                           "or 'inputs' (columnar format)")
    signature_name = request.get("signature_name", DEFAULT_SIGNATURE)
    if not isinstance(signature_name, str):
        raise ServingError("'signature_name' must be a string")
    return signature_name, formats[0], request[formats[0]]


def _is_b64(value):
    return isinstance(value, dict) and set(value) == {"b64"}


def _is_named(value):
    """True for an object naming inputs, as opposed to a value (b64 objects are values)."""
    return isinstance(value, dict) and not _is_b64(value)


def request_batch_size(request_format, payload):
    """Rows of a parsed request, before conversion: its number of instances, or the length
    of its longest columnar input list (None without a list).

    >>> request_batch_size("instances", ["a", "b"]), request_batch_size("inputs", {"x": [1]})
    (2, 1)
    """
    if request_format == "instances":
        return len(payload) if isinstance(payload, list) else None
    values = payload.values() if _is_named(payload) else [payload]
    return max((len(v) for v in values if isinstance(v, list)), default=None)


def _decode_b64(value, name, depth=0):
    """Replaces every ``{"b64": s}`` inside nested lists by the decoded bytes."""
    if isinstance(value, list):
        if depth == MAX_NESTING:
            raise ServingError(f"Input '{name}': lists nested more than {MAX_NESTING} deep")
        return [_decode_b64(v, name, depth + 1) for v in value]
    if _is_b64(value):
        try:
            return base64.b64decode(value["b64"], validate=True)
        except (TypeError, binascii.Error) as e:
            raise ServingError(f"Input '{name}': invalid base64 value: {e}") from e
    if isinstance(value, dict):
        raise ServingError(f"Input '{name}': unexpected JSON object with keys "
                           f"{sorted(value)[:8]} (a binary value is {{\"b64\": \"...\"}})")
    return value


def _to_tensors(columns, specs):
    """Converts {input name: nested list} to tensors of the signature's dtypes and shapes."""
    for name in columns:
        if name not in specs:
            raise ServingError(f"Unknown input '{name}'; the signature's inputs are "
                               f"{sorted(specs)}")
    missing = sorted(set(specs) - set(columns))
    if missing:
        raise ServingError(f"Missing input '{missing[0]}'; the signature's inputs are "
                           f"{sorted(specs)}")
    tensors = {}
    for name, spec in specs.items():
        value = _decode_b64(columns[name], name)
        try:
            tensor = tf.constant(value, dtype=spec.dtype)
        except (TypeError, ValueError) as e:
            raise ServingError(f"Input '{name}' cannot be converted to a {spec.dtype.name} "
                               f"tensor: {e}") from e
        if not spec.shape.is_compatible_with(tensor.shape):
            raise ServingError(f"Input '{name}' has shape {tensor.shape.as_list()} but the "
                               f"signature expects {spec.shape}")
        tensors[name] = tensor
    batch_sizes = {n: t.shape[0] for n, t in tensors.items() if t.shape.rank}
    if len(set(batch_sizes.values())) > 1:
        raise ServingError(f"Inputs have different batch sizes: {batch_sizes}")
    return tensors


def instances_to_tensors(instances, specs):
    """Row format: a list of values (single-input signatures) or of {input name: value}.

    Args:
      instances: the request's "instances" JSON value.
      specs: {input name: tf.TensorSpec} of the signature.
    Returns:
      {input name: tf.Tensor}, each batched along the first dimension.
    """
    if not isinstance(instances, list):
        raise ServingError("'instances' must be a list")
    if not instances:  # TF Serving's answer; an empty columnar batch is a [0]-row tensor.
        raise ServingError("No values in 'instances' array: send at least one instance, or "
                           "an empty batch in the columnar format ({\"inputs\": ...})")
    named = [_is_named(x) for x in instances]
    if all(named):
        keys = set(instances[0])
        for i, instance in enumerate(instances):
            if set(instance) != keys:
                raise ServingError(f"Instance {i} has inputs {sorted(instance)} but "
                                   f"instance 0 has {sorted(keys)}")
        return _to_tensors({k: [x[k] for x in instances] for k in instances[0]}, specs)
    if any(named):
        raise ServingError("'instances' mixes objects naming inputs with bare values")
    if len(specs) != 1:
        raise ServingError(f"The signature has inputs {sorted(specs)}: each instance must be "
                           "an object mapping input names to values")
    return _to_tensors({next(iter(specs)): instances}, specs)


def inputs_to_tensors(inputs, specs):
    """Columnar format: a value (single-input signatures) or {input name: value}.

    >>> specs = {"x": tf.TensorSpec([None, 2], tf.float32)}
    >>> inputs_to_tensors({"x": [[1, 2], [3, 4]]}, specs)["x"].shape
    TensorShape([2, 2])
    """
    if _is_named(inputs):
        return _to_tensors(inputs, specs)
    if len(specs) != 1:
        raise ServingError(f"The signature has inputs {sorted(specs)}: 'inputs' must be an "
                           "object mapping input names to values")
    return _to_tensors({next(iter(specs)): inputs}, specs)


def _to_json(name, array):
    """A numpy value as JSON-ready Python: lists, numbers, text or {"b64": ...}."""
    value = np.asarray(array).tolist()
    as_b64 = name.endswith("_bytes")

    def convert(x):
        if isinstance(x, list):
            return [convert(v) for v in x]
        if isinstance(x, bytes):
            if not as_b64:
                try:
                    return x.decode("utf-8")
                except UnicodeDecodeError:
                    pass
            return {"b64": base64.b64encode(x).decode("ascii")}
        return x

    return convert(value)


def format_outputs(outputs):
    """Columnar response value: {name: list}, or the bare list when there is one output.

    >>> format_outputs({"ids": np.array([1, 2]), "raw_bytes": np.array([b"a", b"b"])})
    {'ids': [1, 2], 'raw_bytes': [{'b64': 'YQ=='}, {'b64': 'Yg=='}]}
    """
    values = {name: _to_json(name, array) for name, array in outputs.items()}
    return next(iter(values.values())) if len(values) == 1 else values


def format_predictions(outputs, batch_size=None):
    """Row response value: one prediction per instance, split along the first dimension.

    Each prediction is {output name: value}, or the bare value when there is one output.
    Every output must have `batch_size` rows (default: that of the first output).

    >>> format_predictions({"id": np.array([3, 4]), "p": np.array([[.5, .5], [1., 0.]])})
    [{'id': 3, 'p': [0.5, 0.5]}, {'id': 4, 'p': [1.0, 0.0]}]
    """
    rows = {}
    for name, array in outputs.items():
        array = np.asarray(array)
        if batch_size is None and array.ndim:
            batch_size = len(array)
        if not array.ndim or len(array) != batch_size:
            raise ServingError(f"Output '{name}' has shape {list(array.shape)}, which has no "
                               f"batch dimension of size {batch_size}: use the columnar "
                               "'inputs' format for this signature")
        rows[name] = _to_json(name, array)
    if len(rows) == 1:
        return next(iter(rows.values()))
    return [{name: values[i] for name, values in rows.items()} for i in range(batch_size)]
