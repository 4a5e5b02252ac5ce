"""The Task interface: everything one kind of problem needs, from file to served answer.

A task module defines its options (a `kerlm.config.TaskConfig` subclass), its `Task`
subclass, and registers both (`kerlm.tasks.registry.register`). What a task must give:
its records (`fields` and `embedded`, or its own `read`), the assets it learns from
training data (`prepare` / `restore`), batches (`dataset`), a head on a given backbone
(`build_model`) and a `loss`. Everything else has a default: metrics, evaluation,
baselines, callbacks, the headline, prediction and export signatures.
"""

import abc
import os
import warnings

import keras

from kerlm import models, tokenizers
from kerlm.config import ConfigError
from kerlm.data import readers


def check_model(preset):
    """`"directory"` or `"preset"` for a `--model` value, or a ConfigError listing the presets.

    Example:
    >>> check_model("encoder_tiny")
    'preset'
    """
    if os.path.isdir(preset):
        return "directory"
    if preset not in models.list_presets():
        raise ConfigError(f"--model={preset!r} is neither a directory nor a preset; presets: "
                          f"{', '.join(models.list_presets())}")
    return "preset"


def num_tokens(features):
    """Real (non-pad) tokens of a batch: the sum of every `*padding_mask` in `features`
    (nested dicts included, e.g. a multi-task batch or encoder + decoder masks).

    Example:
    >>> import numpy as np
    >>> int(num_tokens({"token_ids": np.ones((2, 3)), "padding_mask": np.array([[1, 1, 0],
    ...                                                                        [1, 0, 0]])}))
    3
    """
    total = 0
    for key, value in features.items():
        if isinstance(value, dict):
            total += num_tokens(value)
        elif key.endswith("padding_mask"):
            total += keras.ops.sum(keras.ops.cast(value, "int64"))
    return total


