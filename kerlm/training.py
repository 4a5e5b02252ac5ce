"""Training a task under a `tf.distribute` strategy, resumable, logged to TensorBoard."""

import json
import math
import os
import shutil
import time

import keras
import tensorflow as tf
from absl import logging

from kerlm import tasks, tokenizers
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


def get_strategy(name):
    """The `tf.distribute` strategy for `default`, `one_device` or `mirrored`."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "one_device":
        gpus = tf.config.list_logical_devices("GPU")
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    if name == "mirrored":
        devices = [d.name for d in tf.config.list_logical_devices("GPU")] or \
                  [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    raise ValueError(f"Unknown strategy {name!r}")


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


class TokenCounter:
    """Counts the real tokens of the batches a dataset yields (`count(dataset, task)`), from
    the batches' own masks (`task.num_tokens`), so tokens/s needs no second pass over
    the data and works on streams. Batches waiting in the prefetch buffer are counted when
    produced: over a logging interval of many steps the rate is that of training."""

    def __init__(self):
        with tf.device("/cpu:0"):
            self.tokens = tf.Variable(0, dtype=tf.int64, trainable=False)

    def count(self, dataset, task):
        def counted(*batch):
            self.tokens.assign_add(tf.cast(task.num_tokens(batch[0]), tf.int64))
            return batch
        return dataset.map(counted)


class ProgressLogger(keras.callbacks.Callback):
    """Every N steps: a log line (loss, learning rate, tokens/s, ETA) and TensorBoard
    scalars; at `total_steps` it stops training (so `--train_steps` is exact).

    The loss is the running mean over the epoch so far (what Keras passes to callbacks).
    Tokens/s counts real (non-pad) tokens, read from a `TokenCounter`.
    """

    def __init__(self, log_dir, every_steps, counter, total_steps):
        super().__init__()
        self.writer = tf.summary.create_file_writer(os.path.join(log_dir, "train"))
        self.every_steps = every_steps
        self.counter = counter
        self.total_steps = total_steps
        self._last = None

    def on_train_batch_end(self, batch, logs=None):
        step = int(self.model.optimizer.iterations.numpy())
        if step >= self.total_steps:
            self.model.stop_training = True
        now, tokens = time.perf_counter(), int(self.counter.tokens.numpy())
        if self._last is None:
            self._last = (step, now, tokens)
            return
        if step % self.every_steps and step != self.total_steps:
            return
        seconds = max(now - self._last[1], 1e-9)
        tokens_per_sec = (tokens - self._last[2]) / seconds
        eta = (self.total_steps - step) * seconds / max(step - self._last[0], 1)
        self._last = (step, now, tokens)
        learning_rate = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        loss = float(logs.get("loss", float("nan")))
        logging.info("step %d/%d  loss %.4f  lr %.2e  %.0f tokens/s  ETA %s", step,
                     self.total_steps, loss, learning_rate, tokens_per_sec,
                     _duration(eta))
        with self.writer.as_default(step=step):
            tf.summary.scalar("tokens_per_sec", tokens_per_sec)
            tf.summary.scalar("learning_rate", learning_rate)
            tf.summary.scalar("running_loss", loss)  # mean over the epoch so far, as Keras logs it
        self.writer.flush()


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
    `--validation_interval` steps over one iterator (Keras keeps it across epochs when
    `steps_per_epoch` is given), each ending with a dev evaluation and a checkpoint."""
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
    """Train `task` (whose config is already resolved) into `model_dir`; return the model.

    Resumes from `model_dir/checkpoints` when a previous run left one. Writes
    `config.json`, the task's assets, `model.keras` and TensorBoard logs under `logs/`.
    """
    config = task.config
    keras.utils.set_random_seed(config.train.seed)
    strategy = strategy or get_strategy(config.train.strategy)
    resuming = os.path.exists(os.path.join(model_dir, CHECKPOINT_DIR))
    if config.train.freeze_backbone and not os.path.isdir(config.model.preset):
        raise ConfigError("--freeze_backbone keeps a trained backbone fixed: give "
                          "--model=a directory with its weights (e.g. "
                          f"MODEL_DIR/{BACKBONE_DIR} of an earlier run)")
    task.check_model_flag()
    train_records = task.read("train")
    if resuming:
        task.restore(model_dir)
    else:
        task.prepare(train_records, model_dir)
    config.save(model_dir)
    train_ds = task.dataset(train_records, training=True)
    dev_ds = task.dataset(task.read("dev"), training=False)
    epochs, steps_per_epoch, total_steps = step_budget(task, train_ds)
    if config.train.train_steps and int(train_ds.cardinality()) > 0:
        train_ds = train_ds.repeat()
    counter = TokenCounter()
    train_ds = counter.count(train_ds, task)
    logging.info("Training %s: %s examples, %d steps (%d epoch(s) of %d), %d replica(s)",
                 config.task, task.num_examples(train_records), total_steps, epochs,
                 steps_per_epoch, strategy.num_replicas_in_sync)

    with strategy.scope():
        model = task.new_model()
        if config.train.freeze_backbone:
            model.backbone.trainable = False
        task.compile_model(model, make_optimizer(config.train, total_steps))
    log_dir = os.path.join(model_dir, LOG_DIR)
    write_hparams(log_dir, config)
    callbacks = [
        keras.callbacks.BackupAndRestore(os.path.join(model_dir, CHECKPOINT_DIR),
                                         delete_checkpoint=False, double_checkpoint=True),
        keras.callbacks.TensorBoard(log_dir=log_dir),
        ProgressLogger(log_dir, config.train.log_every_steps, counter, total_steps),
        *task.callbacks(log_dir),
    ]
    start = time.perf_counter()
    model.fit(train_ds, validation_data=dev_ds, epochs=epochs,
              steps_per_epoch=steps_per_epoch if config.train.train_steps else None,
              callbacks=callbacks, verbose=2)
    save_model(model, model_dir)
    write_report(model_dir, PROGRESS, {"steps": int(model.optimizer.iterations.numpy()),
                                       "fit_seconds": round(time.perf_counter() - start, 1)})
    return model


def save_model(model, model_dir):
    """Write `model_dir/model.keras` atomically, and the backbone alone as a preset in
    `model_dir/backbone/` with the run's tokenizer files (`tokenizers.files()`), so that
    `--model=MODEL_DIR/backbone` fine-tunes another head on it."""
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
