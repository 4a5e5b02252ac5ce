"""Training a task under a `tf.distribute` strategy, resumable, logged to TensorBoard."""

import hashlib
import json
import math
import os
import shutil
import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from kerlm import checkpointing, distribute, steps, tasks, tokenizers
from kerlm.config import CONFIG_FILE, ConfigError, apply_overrides, diff

CHECKPOINT_DIR = "checkpoints"
MODEL_FILE = "model.keras"
BACKBONE_DIR = "backbone"  # the trained backbone alone, for fine-tuning other heads on it
LOG_DIR = "logs"
PROGRESS = "progress"  # progress.json: optimizer steps done and fit time of the last run


def configure_devices(num_cpu_devices=0):
    """Split the CPU into `num_cpu_devices` logical devices (to run `mirrored` without GPUs).

    Must run before TensorFlow initializes its devices.
    """
    if num_cpu_devices > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * num_cpu_devices)


# CPU features that run bfloat16 matmuls natively (/proc/cpuinfo flags); without one,
# TensorFlow emulates bfloat16 on the CPU and mixed_bfloat16 is slower than float32
# (measured here: 13.7 against 8.2 s a step on an AVX2-only EPYC).
BFLOAT16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def set_precision(policy, cpu_flags_file="/proc/cpuinfo"):
    """Set Keras' global dtype policy; warn when `mixed_bfloat16` will run emulated (no GPU
    or TPU, and a Linux CPU without native bfloat16). Returns the warning or None."""
    keras.mixed_precision.set_global_policy(policy)
    if policy != "mixed_bfloat16" or tf.config.list_physical_devices("GPU") or \
            tf.config.list_physical_devices("TPU") or not os.path.isfile(cpu_flags_file):
        return None
    with open(cpu_flags_file, encoding="utf-8", errors="replace") as f:
        flags = f.read().split()
    if any(flag in flags for flag in BFLOAT16_CPU_FLAGS):
        return None
    message = ("--mixed_precision=mixed_bfloat16 on a CPU without native bfloat16 "
               f"({' / '.join(BFLOAT16_CPU_FLAGS)}): TensorFlow emulates it, slower than "
               "--mixed_precision=float32")
    logging.warning(message)
    return message


def resolve_config(model_dir, config, explicit):
    """The config to train with: the one saved in `model_dir` if there is one.

    `explicit` holds the `"section.field"` names the user set on the command line; they
    override the saved config only where the field is resumable (e.g. more epochs,
    decoding options). Returns `(config, resuming)`.
    """
    if not os.path.exists(os.path.join(model_dir, CONFIG_FILE)):
        return config, False
    saved = tasks.load_config(model_dir)
    if saved.task != config.task and "task" in explicit:
        raise ConfigError(f"{model_dir} holds a --task={saved.task} run; use a new "
                          f"--model_dir to train --task={config.task}")
    if saved.task != config.task:  # --task left at its default: the saved run's task
        return saved, True
    changed = {k: v for k, v in diff(saved, config).items() if k in explicit}
    bad = {k: v for k, v in changed.items() if not saved.resumable(k)}
    if bad:
        details = ", ".join(f"{k}: saved {a!r}, given {b!r}" for k, (a, b) in sorted(bad.items()))
        raise ConfigError(f"{model_dir} holds a run with a different config ({details}); "
                         "use a new --model_dir to train a different model")
    return apply_overrides(saved, {k: b for k, (a, b) in changed.items()}), True


def make_optimizer(train_config, total_steps):
    """AdamW with linear warm-up then cosine decay; no decay on biases and norms."""
    warmup = int(total_steps * train_config.warmup_ratio)
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup else train_config.learning_rate,
        decay_steps=max(total_steps - warmup, 1), alpha=0.0,
        warmup_target=train_config.learning_rate if warmup else None, warmup_steps=warmup)
    optimizer = keras.optimizers.AdamW(learning_rate=schedule,
                                       weight_decay=train_config.weight_decay)
    optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta", "embeddings_norm"])
    return optimizer


