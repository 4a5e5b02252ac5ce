"""Step-level training checkpoints that survive `kill -9`, preemption and bad files.

A checkpoint holds the model's variables (weights, and the dropout seed generators' states:
the RNG), the optimizer's (its moments and `iterations`, hence the learning-rate schedule's
position) and nothing else: the data position is the step itself, because the training
stream is deterministic for a seed and the trainer skips the batches already trained on
(`kerlm.training`). Saving is TensorFlow's (`tf.train.CheckpointManager`): the data and
index files are written to temporary names and renamed, and the `checkpoint` state file is
rewritten only after them, so a process killed while saving leaves the previous checkpoint
in place. The last `max_to_keep` are kept.

Example:
>>> import keras, tempfile
>>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
>>> model.compile("adam", "mse")
>>> model.optimizer.build(model.trainable_variables)
>>> checkpoints = StepCheckpoints(model, tempfile.mkdtemp(), max_to_keep=2)
>>> checkpoints.restore()   # nothing saved yet: start from step 0
0
>>> _ = checkpoints.save(7)
>>> checkpoints.restore(), checkpoints.latest_step()
(7, 7)
"""

import os
import re

import tensorflow as tf
from absl import logging

# The exit status of a run that saved a checkpoint because it was asked to stop (SIGTERM):
# schedulers and scripts can tell "preempted, restart me" from success (0) and errors.
# TensorFlow's PreemptionCheckpointHandler's off Google Cloud (143 on GCE).
EXIT_PREEMPTED = 42


class CheckpointError(RuntimeError):
    """A checkpoint could not be written (e.g. a full disk); the previous one is kept."""


def _variables(variables):
    # The backends' variables (tf.Variable, or a tf.distribute one) under stable names:
    # their order in the model, which a given model and optimizer always create the same.
    return [v.value if hasattr(v, "value") and isinstance(v.value, tf.Variable) else v
            for v in variables]


class StepCheckpoints:
    """`save(step)` and `restore()` of `model` and its optimizer in `directory`.

    `restore_dir`: where to look for checkpoints to resume from (default `directory`; a
    non-chief worker saves to its own temporary directory and restores from the chief's).
    """

    def __init__(self, model, directory, max_to_keep=3, restore_dir=None):
        self.checkpoint = tf.train.Checkpoint(
            model=_variables(model.variables), optimizer=_variables(model.optimizer.variables))
        self.directory, self.max_to_keep = directory, max_to_keep
        self.restore_dir = restore_dir or directory
        self._open()

    def _open(self):
        """The managers of the save and restore directories (re-read after `restore` set
        a corrupt checkpoint aside): one per directory, so `max_to_keep` sees every save."""
        self.manager = tf.train.CheckpointManager(self.checkpoint, self.directory,
                                                  max_to_keep=self.max_to_keep,
                                                  checkpoint_name="step")
        self.read_manager = self.manager if self.restore_dir == self.directory else \
            tf.train.CheckpointManager(self.checkpoint, self.restore_dir,
                                       max_to_keep=self.max_to_keep, checkpoint_name="step")

    def latest_step(self):
        """The step of the newest checkpoint in `restore_dir`, or 0."""
        paths = _checkpoints(self.restore_dir)
        return _step(paths[-1]) if paths else 0

    def restore(self, chief=True):
        """Restore the newest readable checkpoint and return its step (0: none). One that
        cannot be read (truncated, corrupt) is skipped with a warning for the one before;
        the `chief` renames it `corrupt-step-K.*` and drops it from the `checkpoint` file."""
        paths = _checkpoints(self.restore_dir)
        for i in range(len(paths) - 1, -1, -1):
            path = paths[i]
            try:
                self.checkpoint.read(path).assert_existing_objects_matched()
                if i < len(paths) - 1:
                    self._open()
                return _step(path)
            except Exception as e:  # noqa: BLE001 (TF's reader raises IndexError, OpError, ...)
                logging.warning("Checkpoint %s is unreadable (%s): falling back to the one "
                                "before it", path, error_line(e))
                if chief:
                    _set_aside(path, paths[:i])
        if paths:
            logging.warning("No readable checkpoint in %s: training from step 0",
                            self.restore_dir)
            self._open()
        return 0

    def save(self, step):
        """Write the checkpoint of `step`; a failed write (full disk, lost permissions) is a
        `CheckpointError` and leaves the previous checkpoints as they were."""
        try:
            return self.manager.save(checkpoint_number=step)
        except (tf.errors.OpError, OSError) as e:
            # the partial files TensorFlow leaves in step-N_temp/ would hold on to the space
            for partial in tf.io.gfile.glob(os.path.join(self.directory, f"step-{step}_temp")):
                tf.io.gfile.rmtree(partial)
            previous = _checkpoints(self.directory)
            kept = (f"the previous checkpoint, step {_step(previous[-1])}, is kept: free "
                    "space and rerun to resume from it") if previous else "none was saved before"
            raise CheckpointError(f"could not write the checkpoint of step {step} to "
                                  f"{self.directory} ({error_line(e)}); {kept}") from e


