"""Serves exported SavedModels over TF Serving's REST API, with TF Serving's flags.

    python apps/serve.py --model_name=sentiment --model_base_path=saved_models/sentiment
    curl -d '{"instances": ["a great film"]}' \\
        http://127.0.0.1:8501/v1/models/sentiment:predict

Several models: `--model_config_file` with TF Serving's text-format config,
``model_config_list { config { name: 'sentiment' base_path: '/x/sentiment' } }``.
"""

import sys

from absl import app, flags

from kerlm.apps import flags as kerlm_flags
from kerlm.serving import ModelRegistry, parse_model_config, serve

flags.DEFINE_integer("rest_api_port", 8501, "Port of the REST API.")
flags.DEFINE_string("host", "127.0.0.1", "Address to listen on (0.0.0.0: all interfaces).")
flags.DEFINE_string("model_name", None, "Name of the model in URLs (with --model_base_path).")
flags.DEFINE_string("model_base_path", None,
                    "Directory holding the model's integer version subdirectories.")
flags.DEFINE_string("model_config_file", None,
                    "TF Serving model config (text protobuf) listing several models; "
                    "replaces --model_name/--model_base_path.")
flags.DEFINE_integer("max_body_bytes", 16 << 20, "Largest request body accepted (413 above).")
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


def main(_):
    registry = ModelRegistry()
    for name, base_path in _models().items():
        try:
            registry.add(name, base_path)
        except ValueError as e:
            sys.exit(f"serve: {e}")
    serve(registry, FLAGS.host, FLAGS.rest_api_port, FLAGS.max_body_bytes)


def run():
    kerlm_flags.run(main)