class ProgressLogger:
    """Every N steps a log line (loss, learning rate, tokens/s, ETA) and TensorBoard
    scalars under `log_dir/train`; at each epoch end the epoch's training and dev metrics
    (`epoch_<metric>` under `train/` and `validation/`, as Keras' TensorBoard names them).

    The loss is the running mean over the epoch so far; tokens/s counts real (non-pad)
    tokens of all workers (`update(step, tokens)` adds a step's tokens).
    """

    def __init__(self, log_dir, every_steps, total_steps):
        self.writers = {name: tf.summary.create_file_writer(os.path.join(log_dir, name))
                        for name in ("train", "validation")}
        self.every_steps, self.total_steps = every_steps, total_steps
        self._tokens = 0.0
        self._last = None  # (step, time, tokens) of the last line; rates start after a step

    def due(self, step):
        return step % self.every_steps == 0 or step == self.total_steps

    def update(self, step, tokens, results, learning_rate):
        """Count a step's tokens; at a logging step, log. `results()` (the running metrics:
        a collective under several workers) and `learning_rate()` (a host read of the
        schedule) are called only then."""
        self._tokens += tokens
        now = time.perf_counter()
        if self._last is None:  # the first step traces and compiles: not in the rates
            self._last = (step, now, self._tokens)
            return
        if not self.due(step):
            return
        seconds = max(now - self._last[1], 1e-9)
        tokens_per_sec = (self._tokens - self._last[2]) / seconds
        eta = (self.total_steps - step) * seconds / max(step - self._last[0], 1)
        self._last = (step, now, self._tokens)
        loss, rate = results().get("loss", float("nan")), learning_rate()
        logging.info("step %d/%d  loss %.4f  lr %.2e  %.0f tokens/s  ETA %s", step,
                     self.total_steps, loss, rate, tokens_per_sec, _duration(eta))
        with self.writers["train"].as_default(step=step):
            tf.summary.scalar("tokens_per_sec", tokens_per_sec)
            tf.summary.scalar("learning_rate", rate)
            tf.summary.scalar("running_loss", loss)  # mean over the epoch so far
        self.writers["train"].flush()

    def epoch_end(self, epoch, epochs, step, train_logs, dev_logs):
        logging.info("Epoch %d/%d (step %d): %s  dev %s", epoch + 1, epochs, step,
                     _metrics_line(train_logs), _metrics_line(dev_logs))
        for name, logs in (("train", train_logs), ("validation", dev_logs)):
            with self.writers[name].as_default(step=step):
                for key, value in logs.items():
                    tf.summary.scalar(f"epoch_{key}", value)
            self.writers[name].flush()


def _metrics_line(logs):
    return "  ".join(f"{k} {v:.4f}" for k, v in logs.items())


def _duration(seconds):
    """`1h02m`, `3m05s` or `42s`.

    >>> _duration(3725), _duration(185), _duration(42.4)
    ('1h02m', '3m05s', '42s')
    """
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


def write_hparams(log_dir, config):
    """Record the run's hyper-parameters in TensorBoard's hparams plugin."""
    # Imported here: the plugin costs the apps that only load a model (predict) start-up.
    from tensorboard.plugins.hparams import api as hparams_api  # noqa: PLC0415
    with tf.summary.create_file_writer(os.path.join(log_dir, "hparams")).as_default():
        hparams_api.hparams({k: (v if isinstance(v, (bool, int, float, str)) else str(v))
                             for k, v in config.flat().items()})


def step_budget(task, train_ds):
    """`(epochs, steps_per_epoch, total_steps)` of a run: `--epochs` whole passes, or
    exactly `--train_steps` steps (epochs of one pass each, the last one cut short). A
    stream (a dataset of unknown or infinite size) needs `--train_steps`, in epochs of
    `--validation_interval` steps, each ending with a dev evaluation and a checkpoint."""
    config = task.config
    batches, steps = int(train_ds.cardinality()), config.train.train_steps
    if batches <= 0:
        if not steps:
            raise ConfigError(f"--task={config.task} streams its training data (its size "
                              "is unknown): give --train_steps")
        interval = min(config.train.validation_interval or steps, steps)
        return math.ceil(steps / interval), interval, steps
    if steps:
        return math.ceil(steps / min(batches, steps)), min(batches, steps), steps
    return config.train.epochs, batches, config.train.epochs * batches


def train(task, model_dir, strategy=None):
    """Train `task` (whose config is already resolved) into `model_dir`; return the model
    (None on a cluster's workers other than the chief).

    Resumes from the newest readable checkpoint in `model_dir/checkpoints` (logging
    `Resuming from step K`): weights, optimizer state, learning-rate schedule position,
    dropout RNG and data position, so a resumed run ends with the weights of an
    uninterrupted one. A checkpoint is written every `--checkpoint_every_steps` steps, at
    each epoch end and at the end; SIGTERM saves one at the next step and exits with
    `checkpointing.EXIT_PREEMPTED`. Writes `config.json`, the task's assets, `model.keras`,
    `backbone/` and TensorBoard logs under `logs/` (the chief only, in a cluster).
    """
    config = task.config
    keras.utils.set_random_seed(config.train.seed)
    tf.get_logger().setLevel("WARNING")  # not a line per all-reduce and checkpoint save
    strategy = strategy or distribute.get_strategy(config.train)
    if distribute.is_parameter_server(strategy):
        raise ConfigError("--strategy=parameter_server trains asynchronously: "
                          "kerlm.parameter_server.train, not kerlm.training.train")
    role = distribute.Role(strategy, model_dir)
    try:
        return _train(task, model_dir, strategy, role)
    finally:
        role.cleanup()


