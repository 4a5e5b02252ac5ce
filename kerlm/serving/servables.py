"""SavedModels in TF Serving's layout ``BASE/NAME/<integer version>/saved_model.pb``.

Every integer version directory present when a model is added is loaded at once (no lazy
loading, no reloading); other directories, such as the ``.tmp-*`` ones an atomic export
writes before renaming, are ignored. Requests without a version go to the highest one.

    registry = ModelRegistry()
    registry.add("sentiment", "saved_models/sentiment")      # loads versions 1, 2, ...
    registry.get("sentiment").predict("serving_default", "instances", ["great film"])
"""

import os

import tensorflow as tf
from absl import logging
from google.protobuf import json_format
from tensorflow.core.protobuf import saved_model_pb2

from kerlm.serving import codec
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


def _signature_defs(path):
    """The "serve" MetaGraph's SignatureDefs as JSON, exactly as TF Serving's metadata shows."""
    with open(os.path.join(path, "saved_model.pb"), "rb") as f:
        saved_model = saved_model_pb2.SavedModel.FromString(f.read())
    graph = next((g for g in saved_model.meta_graphs if "serve" in g.meta_info_def.tags),
                 saved_model.meta_graphs[0])
    return {key: json_format.MessageToDict(signature, preserving_proto_field_name=True,
                                           always_print_fields_with_no_presence=True)
            for key, signature in graph.signature_def.items()}


class ServedModel:
    """One loaded version of a model: its signatures, metadata and predict."""

    def __init__(self, name, version, path):
        self.name, self.version, self.path = name, version, path
        self._loaded = tf.saved_model.load(path)
        self.signatures = dict(self._loaded.signatures)
        self._signature_defs = _signature_defs(path)

    def input_specs(self, signature_name):
        """{input name: tf.TensorSpec} of a signature; 400 ServingError if it is unknown."""
        if signature_name not in self.signatures:
            raise ServingError(f'Serving signature name: "{signature_name}" not found in '
                               f"signature def; available: {sorted(self.signatures)}")
        return self.signatures[signature_name].structured_input_signature[1]

    def status(self):
        return {"version": str(self.version), "state": "AVAILABLE", "status": _OK}

    def metadata(self):
        """TF Serving's GetModelMetadata response."""
        return {"model_spec": {"name": self.name, "signature_name": "",
                               "version": str(self.version)},
                "metadata": {"signature_def": {"signature_def": self._signature_defs}}}

    def predict(self, signature_name, request_format, payload):
        """Runs a parsed predict request (see codec.parse_predict_request); returns JSON."""
        specs = self.input_specs(signature_name)
        if request_format == "instances":
            inputs = codec.instances_to_tensors(payload, specs)
        else:
            inputs = codec.inputs_to_tensors(payload, specs)
        try:
            outputs = self.signatures[signature_name](**inputs)
        except Exception as e:  # The model rejected the inputs: TF Serving's INVALID_ARGUMENT.
            logging.warning("%s/%d %s failed: %r", self.name, self.version, signature_name, e)
            raise ServingError(e.message if isinstance(e, tf.errors.OpError) else str(e)) from e
        outputs = {name: tensor.numpy() for name, tensor in outputs.items()}
        if request_format == "instances":
            return {"predictions": codec.format_predictions(outputs, len(payload))}
        return {"outputs": codec.format_outputs(outputs)}


class ModelRegistry:
    """Served models by name, each with all its versions loaded."""

    def __init__(self):
        self._models = {}

    def add(self, name, base_path):
        """Loads every integer version under `base_path`; returns the version numbers.

        Raises:
          ValueError: if `base_path` does not exist or holds no integer version directory.
        """
        if not os.path.isdir(base_path):
            raise ValueError(f"Could not find base path {base_path} for servable {name}")
        versions = find_versions(base_path)
        if not versions:
            raise ValueError(f"No versions of servable {name} found under base path "
                             f"{base_path} (expected integer subdirectories such as "
                             f"{os.path.join(base_path, '1', 'saved_model.pb')})")
        self._models[name] = {v: ServedModel(name, v, os.path.join(base_path, str(v)))
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
