"""Serve exported SavedModels over TF Serving's REST API (see `apps/serve.py`)."""

from kerlm.serving.codec import ServingError
from kerlm.serving.model_config import parse_model_config
from kerlm.serving.rest_server import make_app, serve
from kerlm.serving.servables import ModelRegistry, ServedModel

__all__ = ["ModelRegistry", "ServedModel", "ServingError", "make_app", "parse_model_config",
           "serve"]