def prepare_run(task, model_dir, write_dir):
    """Check the run's flags, read the training data and learn the task's assets into
    `write_dir` (or restore them from `model_dir`, resuming); the chief (`write_dir ==
    model_dir`) saves the config. Returns `(train_records, train_ds, dev_ds)`."""
    config = task.config
    checkpoint_dir = os.path.join(model_dir, CHECKPOINT_DIR)
    resuming = checkpointing.has_checkpoint(checkpoint_dir)
    if not resuming and tf.io.gfile.isdir(checkpoint_dir) and tf.io.gfile.listdir(checkpoint_dir):
        logging.warning("%s holds no step checkpoint kerlm can resume from (an epoch-level "
                        "Keras backup of an older kerlm?): training from step 0",
                        checkpoint_dir)
    if config.train.freeze_backbone and not os.path.isdir(config.model.preset):
        raise ConfigError("--freeze_backbone keeps a trained backbone fixed: give "
                          "--model=a directory with its weights (e.g. "
                          f"MODEL_DIR/{BACKBONE_DIR} of an earlier run)")
    task.check_model_flag()
    train_records = task.read("train")
    if resuming:
        task.restore(model_dir)
    else:
        task.prepare(train_records, write_dir)
    if write_dir == model_dir:
        config.save(model_dir)
    return (train_records, task.dataset(train_records, training=True),
            task.dataset(task.read("dev"), training=False))


def build_model(task, strategy, train_ds, total_steps):
    """The task's model, compiled, with every variable (optimizer slots included) created
    in `strategy`'s scope."""
    with strategy.scope():
        model = task.new_model()
        if task.config.train.freeze_backbone:
            model.backbone.trainable = False
        task.compile_model(model, make_optimizer(task.config.train, total_steps))
    steps.build(model, strategy, train_ds)
    return model


def _train(task, model_dir, strategy, role):
    config = task.config
    checkpoint_dir = os.path.join(model_dir, CHECKPOINT_DIR)
    train_records, train_ds, dev_ds = prepare_run(task, model_dir, role.write_dir(model_dir))
    epochs, steps_per_epoch, total_steps = step_budget(task, train_ds)
    if isinstance(strategy, tf.distribute.TPUStrategy):
        train_ds = distribute.full_batches(train_ds)
    logging.info("Training %s: %s examples, %d steps (%d epoch(s) of %d), %d replica(s) on "
                 "%d worker(s)", config.task, task.num_examples(train_records), total_steps,
                 epochs, steps_per_epoch, strategy.num_replicas_in_sync, role.num_workers)
    model = build_model(task, strategy, train_ds, total_steps)
    checkpoints = checkpointing.StepCheckpoints(
        model, role.write_dir(checkpoint_dir), config.train.max_to_keep,
        restore_dir=checkpoint_dir)
    step = checkpoints.restore(role.chief)
    if step:
        logging.info("Resuming from step %d", step)
    log_dir = role.write_dir(os.path.join(model_dir, LOG_DIR))
    if not step:
        write_hparams(log_dir, config)
    loop = steps.Steps(model, strategy, task.num_tokens, task.use_jit_compile())
    sharding = config.train.input_sharding
    # The stream of batches is deterministic for a seed: skipping the batches trained on
    # puts a resumed run where the checkpointed one was (re-reading them costs input
    # time only, no model compute).
    iterator = iter(distribute.distribute_dataset(strategy, train_ds.repeat().skip(step),
                                                  sharding))
    dev = distribute.distribute_dataset(strategy, dev_ds, sharding)
    callbacks = task.callbacks(log_dir)
    for callback in callbacks:
        callback.set_model(model)
    progress = ProgressLogger(log_dir, config.train.log_every_steps, total_steps)
    every = config.train.checkpoint_every_steps
    preemption = checkpointing.preemption_handler(strategy, checkpoints)
    start, saved = time.perf_counter(), step
    for epoch in range(step // steps_per_epoch, epochs):
        logging.info("Epoch %d/%d", epoch + 1, epochs)
        loop.reset()
        while step < min((epoch + 1) * steps_per_epoch, total_steps):
            tokens = _lost_worker_is_one_line(loop.train, iterator, role, checkpoints)
            step += 1
            progress.update(step, tokens, loop.results, lambda: learning_rate(model))
            if preemption:
                _save_if_preempted(preemption, step)
            if every and step % every == 0:
                checkpoints.save(step)
                saved = step
        train_logs = loop.results()
        dev_logs = loop.evaluate(dev)
        progress.epoch_end(epoch, epochs, step, train_logs, dev_logs)
        for callback in callbacks:
            callback.on_epoch_end(epoch, {**train_logs,
                                          **{f"val_{k}": v for k, v in dev_logs.items()}})
        if saved != step:
            checkpoints.save(step)
            saved = step
    if role.num_workers > 1:  # every worker's copy, to check they hold the same model
        logging.info("Worker %d weights fingerprint %s", role.task_id, weights_fingerprint(model))
    save_model(model, model_dir, role)
    if role.chief:
        write_report(model_dir, PROGRESS, {"steps": step,
                                           "fit_seconds": round(time.perf_counter() - start, 1)})
    if isinstance(strategy, (tf.distribute.MultiWorkerMirroredStrategy,
                             tf.distribute.TPUStrategy)):
        # Keras' evaluate/predict do not work on a model of these strategies (keras#20329):
        # the chief evaluates and exports what it saved; the other workers are done.
        return load_model(model_dir) if role.chief else None
    return model


def _lost_worker_is_one_line(train_step, iterator, role, checkpoints):
    """One step; in a cluster, a worker that died (its collectives fail on the others) is a
    one-line `distribute.ClusterError`: the job must be restarted, from the last checkpoint."""
    if role.num_workers == 1:
        return train_step(iterator)
    try:
        return train_step(iterator)
    except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError,
            tf.errors.AbortedError, tf.errors.CancelledError) as e:
        reason = checkpointing.error_line(e, prefer="aborted by")
        raise distribute.ClusterError(
            f"worker {role.task_id}: another task of the cluster stopped "
            f"({type(e).__name__}: {reason}); restart every task to resume from the "
            f"last checkpoint (step {checkpoints.latest_step()})") from e


