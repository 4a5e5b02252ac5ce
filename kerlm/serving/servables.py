"""SavedModels in TF Serving's layout ``BASE/NAME/<integer version>/saved_model.pb``.

The integer version directories present when a model is added that its version policy
selects (TF Serving's default: the highest only; see `model_config.VersionPolicy`) are
loaded at once (no lazy loading, no reloading) and warmed up with their
``assets.extra/tf_serving_warmup_requests`` (see `warmup`); other directories, such as the
``.tmp-*`` ones an atomic export writes before renaming, are ignored. Requests without a
version go to the highest one loaded.

Requests are bounded: one carrying more than `max_batch_size` rows is refused with TF
Serving's INVALID_ARGUMENT, and an accepted one runs in calls of at most
`execution_batch_size` rows whose outputs are concatenated, so the memory a request takes
does not grow with its batch (TF Serving's `enable_large_batch_splitting` with
`max_execution_batch_size`). With a `batching.BatchScheduler`, every call goes through it.

    registry = ModelRegistry()
    registry.add("sentiment", "saved_models/sentiment")      # loads the highest version
    registry.get("sentiment").predict("serving_default", "instances", ["great film"])
"""

import os
import time

import numpy as np
import tensorflow as tf
from absl import logging
from google.protobuf import json_format

from kerlm.serving import codec, protos, warmup
from kerlm.serving.codec import ServingError
from kerlm.serving.model_config import LATEST

try:  # SavedModels exported with tokenizers use tensorflow-text ops.
    import tensorflow_text  # noqa: F401
except ImportError:
    pass

_OK = {"error_code": "OK", "error_message": ""}
DEFAULT_MAX_BATCH_SIZE = 10_000
DEFAULT_EXECUTION_BATCH_SIZE = 64


def _not_found(name, version=None):
    request = f"Latest({name})" if version is None else f"Specific({name}, {version})"
    return ServingError(f"Servable not found for request: {request}", status=404)


def find_versions(base_path):
    """Sorted integer version numbers of the subdirectories of an existing `base_path`."""
    return sorted(int(d) for d in os.listdir(base_path)
                  if d.isdecimal() and os.path.isdir(os.path.join(base_path, d)))


def check_deadline(deadline):
    """Raises TF Serving's DEADLINE_EXCEEDED (HTTP 504) once time.monotonic() > `deadline`."""
    if deadline is not None and time.monotonic() > deadline:
        raise ServingError("Deadline exceeded: the request ran past its timeout", status=504)


def _rows(value):
    shape = getattr(value, "shape", None)
    if shape is None:
        shape = np.shape(value)
    return None if len(shape) == 0 else shape[0]


