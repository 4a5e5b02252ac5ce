"""The Task interface: everything one kind of problem needs, from file to served answer."""

import abc
import os
import warnings

from kerlm import tokenizers
from kerlm.config import ConfigError, check_model
from kerlm.data import readers


def build_backbone(model_config, vocabulary_size, encoder_only=False, positions=0):
    """The backbone `--model` names: a preset sized for the task's vocabulary, or a
    checkpoint directory's backbone (its weights, vocabulary size and positions) as it is,
    checked against the vocabulary and `--sequence_length`; problems are ConfigErrors.

    `positions`: a preset gets at least this many positions (e.g. the decoding length).
    `encoder_only`: the head reads only the encoder, so an encoder-decoder backbone's decoder
    gets no gradients, as expected: Keras' warning about it is silenced.
    """
    from kerlm import models  # noqa: PLC0415 (imports the model code only when building)

    preset = model_config.preset
    if check_model(preset) == "preset":
        backbone = models.Backbone.from_preset(
            preset, vocabulary_size=vocabulary_size, dropout=model_config.dropout,
            max_sequence_length=max(model_config.sequence_length, positions, 16))
    else:
        backbone = _checkpoint_backbone(model_config, vocabulary_size)
    if encoder_only and isinstance(backbone, models.EncoderDecoderBackbone):
        warnings.filterwarnings(
            "ignore", message=r"Gradients do not exist for variables \['decoder_")
    return backbone


def _checkpoint_backbone(model_config, vocabulary_size):
    """A checkpoint directory's backbone, checked against the vocabulary and sequence."""
    from kerlm import models  # noqa: PLC0415

    preset = model_config.preset
    try:
        backbone = models.Backbone.from_preset(preset, dropout=model_config.dropout)
    except ValueError as e:  # the loader's message names the directory
        raise ConfigError(str(e).replace("\n", " ")) from e
    size = getattr(backbone, "vocabulary_size", vocabulary_size)
    if vocabulary_size > size:
        raise ConfigError(f"--model={preset}: its vocabulary has {vocabulary_size} pieces but "
                          f"the backbone embeds only {size}")
    limit = getattr(backbone, "max_sequence_length", None)
    if getattr(backbone, "position", "learned") == "learned" and limit and \
            model_config.sequence_length > limit:
        raise ConfigError(f"--sequence_length={model_config.sequence_length} exceeds the "
                          f"{limit} positions of --model={preset}")
    return backbone


class Task(abc.ABC):
    """A task bundles its data reader, text → features, model, loss, metrics and export.

    Lifecycle, as driven by `kerlm.training` and the apps:
      1. `read(split)` gives the records of "train", "dev" or "test".
      2. `prepare(train_records, model_dir)` learns what comes from training data (a
         vocabulary, a label set) and saves it in `model_dir`; `restore(model_dir)` reloads it.
      3. `dataset(records, training)` yields `(features, targets)` batches for `fit`.
      4. `build_model()` and `compile_args()` give the Keras model, loss and metrics.
      5. `evaluate(model, records)` returns a JSON-ready report; `predict` answers raw inputs.
      6. `serving_functions(model)` gives the `tf.function`s a SavedModel exports and the
         objects (e.g. the tokenizer) whose variables and assets they use.
    """

    name = None
    # The tokenizer a multi-task run gives all its tasks, so that they share one
    # vocabulary (and so one token embedding); None: the task's own.
    shared_vocabulary = None

    def __init__(self, config):
        self.config = config

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
        """How many training examples `records` holds (for logging)."""
        return len(records)

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

    @abc.abstractmethod
    def vocabulary_texts(self, records):
        """The texts of `records` a vocabulary is learned from."""

    @abc.abstractmethod
    def prepare(self, train_records, model_dir):
        """Learn training-data assets (vocabulary, labels) and save them in `model_dir`."""

    @abc.abstractmethod
    def restore(self, model_dir):
        """Load the assets `prepare` saved."""

    @abc.abstractmethod
    def dataset(self, records, training, batch_size=None):
        """A batched `tf.data.Dataset` of `(features, targets)` (or `(features, targets,
        sample_weight)`), in batches of `batch_size` (default `--batch_size`)."""

    @abc.abstractmethod
    def mean_tokens(self, records):
        """Mean number of real (non-pad) tokens per example, for tokens/s."""

    @abc.abstractmethod
    def build_model(self):
        """The Keras model (backbone + head), uncompiled."""

    @abc.abstractmethod
    def compile_args(self):
        """`loss` and `metrics` for `model.compile`."""

    @abc.abstractmethod
    def evaluate(self, model, records):
        """A JSON-ready dict of metrics on `records`."""

    @abc.abstractmethod
    def baseline_reports(self, train_records, records):
        """`{name: report}`: the task's simple baselines, trained on `train_records` and
        scored on `records` like `evaluate`."""

    def callbacks(self, log_dir, head=None):
        """Extra Keras callbacks for training (e.g. TensorBoard examples); none by default.
        `head`: the task's head's name in a multi-task model being trained."""
        return []

    @abc.abstractmethod
    def headline(self, report):
        """One line with the main figures of an `evaluate` report."""

    @abc.abstractmethod
    def predict(self, model, inputs):
        """Answers for raw inputs (e.g. a list of texts)."""

    @abc.abstractmethod
    def serving_functions(self, model):
        """`({signature_name: tf.function with an input signature}, [objects to track])`."""