def _save_if_preempted(handler, step):
    """The handler's save-and-exit after SIGTERM, with a line saying how to go on."""
    try:
        handler.save_checkpoint_if_preempted(checkpoint_number=step)
    except SystemExit:
        logging.warning("Preempted (SIGTERM): checkpoint of step %d saved; run the same "
                        "command again to resume", step)
        raise


def weights_fingerprint(model):
    """SHA-1 of the model's weights (values and order): equal models, equal fingerprints."""
    digest = hashlib.sha1()
    for weight in model.weights:
        digest.update(np.ascontiguousarray(keras.ops.convert_to_numpy(weight)).tobytes())
    return digest.hexdigest()


def learning_rate(model):
    """The optimizer's current learning rate (the schedule at its step)."""
    return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))


def save_model(model, model_dir, role=None):
    """Write `model_dir/model.keras` atomically, and the backbone alone as a preset in
    `model_dir/backbone/` with the run's tokenizer files (`tokenizers.files()`), so that
    `--model=MODEL_DIR/backbone` fine-tunes another head on it. In a cluster every worker
    saves (reading distributed variables is collective), the chief to `model_dir`."""
    model_dir = role.write_dir(model_dir) if role else model_dir
    os.makedirs(model_dir, exist_ok=True)
    path = os.path.join(model_dir, MODEL_FILE)
    model.save(path + ".tmp.keras")
    os.replace(path + ".tmp.keras", path)
    backbone_dir = os.path.join(model_dir, BACKBONE_DIR)
    tmp = backbone_dir + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.backbone.save_to_preset(tmp)
    for name in tokenizers.files():
        if os.path.exists(os.path.join(model_dir, name)):
            shutil.copy(os.path.join(model_dir, name), tmp)
    shutil.rmtree(backbone_dir, ignore_errors=True)
    os.replace(tmp, backbone_dir)


def load_model(model_dir):
    """The trained model saved by `train` (the head classes are registered for loading by
    `kerlm.heads`, which the tasks import)."""
    path = os.path.join(model_dir, MODEL_FILE)
    if not os.path.exists(path):
        raise ConfigError(f"{path} not found: train a model into {model_dir} first")
    return keras.saving.load_model(path, compile=False)


def trained_steps(model_dir):
    """Optimizer steps the saved model was trained for (0 if unknown)."""
    path = os.path.join(model_dir, f"{PROGRESS}.json")
    if not os.path.exists(path):
        return 0
    with open(path) as f:
        return json.load(f)["steps"]


def write_report(model_dir, name, report):
    """Write a metrics report as `model_dir/NAME.json` and return its path."""
    path = os.path.join(model_dir, f"{name}.json")
    with open(path, "w") as f:
        json.dump(report, f, indent=2)
    return path