class Task(abc.ABC):
    """A task bundles its data reader, text → features, model, loss, metrics and export.

    Lifecycle, as driven by `kerlm.training` and the apps:
      1. `read(split)` gives the records of "train", "dev" or "test".
      2. `prepare(train_records, model_dir)` learns what comes from training data (a
         vocabulary, a label set) and saves it in `model_dir`; `restore(model_dir)` reloads it.
      3. `dataset(records, training)` yields `(features, targets)` batches for `fit`.
      4. `build_model(self.backbone(...))`, then `compile_model(model, optimizer)` (by
         default `compile` with `loss()`, `metrics()`, `weighted_metrics()`; a task whose
         objective does not fit `compile` overrides it, e.g. with its own `compute_loss`).
      5. `evaluate(model, records)` returns a JSON-ready report; `predict` answers raw inputs.
      6. `serving_functions(model)` gives the `tf.function`s a SavedModel exports and the
         objects (e.g. the tokenizer) whose variables and assets they use;
         `warmup_inputs()` the example inputs of TF Serving's warm-up file.

    `self.options` is the task's own options (`config.options`).
    """

    name = None  # set by registry.register
    # The backbone capability the task's head needs ("encode", "causal", "seq2seq"; see
    # kerlm.models.Backbone.capabilities); None: any backbone.
    capability = None
    # Where exports go by default (EXPORT_DIR/NAME/<version>/); None: the --task name.
    default_export_name = None
    # apps/predict.py runs up to this many inputs eagerly instead of tracing the serving
    # function (worth it for one-pass heads only: a trace costs ~0.6 s, an eager call
    # of a small classifier ~0.1 s); 0: always traced.
    eager_predict_limit = 0
    # The tokenizer a multi-task run gives all its tasks, so that they share one
    # vocabulary (and so one token embedding); None: the task's own.
    shared_vocabulary = None

    def __init__(self, config):
        self.config = config
        self.options = config.options

    @property
    def export_name(self):
        """`--export_name`, else the task's default, else the `--task` name."""
        return self.config.export_name or self.default_export_name or self.config.task

    def vocabulary(self, learn):
        """The tokenizer to train with: the multi-task run's shared one; else a `--model`
        directory's (`kerlm.tokenizers.load`); else `learn()`'s. Save it with
        `tokenizer.save(model_dir)`; `restore` reloads it with `tokenizers.load(model_dir)`."""
        if self.shared_vocabulary is not None:
            return self.shared_vocabulary
        preset = self.config.model.preset
        if check_model(preset) == "directory":
            try:
                return tokenizers.load(preset)
            except ValueError as e:
                raise ConfigError(f"--model: {e}, which the task needs to tokenize text for "
                                  "its backbone") from e
        return learn()

    def num_examples(self, records):
        """How many training examples `records` holds (for logging; "?" for a stream)."""
        return len(records) if hasattr(records, "__len__") else "?"

    # Data ---------------------------------------------------------------------------------
    @abc.abstractmethod
    def fields(self):
        """The names of the fields a record of this task needs, in order."""

    @abc.abstractmethod
    def embedded(self, split):
        """Records of `split` of the task's embedded data set (used without data files)."""

    def read_file(self, path):
        """The records of a user's data file (JSONL/CSV/TSV) with this task's fields."""
        return readers.read_records(path, list(self.fields()),
                                    skip_bad_rows=self.config.data.skip_bad_rows)

    def read(self, split):
        """Records of `split` ("train", "dev" or "test"): from `--train_data`,
        `--eval_data`, `--test_data`, else the embedded data; None for a test split the
        user's files lack."""
        data = self.config.data
        path = {"train": data.train_data, "dev": data.eval_data, "test": data.test_data}[split]
        if path:
            return self.read_file(path)
        if not data.train_data:
            return self.embedded(split)
        if split == "dev":
            raise ConfigError("--eval_data is required when --train_data is set")
        return None

    def evaluation_splits(self):
        """The splits `read` gives for `apps/evaluate.py --split` (beside training's
        "train"): "dev" and "test" by default; a task may add its own evaluation sets."""
        return ("dev", "test")

    # Assets -------------------------------------------------------------------------------
    @abc.abstractmethod
    def prepare(self, train_records, model_dir):
        """Learn training-data assets (vocabulary, labels) and save them in `model_dir`."""

    @abc.abstractmethod
    def restore(self, model_dir):
        """Load the assets `prepare` saved."""

    # Features -----------------------------------------------------------------------------
    @abc.abstractmethod
    def dataset(self, records, training, batch_size=None):
        """A batched `tf.data.Dataset` of `(features, targets)` (or `(features, targets,
        sample_weight)`), in batches of `batch_size` (default `--batch_size`). Its
        cardinality may be unknown (a stream): training then needs `--train_steps`."""

    # XLA for the train step under --jit_compile=auto. Off: the fine-tuning tasks' batches
    # are cut to their longest text, so XLA compiles again for each new length and was
    # slower on CPU (bench/distribute_speed.py: x0.85-0.88 for sentiment, QA, embeddings).
    jit_compile = False

    def use_jit_compile(self):
        """Whether the train step is compiled with XLA (`--jit_compile`, auto: the task's)."""
        choice = self.config.train.jit_compile
        return self.jit_compile if choice == "auto" else choice == "true"

    def num_tokens(self, features):
        """Real tokens in a batch of `features` (for tokens/s): by default the sum of
        its padding masks."""
        return num_tokens(features)

    # Model --------------------------------------------------------------------------------
    def check_backbone(self, capabilities, what):
        """Refuse a backbone lacking `capability` with one line naming fitting presets.

        `capabilities`: the backbone's (or preset's); `what`: how to name it in the error.
        Tasks with further needs (e.g. a pooling a backbone cannot do) extend this.
        """
        if self.capability and self.capability not in capabilities:
            raise ConfigError(f"--task={self.config.task} needs a backbone that can "
                              f"{self.capability!r}, but {what} cannot; backbones that fit: "
                              f"{', '.join(models.presets_with(self.capability))}")

    def check_model_flag(self):
        """Check a `--model` preset against the task before anything is trained or
        written (a directory is checked when its backbone is loaded)."""
        preset = self.config.model.preset
        if check_model(preset) == "preset":
            self.check_backbone(models.preset_capabilities(preset), f"--model={preset}")

    def new_model(self):
        """The model to train: the task's head on the backbone `--model` names."""
        return self.build_model(self.backbone())

    def backbone(self, positions=0, sequence_length=None):
        """The backbone `--model` names: a preset sized for the task's vocabulary, or a
        checkpoint directory's backbone (its weights, vocabulary size and positions) as it
        is, checked against the task, the vocabulary and `--sequence_length`.

        `positions`: a preset gets at least this many positions (e.g. the decoding length).
        """
        model_config = self.config.model
        length = sequence_length or self.options.sequence_length
        vocabulary_size = self.preprocessor.vocabulary_size
        preset = model_config.preset
        if check_model(preset) == "preset":
            backbone = models.Backbone.from_preset(
                preset, vocabulary_size=vocabulary_size, dropout=model_config.dropout,
                max_sequence_length=max(length, positions, 16))
        else:
            backbone = _checkpoint_backbone(preset, model_config.dropout, vocabulary_size,
                                            length, positions)
        self.check_backbone(backbone.capabilities, f"--model={preset}")
        # Expected, not bugs: a head that does not read BERT's pooler (mean pooling, span
        # logits) leaves it without gradients, and so does one that reads only the
        # encoder of an encoder-decoder backbone for its decoder.
        warnings.filterwarnings("ignore", message="Gradients do not exist for variables.*"
                                                  "pooled_dense")
        if self.capability != "seq2seq" and "seq2seq" in backbone.capabilities:
            warnings.filterwarnings(
                "ignore", message=r"Gradients do not exist for variables \['decoder_")
        return backbone

    @abc.abstractmethod
    def build_model(self, backbone):
        """The Keras model: the task's head on `backbone` (`self.backbone()`, or a
        multi-task model's shared one), uncompiled."""

    @abc.abstractmethod
    def loss(self):
        """The Keras loss of the head's outputs."""

    def metrics(self):
        """Keras metrics of the head's outputs (compile's `metrics`)."""
        return []

    def weighted_metrics(self):
        """Keras metrics weighted by the batches' sample weights (e.g. token masks)."""
        return []

    def compile_model(self, model, optimizer):
        """Compile `model` for training with `optimizer` (`loss`, `metrics`,
        `weighted_metrics`). A task whose objective needs more than `compile` (its own
        `compute_loss` or train step) overrides this."""
        model.compile(optimizer=optimizer, loss=self.loss(), metrics=self.metrics(),
                      weighted_metrics=self.weighted_metrics())

    # Evaluation, prediction, export ---------------------------------------------------------
    def evaluate(self, model, records):
        """A JSON-ready dict of metrics on `records`: by default Keras' loss and metrics."""
        self.compile_model(model, "adam")
        report = model.evaluate(self.dataset(records, training=False), verbose=0,
                                return_dict=True)
        return {**{k: float(v) for k, v in report.items()}, "num_examples": len(records)}

    def baseline_reports(self, train_records, records):
        """`{name: report}`: the task's simple baselines, trained on `train_records` and
        scored on `records` like `evaluate`; none by default."""
        return {}

    def callbacks(self, log_dir, head=None):
        """Extra Keras callbacks for training (e.g. TensorBoard examples); none by default.
        `head`: the task's head's name in a multi-task model being trained."""
        return []

    def headline(self, report):
        """One line with the main figures of an `evaluate` report."""
        return "  ".join(f"{k} {v:.4f}" for k, v in report.items()
                         if isinstance(v, float))

    def predict(self, model, inputs):
        """Answers for raw inputs (e.g. a list of texts)."""
        raise ConfigError(f"--task={self.config.task} has no predict")

    def serving_functions(self, model):
        """`({signature_name: tf.function with an input signature}, [objects to track])`."""
        raise ConfigError(f"--task={self.config.task} has no export signatures")

    def serving_default(self, model):
        """`model`'s traced `serving_default` function, kept per model so that evaluation
        and prediction trace it once (they answer through what the SavedModel exports)."""
        cached = getattr(self, "_serving", None)
        if cached is None or cached[0] is not model:
            self._serving = (model, self.serving_functions(model)[0]["serving_default"])
        return self._serving[1]

    def assets(self):
        """What `prepare` learned besides the tokenizer, JSON-ready (e.g. label names):
        part of the export fingerprint, so an export with other assets is a new version."""
        return None

    def warmup_inputs(self):
        """`{signature: {input: example values}}` for TF Serving's warm-up file, or None
        for `kerlm.serving.warmup`'s defaults."""
        return None


def _checkpoint_backbone(preset, dropout, vocabulary_size, sequence_length, positions=0):
    """A checkpoint directory's backbone, checked against the vocabulary, the sequence and
    the positions the task needs beyond it (e.g. the decoding length)."""
    try:
        backbone = models.Backbone.from_preset(preset, dropout=dropout)
    except ValueError as e:  # the loader's message names the directory
        raise ConfigError(str(e).replace("\n", " ")) from e
    size = getattr(backbone, "vocabulary_size", vocabulary_size)
    if vocabulary_size > size:
        raise ConfigError(f"--model={preset}: its vocabulary has {vocabulary_size} pieces but "
                          f"the backbone embeds only {size}")
    limit = getattr(backbone, "max_sequence_length", None)
    if getattr(backbone, "position", "learned") == "learned" and limit and \
            sequence_length > limit:
        raise ConfigError(f"--sequence_length={sequence_length} exceeds the "
                          f"{limit} positions of --model={preset}")
    if getattr(backbone, "position", "learned") == "learned" and limit and positions > limit:
        raise ConfigError(f"the task needs {positions} positions (its decoding length, "
                          f"e.g. --max_decode_length) but --model={preset} has {limit}")
    return backbone