def error_line(error, prefer=None):
    """The gist of a TensorFlow error for a one-line message: its first line (or the first
    containing `prefer`) without the op's decorations.

    >>> error_line(OSError("{{function_node SaveV2}} /d/x.data; No space left on device "
    ...                    "[Op:SaveV2]"))
    '/d/x.data; No space left on device'
    >>> error_line(RuntimeError("Graph execution error:" + chr(10) + "  Collective ops is "
    ...                         "aborted by: x"), prefer="aborted by")
    'Collective ops is aborted by: x'
    """
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    chosen = [line for line in lines if prefer and prefer in line] or lines
    text = chosen[0] if chosen else type(error).__name__
    text = re.sub(r"^\{\{[^}]*\}\}\s*|\s*\[Op:\w+\]$", "", text)
    return text[:300]


def _checkpoints(directory):
    """Paths of the checkpoints in `directory`, oldest first (from its `checkpoint` file)."""
    state = tf.train.get_checkpoint_state(directory) if tf.io.gfile.isdir(directory) else None
    if state is None:
        return []
    paths = list(state.all_model_checkpoint_paths) or [state.model_checkpoint_path]
    return [p if os.path.isabs(p) or "://" in p else os.path.join(directory, p)
            for p in paths]


def _set_aside(path, remaining):
    """Rename the files of checkpoint `path` to `corrupt-*` and make `remaining` (oldest
    first) the directory's checkpoints."""
    directory = os.path.dirname(path)
    for name in tf.io.gfile.glob(path + ".*"):
        tf.io.gfile.rename(name, os.path.join(directory, "corrupt-" + os.path.basename(name)),
                           overwrite=True)
    write_state(directory, remaining)


def write_state(directory, paths):
    """Make `paths` (oldest first) the checkpoints of `directory`: its `checkpoint` file
    (the text proto `tf.train.CheckpointManager` reads), replaced atomically."""
    state = os.path.join(directory, "checkpoint")
    if not paths:
        tf.io.gfile.remove(state)
        return
    names = [os.path.basename(p) for p in paths]
    lines = [f'model_checkpoint_path: "{names[-1]}"'] + \
        [f'all_model_checkpoint_paths: "{name}"' for name in names]
    with tf.io.gfile.GFile(state + ".tmp", "w") as f:
        f.write("\n".join(lines) + "\n")
    tf.io.gfile.rename(state + ".tmp", state, overwrite=True)


def _step(path):
    return int(path.rpartition("-")[2])


def has_checkpoint(directory):
    return bool(_checkpoints(directory))


def preemption_handler(strategy, checkpoints):
    """TensorFlow's `PreemptionCheckpointHandler` over `checkpoints`: on SIGTERM (what
    schedulers send before evicting) the trainer's `handler.save_checkpoint_if_preempted(
    checkpoint_number=step)` after each step saves one at a step all workers agree on and
    exits with status `EXIT_PREEMPTED` (143 on GCE, TensorFlow's choice there). It restores
    the newest checkpoint itself, which `StepCheckpoints.restore` has made the one it
    restored. None under `parameter_server`, which it does not support."""
    if isinstance(strategy, tf.distribute.ParameterServerStrategy):
        return None
    resolver = getattr(strategy, "cluster_resolver", None)
    return tf.distribute.experimental.PreemptionCheckpointHandler(resolver,
                                                                  checkpoints.read_manager)