class ServedModel:
    """One loaded version of a model: its signatures, metadata and predict.

    Args:
      batcher: an optional batching.BatchScheduler that signature calls go through.
      warm_up: whether to replay the version's warm-up requests once loaded; the number
        replayed is `warmup_requests`.
      max_batch_size: the most rows one request may carry (`check_batch_size`).
      execution_batch_size: the most rows one signature call gets; larger requests run in
        several calls (see `run`).
    """

    def __init__(self, name, version, path, batcher=None, warm_up=True,
                 max_batch_size=DEFAULT_MAX_BATCH_SIZE,
                 execution_batch_size=DEFAULT_EXECUTION_BATCH_SIZE):
        if max_batch_size < 1 or execution_batch_size < 1:
            raise ValueError("max_batch_size and execution_batch_size must be >= 1, got "
                             f"{max_batch_size} and {execution_batch_size}")
        self.name, self.version, self.path = name, version, path
        self.max_batch_size, self.execution_batch_size = max_batch_size, execution_batch_size
        self._loaded = tf.saved_model.load(path)
        self.signatures = dict(self._loaded.signatures)
        self.signature_defs = protos.read_signature_defs(path)
        self._batcher = batcher
        self.warmup_requests = warmup.replay(self) if warm_up else 0

    def input_specs(self, signature_name):
        """{input name: tf.TensorSpec} of a signature; 400 ServingError if it is unknown."""
        if signature_name not in self.signatures:
            raise ServingError(f'Serving signature name: "{signature_name}" not found in '
                               f"signature def; available: {sorted(self.signatures)}")
        return self.signatures[signature_name].structured_input_signature[1]

    def status(self):
        return {"version": str(self.version), "state": "AVAILABLE", "status": _OK}

    def metadata(self):
        """TF Serving's GetModelMetadata response as REST JSON."""
        signature_defs = {
            key: json_format.MessageToDict(signature, preserving_proto_field_name=True,
                                           always_print_fields_with_no_presence=True)
            for key, signature in self.signature_defs.items()}
        return {"model_spec": {"name": self.name, "signature_name": "",
                               "version": str(self.version)},
                "metadata": {"signature_def": {"signature_def": signature_defs}}}

    def check_batch_size(self, rows):
        """Raises INVALID_ARGUMENT (HTTP 400) if a request of `rows` rows is too large.

        TF Serving's batch scheduler answers a request over its `max_batch_size` with
        INVALID_ARGUMENT and this message; not RESOURCE_EXHAUSTED (HTTP 429): the request
        itself is too large for this server, resending it cannot succeed (and 413 is about
        the body's bytes, which may be few: 40,000 one-word instances are 200 KB).
        """
        if rows is not None and rows > self.max_batch_size:
            raise ServingError(f"Task size {rows} is larger than maximum input batch size "
                               f"{self.max_batch_size} (--max_request_batch_size): split the "
                               "request")

    def run(self, signature_name, inputs, deadline=None):
        """Calls a signature on {input name: tensor or array} that fit `input_specs`.

        A request of more than `execution_batch_size` rows (the longest first dimension of
        its inputs) runs in calls of that many rows: the inputs whose first dimension is
        the batch (unknown in the signature, of that length) are split, the others given to
        every call, and the outputs concatenated, so memory stays bounded. Calls go through
        the batcher, if any.

        Args:
          deadline: optional time.monotonic() after which no further call starts.
        Returns:
          {output name: np.ndarray}.
        Raises:
          ServingError: 400 (INVALID_ARGUMENT) if the request has too many rows or the model
            rejects the inputs, or if a split request meets an output without its batch
            dimension; 504 (DEADLINE_EXCEEDED) past `deadline`.
        """
        rows = [r for r in map(_rows, inputs.values()) if r is not None]
        rows = max(rows) if rows else None
        self.check_batch_size(rows)
        check_deadline(deadline)
        step = self.execution_batch_size
        if self._batcher is not None:  # Calls no larger than a batch, so that they can merge.
            step = min(step, self._batcher.max_batch_size)
        if rows is None or rows <= step:
            return self._run_batch(signature_name, inputs)
        specs = self.input_specs(signature_name)
        split = {name for name, value in inputs.items()
                 if _rows(value) == rows and (specs[name].shape.rank is None or
                                              specs[name].shape[0] is None)}
        if not split:  # No input has a batch dimension to split along.
            return self._run_batch(signature_name, inputs)
        parts = []
        for start in range(0, rows, step):
            check_deadline(deadline)
            outputs = self._run_batch(signature_name, {
                name: value[start:start + step] if name in split else value
                for name, value in inputs.items()})
            expected = min(step, rows - start)
            for name, array in outputs.items():
                if np.ndim(array) == 0 or len(array) != expected:
                    raise ServingError(
                        f"Output '{name}' of signature '{signature_name}' has shape "
                        f"{list(np.shape(array))} for {expected} rows: it has no batch "
                        f"dimension, so a request of {rows} rows cannot run in calls of "
                        f"{step} (--max_execution_batch_size); send at most {step} rows")
            parts.append(outputs)
        return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}

    def _run_batch(self, signature_name, inputs):
        if self._batcher is None:
            return self._call(signature_name, inputs)
        return self._batcher.run((self.name, self.version, signature_name),
                                 lambda batch: self._call(signature_name, batch), inputs)

    def _call(self, signature_name, inputs):
        try:
            outputs = self.signatures[signature_name](**inputs)
        except tf.errors.OpError as e:  # The model rejected the inputs: INVALID_ARGUMENT.
            logging.warning("%s/%d %s failed: %r", self.name, self.version, signature_name, e)
            raise ServingError(e.message) from e
        return {name: tensor.numpy() for name, tensor in outputs.items()}

    def predict(self, signature_name, request_format, payload, deadline=None):
        """Runs a parsed predict request (see codec.parse_predict_request); returns JSON.

        The batch size is checked before the JSON values become tensors.
        """
        specs = self.input_specs(signature_name)
        self.check_batch_size(codec.request_batch_size(request_format, payload))
        if request_format == "instances":
            inputs = codec.instances_to_tensors(payload, specs)
        else:
            inputs = codec.inputs_to_tensors(payload, specs)
        outputs = self.run(signature_name, inputs, deadline)
        if request_format == "instances":
            return {"predictions": codec.format_predictions(outputs, len(payload))}
        return {"outputs": codec.format_outputs(outputs)}


