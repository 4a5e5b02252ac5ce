"""Serves exported SavedModels over TF Serving's gRPC and REST APIs, with TF Serving's flags.

    python apps/serve.py --model_name=sentiment --model_base_path=saved_models/sentiment
    curl -d '{"instances": ["a great film"]}' \\
        http://127.0.0.1:8501/v1/models/sentiment:predict

gRPC (PredictionService, ModelService) listens on --port (8500), REST on --rest_api_port
(8501); 0 turns either off. As in TF Serving, the highest version under the base path is
served. Several models: `--model_config_file` with TF Serving's text-format config,
``model_config_list { config { name: 'sentiment' base_path: '/x' } }``, where each config
may choose its versions with `model_version_policy` (``all {}``, ``latest { num_versions:
2 }``, ``specific { versions: 1 versions: 3 }``). `--enable_batching` merges concurrent
requests (`--batching_parameters_file` tunes it); each version replays its
`assets.extra/tf_serving_warmup_requests` before it is served.

Every request is bounded: at most `--max_request_batch_size` rows (INVALID_ARGUMENT, HTTP
400 above), run `--max_execution_batch_size` rows at a time so memory does not grow with
the batch, and, over REST, `--rest_api_timeout_in_ms` to send its body (408) and be answered
(504).
"""

import sys

from absl import app, flags

from kerlm.apps import flags as kerlm_flags
from kerlm.serving import (BatchScheduler, ModelRegistry, grpc_server, parse_batching_parameters,
                           parse_model_server_config, rest_server, serve, servables)
from kerlm.serving.model_config import LATEST, ModelConfig

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
flags.DEFINE_integer("max_request_batch_size", servables.DEFAULT_MAX_BATCH_SIZE,
                     "Most rows (instances, or the first dimension of the inputs) one predict "
                     "request may carry, over REST and gRPC; larger ones are refused with "
                     "INVALID_ARGUMENT (HTTP 400), as TF Serving's batching refuses a task "
                     "over its max_batch_size.", lower_bound=1)
flags.DEFINE_integer("max_execution_batch_size", servables.DEFAULT_EXECUTION_BATCH_SIZE,
                     "Most rows one signature call gets: larger requests run in calls of this "
                     "many rows and their outputs are concatenated, so a request's memory "
                     "does not grow with its batch (TF Serving's batching parameter of this "
                     "name does the same with enable_large_batch_splitting).", lower_bound=1)
flags.DEFINE_integer("rest_api_timeout_in_ms", rest_server.DEFAULT_TIMEOUT_MS,
                     "Timeout for HTTP/REST API calls: the time a predict may take to send "
                     "its body (408 and the connection closed after) and to be answered "
                     "(504 after); also how long an idle or half-sent connection stays open. "
                     "0: no timeout.")
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
    """{name: ModelConfig} from the flags; raises app.UsageError if they are inconsistent.

    The single-model flags serve the latest version, TF Serving's default policy.
    """
    single = FLAGS.model_name is not None or FLAGS.model_base_path is not None
    if FLAGS.model_config_file:
        if single:
            raise app.UsageError("--model_config_file replaces --model_name and "
                                 "--model_base_path: give one or the other")
        try:
            with open(FLAGS.model_config_file) as f:
                return parse_model_server_config(f.read())
        except (OSError, ValueError) as e:
            raise app.UsageError(f"--model_config_file {FLAGS.model_config_file}: {e}") from e
    if not (FLAGS.model_name and FLAGS.model_base_path):
        raise app.UsageError("Give --model_name and --model_base_path, or --model_config_file")
    return {FLAGS.model_name: ModelConfig(FLAGS.model_base_path, LATEST)}


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
                             warm_up=FLAGS.enable_model_warmup,
                             max_batch_size=FLAGS.max_request_batch_size,
                             execution_batch_size=FLAGS.max_execution_batch_size)
    for name, config in models.items():
        try:
            registry.add(name, config.base_path, config.version_policy)
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
            serve(registry, FLAGS.host, FLAGS.rest_api_port, FLAGS.max_body_bytes,
                  FLAGS.rest_api_timeout_in_ms)
        else:
            grpc.wait_for_termination()
    finally:
        if grpc is not None:
            grpc.stop(grace=1)


def run():
    kerlm_flags.run(main)
