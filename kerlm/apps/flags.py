"""absl flags generated from the config dataclasses, so the two never drift apart."""

import sys

from absl import app, flags

from kerlm import config as config_lib

FLAGS = flags.FLAGS


def _flag_name(path, field):
    return field.metadata.get("flag") or path.rpartition(".")[2]


def define_config_flags(flag_values=FLAGS):
    """Define one flag per config field (`--model` for `model.preset`, else the field name)."""
    kwargs = dict(flag_values=flag_values)
    for path, field in config_lib.leaf_fields():
        name, default = _flag_name(path, field), field.default
        help_text = field.metadata["help"]
        if field.metadata.get("choices"):
            flags.DEFINE_enum(name, default, field.metadata["choices"], help_text, **kwargs)
        elif isinstance(default, bool):
            flags.DEFINE_bool(name, default, help_text, **kwargs)
        elif isinstance(default, int):
            flags.DEFINE_integer(name, default, help_text, **kwargs)
        elif isinstance(default, float):
            flags.DEFINE_float(name, default, help_text, **kwargs)
        else:
            flags.DEFINE_string(name, default, help_text, **kwargs)


def config_from_flags(flag_values=FLAGS):
    """`(Config, explicit)`: the config the flags describe, and the fields set explicitly."""
    values, explicit = {}, set()
    for path, field in config_lib.leaf_fields():
        name = _flag_name(path, field)
        values[path] = flag_values[name].value
        if flag_values[name].present:
            explicit.add(path)
    return config_lib.apply_overrides(config_lib.Config(), values), explicit


def define_model_dir(required=True):
    flags.DEFINE_string("model_dir", None, "Directory of the run: config, checkpoints, logs.")
    if required:
        flags.mark_flag_as_required("model_dir")


def run(main):
    """`absl.app.run(main)`, printing users' mistakes as one line instead of a traceback.

    Bad data (`DataError`, which names file and line) and unusable configs (`ConfigError`)
    end the program with exit status 2 and an `error: ...` line on stderr.
    """
    from kerlm.config import ConfigError
    from kerlm.data.readers import DataError

    # `--help` lists the main module's key flags: make the app's flags (defined in
    # kerlm/apps/NAME.py and here) key flags of the script that was run.
    for module in (main.__module__, __name__):
        for flag in FLAGS.get_flags_for_module(module):
            FLAGS.register_key_flag_for_module(sys.argv[0], flag)

    def guarded(argv):
        if len(argv) > 1:
            raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
        try:
            main(argv)
        except (DataError, ConfigError) as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)

    app.run(guarded)
