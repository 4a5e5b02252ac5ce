"""Flags and the entry point every app shares: `--model_dir`, one-line errors."""

import sys

from absl import app, flags

FLAGS = flags.FLAGS
EXIT_RETRY = 75  # sysexits.h EX_TEMPFAIL: a temporary failure, the same command may be retried


def define_model_dir(required=True):
    flags.DEFINE_string("model_dir", None, "Directory of the run: config, checkpoints, logs.")
    if required:
        flags.mark_flag_as_required("model_dir")


def run(main):
    """`absl.app.run(main)`, printing users' mistakes as one line instead of a traceback.

    Bad data (`DataError`, which names file and line), unusable configs (`ConfigError`) and
    checkpoints that cannot be written (`CheckpointError`, e.g. a full disk) end the program
    with exit status 2 and an `error: ...` line; a lost task of a cluster (`ClusterError`)
    with `EXIT_RETRY`: restarting the job resumes it.
    """
    from kerlm.checkpointing import CheckpointError
    from kerlm.config import ConfigError
    from kerlm.data.readers import DataError
    from kerlm.distribute import ClusterError

    # `--help` lists the main module's key flags: make the app's flags (defined in
    # kerlm/apps/NAME.py, here and, for train, config_flags: the shared config) key flags
    # of the script that was run; --helpfull adds each task's options under its task.
    for module in (main.__module__, __name__, f"{__package__}.config_flags"):
        for flag in FLAGS.get_flags_for_module(module):
            FLAGS.register_key_flag_for_module(sys.argv[0], flag)

    def guarded(argv):
        if len(argv) > 1:
            raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
        try:
            main(argv)
        except (DataError, ConfigError, CheckpointError) as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
        except ClusterError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(EXIT_RETRY)

    app.run(guarded)