class ModelRegistry:
    """Served models by name, each with the versions its policy selects loaded (and warmed up).

    Args:
      batcher: an optional batching.BatchScheduler shared by every model.
      warm_up: whether to replay each version's warm-up requests when it is loaded.
      max_batch_size, execution_batch_size: per-request limits of every ServedModel.
    """

    def __init__(self, batcher=None, warm_up=True, max_batch_size=DEFAULT_MAX_BATCH_SIZE,
                 execution_batch_size=DEFAULT_EXECUTION_BATCH_SIZE):
        self._models = {}
        self._batcher, self._warm_up = batcher, warm_up
        self._limits = {"max_batch_size": max_batch_size,
                        "execution_batch_size": execution_batch_size}

    def add(self, name, base_path, version_policy=LATEST):
        """Loads the versions under `base_path` that `version_policy` selects.

        `version_policy` is a model_config.VersionPolicy; by default TF Serving's, the
        highest version only. Versions a "specific" policy names but the disk lacks are
        logged, as TF Serving does, and skipped.

        Returns:
          The version numbers loaded, ascending.
        Raises:
          ValueError: if `base_path` does not exist or holds no integer version directory
            the policy selects, or a warm-up request fails.
        """
        if not os.path.isdir(base_path):
            raise ValueError(f"Could not find base path {base_path} for servable {name}")
        found = find_versions(base_path)
        for version in version_policy.missing(found):
            logging.warning("Version %d of servable %s, which was requested to be served as a "
                            "'specific' version in the servable's version policy, was not "
                            "found in the file system", version, name)
        versions = version_policy.select(found)
        if not versions:
            selected = "" if not found else f" among {found} for {version_policy}"
            raise ValueError(f"No versions of servable {name} found under base path "
                             f"{base_path}{selected} (expected integer subdirectories such as "
                             f"{os.path.join(base_path, '1', 'saved_model.pb')})")
        self._models[name] = {
            v: ServedModel(name, v, os.path.join(base_path, str(v)), self._batcher,
                           self._warm_up, **self._limits)
            for v in versions}
        logging.info("Loaded %s versions %s from %s (%s; versions on disk: %s)", name,
                     versions, base_path, version_policy, found)
        return versions

    def names(self):
        return list(self._models)

    def versions(self, name):
        """Loaded versions of `name`, highest first; 404 ServingError for an unknown model."""
        if name not in self._models:
            raise _not_found(name)
        return sorted(self._models[name], reverse=True)

    def get(self, name, version=None):
        """The requested version of a model, by default its highest."""
        if version is None:
            version = self.versions(name)[0]
        elif version not in self._models.get(name, {}):
            raise _not_found(name, version)
        return self._models[name][version]

    def status(self, name, version=None):
        """TF Serving's GetModelStatus response: one version, or all loaded ones."""
        versions = self.versions(name) if version is None else [version]
        return {"model_version_status": [self.get(name, v).status() for v in versions]}
