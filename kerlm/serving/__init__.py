"""Serve exported SavedModels over TF Serving's REST and gRPC APIs (see `apps/serve.py`)."""

from kerlm.serving.batching import BatchScheduler, parse_batching_parameters
from kerlm.serving.codec import ServingError
from kerlm.serving.grpc_server import make_server
from kerlm.serving.model_config import (ModelConfig, VersionPolicy, parse_model_config,
                                        parse_model_server_config)
from kerlm.serving.rest_server import make_app, serve
from kerlm.serving.servables import ModelRegistry, ServedModel

__all__ = ["BatchScheduler", "ModelConfig", "ModelRegistry", "ServedModel", "ServingError",
           "VersionPolicy", "make_app", "make_server", "parse_batching_parameters",
           "parse_model_config", "parse_model_server_config", "serve"]
