"""Serves exported SavedModels over TF Serving's gRPC and REST APIs, with TF Serving's flags.

    python apps/serve.py --model_name=sentiment --model_base_path=saved_models/sentiment
    curl -d '{"instances": ["a great film"]}' \\
        http://127.0.0.1:8501/v1/models/sentiment:predict

gRPC (PredictionService, ModelService) listens on --port (8500), REST on --rest_api_port
(8501); 0 turns either off. Several models: `--model_config_file` with TF Serving's
text-format config, ``model_config_list { config { name: 'sentiment' base_path: '/x' } }``.
`--enable_batching` merges concurrent requests (`--batching_parameters_file` tunes it);
each version replays its `assets.extra/tf_serving_warmup_requests` before it is served.
"""

import sys

from absl import app, flags

from kerlm.apps import flags as kerlm_flags
from kerlm.serving import (BatchScheduler, ModelRegistry, grpc_server, parse_batching_parameters,
                           parse_model_config, serve)

flags.DEFINE_integer("port", 8500, "Port of the gRPC API (0: no gRPC).")
flags.DEFINE_integer("rest_api_port", 8501, "Port of the REST API (0: no REST).")
flags.DEFINE_string("host", "127.0.0.1", "Address to listen on (0.0.0.0: all interfaces).")
flags.DEFINE_string("model_name", None, "Name of the model in URLs (with --model_base_path).")
flags.DEFINE_string("model_base_path", None,
                    "Directory holding the model's integer version subdirectories.")
flags.DEFINE_string("model_config_file", None,
                    "TF Serving model config (text protobuf) listing several models; "
                    "replaces --model_name/--model_base_path.")
flags.DEFINE_integer("max_body_bytes", 16 << 20, "Largest request body accepted (413 above).")
flags.DEFINE_integer("grpc_max_threads", grpc_server.DEFAULT_MAX_THREADS,
                     "Most gRPC requests handled at once.")
flags.DEFINE_bool("enable_batching", False,
                  "Merge concurrent requests to the same signature into one call.")
flags.DEFINE_string("batching_parameters_file", None,
                    "TF Serving BatchingParameters (text protobuf), e.g. "
                    "'max_batch_size { value: 32 } batch_timeout_micros { value: 1000 }'; "
                    "needs --enable_batching.")
flags.DEFINE_bool("enable_model_warmup", True,
                  "Replay each version's assets.extra/tf_serving_warmup_requests on load.")
FLAGS = flags.FLAGS


def _models():
    """{name: base path} from the flags; raises app.UsageError if they are inconsistent."""
    single = FLAGS.model_name is not None or FLAGS.model_base_path is not None
    if FLAGS.model_config_file:
        if single:
            raise app.UsageError("--model_config_file replaces --model_name and "
                                 "--model_base_path: give one or the other")
        try:
            with open(FLAGS.model_config_file) as f:
                return parse_model_config(f.read())
        except (OSError, ValueError) as e:
            raise app.UsageError(f"--model_config_file {FLAGS.model_config_file}: {e}") from e
    if not (FLAGS.model_name and FLAGS.model_base_path):
        raise app.UsageError("Give --model_name and --model_base_path, or --model_config_file")
    return {FLAGS.model_name: FLAGS.model_base_path}


def _batching_options():
    """BatchScheduler arguments, or None without --enable_batching."""
    path = FLAGS.batching_parameters_file
    if not FLAGS.enable_batching:
        if path:
            raise app.UsageError("--batching_parameters_file needs --enable_batching")
        return None
    if not path:
        return {}
    try:
        with open(path) as f:
            return parse_batching_parameters(f.read())
    except (OSError, ValueError) as e:
        raise app.UsageError(f"--batching_parameters_file {path}: {e}") from e


def main(_):
    if not (FLAGS.port or FLAGS.rest_api_port):
        raise app.UsageError("--port and --rest_api_port are both 0: nothing to serve")
    models, batching = _models(), _batching_options()
    registry = ModelRegistry(None if batching is None else BatchScheduler(**batching),
                             warm_up=FLAGS.enable_model_warmup)
    for name, base_path in models.items():
        try:
            registry.add(name, base_path)
        except ValueError as e:
            sys.exit(f"serve: {e}")
    grpc = None
    if FLAGS.port:
        try:
            grpc = grpc_server.make_server(registry, FLAGS.host, FLAGS.port,
                                           FLAGS.grpc_max_threads)
        except OSError as e:
            sys.exit(f"serve: {e}")
        grpc.start()
        for name in registry.names():
            print(f"Serving {name} versions {sorted(registry.versions(name))} over gRPC at "
                  f"{FLAGS.host}:{FLAGS.port}", flush=True)
    try:
        if FLAGS.rest_api_port:
            serve(registry, FLAGS.host, FLAGS.rest_api_port, FLAGS.max_body_bytes)
        else:
            grpc.wait_for_termination()
    finally:
        if grpc is not None:
            grpc.stop(grace=1)


def run():
    kerlm_flags.run(main)
