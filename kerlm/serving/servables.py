"""SavedModels in TF Serving's layout ``BASE/NAME/<integer version>/saved_model.pb``.

Every integer version directory present when a model is added is loaded at once (no lazy
loading, no reloading) and warmed up with its ``assets.extra/tf_serving_warmup_requests``
(see `warmup`); other directories, such as the ``.tmp-*`` ones an atomic export writes
before renaming, are ignored. Requests without a version go to the highest one. With a
`batching.BatchScheduler`, every signature call goes through it.

    registry = ModelRegistry()
    registry.add("sentiment", "saved_models/sentiment")      # loads versions 1, 2, ...
    registry.get("sentiment").predict("serving_default", "instances", ["great film"])
"""

import os

import tensorflow as tf
from absl import logging
from google.protobuf import json_format

from kerlm.serving import codec, protos, warmup
from kerlm.serving.codec import ServingError

try:  # SavedModels exported with tokenizers use tensorflow-text ops.
    import tensorflow_text  # noqa: F401
except ImportError:
    pass

_OK = {"error_code": "OK", "error_message": ""}


def _not_found(name, version=None):
    request = f"Latest({name})" if version is None else f"Specific({name}, {version})"
    return ServingError(f"Servable not found for request: {request}", status=404)


def find_versions(base_path):
    """Sorted integer version numbers of the subdirectories of an existing `base_path`."""
    return sorted(int(d) for d in os.listdir(base_path)
                  if d.isdecimal() and os.path.isdir(os.path.join(base_path, d)))


class ServedModel:
    """One loaded version of a model: its signatures, metadata and predict.

    Args:
      batcher: an optional batching.BatchScheduler that signature calls go through.
      warm_up: whether to replay the version's warm-up requests once loaded; the number
        replayed is `warmup_requests`.
    """

    def __init__(self, name, version, path, batcher=None, warm_up=True):
        self.name, self.version, self.path = name, version, path
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

    def run(self, signature_name, inputs):
        """Calls a signature on {input name: tensor or array} that fit `input_specs`.

        Goes through the batcher, if any. Returns {output name: np.ndarray}; raises a 400
        ServingError (INVALID_ARGUMENT) if the model rejects the inputs.
        """
        if self._batcher is None:
            return self._call(signature_name, inputs)
        return self._batcher.run((self.name, self.version, signature_name),
                                 lambda batch: self._call(signature_name, batch), inputs)

    def _call(self, signature_name, inputs):
        try:
            outputs = self.signatures[signature_name](**inputs)
        except Exception as e:  # The model rejected the inputs: TF Serving's INVALID_ARGUMENT.
            logging.warning("%s/%d %s failed: %r", self.name, self.version, signature_name, e)
            raise ServingError(e.message if isinstance(e, tf.errors.OpError) else str(e)) from e
        return {name: tensor.numpy() for name, tensor in outputs.items()}

    def predict(self, signature_name, request_format, payload):
        """Runs a parsed predict request (see codec.parse_predict_request); returns JSON."""
        specs = self.input_specs(signature_name)
        if request_format == "instances":
            inputs = codec.instances_to_tensors(payload, specs)
        else:
            inputs = codec.inputs_to_tensors(payload, specs)
        outputs = self.run(signature_name, inputs)
        if request_format == "instances":
            return {"predictions": codec.format_predictions(outputs, len(payload))}
        return {"outputs": codec.format_outputs(outputs)}


class ModelRegistry:
    """Served models by name, each with all its versions loaded (and warmed up).

    Args:
      batcher: an optional batching.BatchScheduler shared by every model.
      warm_up: whether to replay each version's warm-up requests when it is loaded.
    """

    def __init__(self, batcher=None, warm_up=True):
        self._models = {}
        self._batcher, self._warm_up = batcher, warm_up

    def add(self, name, base_path):
        """Loads every integer version under `base_path`; returns the version numbers.

        Raises:
          ValueError: if `base_path` does not exist or holds no integer version directory,
            or a warm-up request fails.
        """
        if not os.path.isdir(base_path):
            raise ValueError(f"Could not find base path {base_path} for servable {name}")
        versions = find_versions(base_path)
        if not versions:
            raise ValueError(f"No versions of servable {name} found under base path "
                             f"{base_path} (expected integer subdirectories such as "
                             f"{os.path.join(base_path, '1', 'saved_model.pb')})")
        self._models[name] = {
            v: ServedModel(name, v, os.path.join(base_path, str(v)), self._batcher,
                           self._warm_up)
            for v in versions}
        logging.info("Loaded %s versions %s from %s", name, versions, base_path)
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
