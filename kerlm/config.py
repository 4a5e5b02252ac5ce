"""One config object for a run: parsed from flags once, saved beside the checkpoints.

Every hyper-parameter lives here. `apps/train.py` writes it to `MODEL_DIR/config.json`;
evaluate, predict and export read it back from there and nowhere else.
"""

import dataclasses
import json
import os

CONFIG_FILE = "config.json"


class ConfigError(ValueError):
    """A config that cannot be used: unknown keys, a missing file, a conflicting resume."""


def _field(default, help, flag=None, choices=None):
    return dataclasses.field(default=default, metadata=dict(help=help, flag=flag, choices=choices))


@dataclasses.dataclass
class DataConfig:
    train_data: str = _field("", "Training file (.jsonl/.csv/.tsv, optionally .gz). "
                                 "Empty: the task's embedded data.")
    eval_data: str = _field("", "Dev file evaluated after every epoch. Empty: embedded dev split.")
    test_data: str = _field("", "Test file for evaluate.py. Empty: embedded test split.")
    text_field: str = _field("text", "Name of the text field (JSONL key or CSV/TSV column).")
    label_field: str = _field("label", "Name of the label field.")
    source_lang: str = _field("en", "Translation: source language code, also the source "
                                    "field's name in the data files (JSONL key or column).")
    target_lang: str = _field("es", "Translation: target language code and field name. "
                                    "Embedded data: en<->es (Bible), en<->de (Debian).")
    document_field: str = _field("document", "Summarization: name of the document field.")
    summary_field: str = _field("summary", "Summarization: name of the summary field.")
    max_query_length: int = _field(64, "QA: question pieces kept (the rest is cut).")
    doc_stride: int = _field(128, "QA: a context longer than the sequence is read in windows "
                                   "starting every doc_stride pieces.")
    cloze_questions: int = _field(0, "QA: also train on up to N cloze questions per "
                                     "sentence of the training contexts (a year or a name "
                                     "cut out), made by kerlm.data.cloze.")
    skip_bad_rows: bool = _field(False, "Skip malformed rows (their count is printed) "
                                        "instead of stopping at the first one.")


@dataclasses.dataclass
class ModelConfig:
    preset: str = _field("encoder_tiny", "Backbone: a preset name (kerlm.models.list_presets()"
                         ": encoder, decoder or encoder-decoder), built with random weights "
                         "for the task's learned vocabulary; or a checkpoint directory (kerlm "
                         "save, keras-hub preset, Hugging Face config.json + model.safetensors) "
                         "loaded with its weights and its WordPiece vocabulary.", flag="model")
    sequence_length: int = _field(128, "Maximum tokens per example (the source, for "
                                       "seq2seq tasks), special tokens included.")
    target_sequence_length: int = _field(64, "Seq2seq tasks: maximum target tokens in "
                                             "training, and the default decoding length.")
    vocabulary_size: int = _field(8000, "Vocabulary size learned from the training texts "
                                        "(WordPiece for classification; one SentencePiece "
                                        "model shared by source and target for seq2seq; "
                                        "small corpora give fewer). Ignored when --model is "
                                        "a directory (its vocabulary is used).")
    dropout: float = _field(0.1, "Dropout in the backbone and head.")
    copy_attention: bool = _field(False, "Seq2seq tasks: a pointer-generator output layer "
                                         "that can copy source tokens (names, numbers, rare "
                                         "words) as well as generate from the vocabulary.")
    pooling: str = _field("mean", "How the classifier pools the sequence: mean over real "
                                  "tokens, first token (encoders), last real token (the "
                                  "natural choice for decoder-only models).",
                          choices=["mean", "first", "last"])


@dataclasses.dataclass
class TrainConfig:
    epochs: int = _field(10, "Passes over the training data (ignored if train_steps > 0).")
    train_steps: int = _field(0, "Total optimizer steps; 0 means use --epochs.")
    batch_size: int = _field(32, "Global batch size (split across replicas).")
    learning_rate: float = _field(5e-4, "Peak learning rate (linear warm-up, cosine decay).")
    warmup_ratio: float = _field(0.1, "Fraction of steps spent warming up the learning rate.")
    weight_decay: float = _field(0.01, "AdamW weight decay (not applied to biases and norms).")
    strategy: str = _field("default", "tf.distribute strategy.",
                           choices=["default", "one_device", "mirrored"])
    mixed_precision: str = _field("float32", "Keras dtype policy.",
                                  choices=["float32", "mixed_bfloat16", "mixed_float16"])
    freeze_backbone: bool = _field(False, "Train only the head: keep the backbone that "
                                          "--model=DIRECTORY loaded fixed (fine-tuning a new "
                                          "head on a trained backbone).")
    label_smoothing: float = _field(0.0, "Seq2seq tasks: label smoothing of the token "
                                         "cross-entropy.")
    seed: int = _field(42, "Seed for weights, shuffling and dropout.")
    log_every_steps: int = _field(25, "Log loss and tokens/s every N steps.")


@dataclasses.dataclass
class DecodeConfig:
    sampler: str = _field("greedy", "Seq2seq decoding in evaluation, prediction and the "
                                    "exported serving_default signature.",
                          choices=["greedy", "beam", "top_k", "top_p", "random"])
    beam_width: int = _field(4, "Beam search: number of beams.")
    length_penalty: float = _field(0.6, "Beam search: GNMT length penalty exponent "
                                        "(0: none; larger favours longer outputs).")
    top_k: int = _field(50, "top_k sampling: sample among the k most likely tokens.")
    top_p: float = _field(0.9, "top_p (nucleus) sampling: smallest token set with this "
                               "probability mass.")
    temperature: float = _field(1.0, "Sampling temperature (divides the logits).")
    max_decode_length: int = _field(0, "Maximum generated tokens; 0: the model's "
                                       "target_sequence_length.")
    sampling_seed: int = _field(0, "Seed of the random samplers (reproducible draws).")
    max_answer_length: int = _field(30, "QA: longest answer span, in word pieces.")
    n_best_size: int = _field(1, "QA: also return the N best spans of each question "
                                 "(n_best_answer, n_best_start, ... outputs) when N > 1.")
    null_score_diff_threshold: float = _field(0.0, "QA with unanswerable questions (SQuAD "
                                                   "v2.0): answer nothing when the no-answer "
                                                   "score beats the best span by more than "
                                                   "this.")


MIXTURES = ["proportional", "equal", "temperature"]


@dataclasses.dataclass
class MultiTaskConfig:
    tasks: str = _field("sentiment,qa,translation,summarization",
                        "--task=multitask: the tasks (comma-separated) whose heads share one "
                        "encoder-decoder backbone and one SentencePiece vocabulary.")
    mixture: str = _field("temperature", "--task=multitask: each step's batch is split "
                                         "between the tasks in proportion to their rates: "
                                         "training-set size, equal, or size^(1/T) (T5's "
                                         "temperature scaling).", choices=MIXTURES)
    mixture_temperature: float = _field(2.0, "--mixture=temperature: T (1 = proportional, "
                                             "large = equal).")


# Fields that may change when a run is resumed on the same model_dir (decoding options
# never change the trained weights).
RESUMABLE_FIELDS = {"train.epochs", "train.train_steps", "train.log_every_steps",
                    "train.strategy", "data.skip_bad_rows",
                    *(f"decode.{f.name}" for f in dataclasses.fields(DecodeConfig))}


@dataclasses.dataclass
class Config:
    task: str = _field("sentiment", "The task to train.",
                       choices=["sentiment", "translation", "summarization", "qa",
                                "multitask"])
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    decode: DecodeConfig = dataclasses.field(default_factory=DecodeConfig)
    multitask: MultiTaskConfig = dataclasses.field(default_factory=MultiTaskConfig)

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values):
        """Build a Config from nested dicts; unknown keys are an error, missing keys default."""
        kwargs = {}
        for f in dataclasses.fields(cls):
            if f.name not in values:
                continue
            value = values[f.name]
            if _section(f):
                value = _section_from_dict(_section(f), value, f.name)
            kwargs[f.name] = value
        unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ConfigError(f"Unknown config keys: {sorted(unknown)}")
        return cls(**kwargs)

    def flat(self):
        """`{"section.field": value}` for every leaf, e.g. for TensorBoard hparams."""
        out = {}
        for key, value in self.to_dict().items():
            if isinstance(value, dict):
                out.update({f"{key}.{k}": v for k, v in value.items()})
            else:
                out[key] = value
        return out

    def save(self, model_dir):
        os.makedirs(model_dir, exist_ok=True)
        path = os.path.join(model_dir, CONFIG_FILE)
        with open(path + ".tmp", "w") as f:
            json.dump(self.to_dict(), f, indent=2, sort_keys=True)
        os.replace(path + ".tmp", path)

    @classmethod
    def load(cls, model_dir):
        """The config saved in `model_dir`; a clear error if there is none."""
        path = os.path.join(model_dir, CONFIG_FILE)
        if not os.path.exists(path):
            raise ConfigError(f"{path} not found: is {model_dir!r} a directory written by "
                                    "apps/train.py?")
        with open(path) as f:
            return cls.from_dict(json.load(f))


def check_model(preset):
    """`"directory"` or `"preset"` for a `--model` value, or a ConfigError listing the presets.

    Example:
    >>> check_model("encoder_tiny")
    'preset'
    """
    if os.path.isdir(preset):
        return "directory"
    from kerlm.models import presets  # noqa: PLC0415 (imports Keras: only when checking)
    if preset not in presets.PRESETS:
        raise ConfigError(f"--model={preset!r} is neither a directory nor a preset; presets: "
                          f"{', '.join(presets.list_presets())}")
    return "preset"


def _section(field):
    """The dataclass of a config section field, or None for a leaf."""
    factory = field.default_factory
    return factory if dataclasses.is_dataclass(factory) else None


def _section_from_dict(section_cls, values, name):
    known = {f.name for f in dataclasses.fields(section_cls)}
    unknown = set(values) - known
    if unknown:
        raise ConfigError(f"Unknown keys in config section {name!r}: {sorted(unknown)}")
    return section_cls(**values)


def leaf_fields():
    """Yield `(path, dataclasses.Field)` for every leaf, e.g. `("model.preset", field)`."""
    for f in dataclasses.fields(Config):
        if _section(f):
            for sub in dataclasses.fields(_section(f)):
                yield f"{f.name}.{sub.name}", sub
        else:
            yield f.name, f


def apply_overrides(config, overrides):
    """A copy of `config` with `{"section.field": value}` overrides applied.

    Example:
    >>> apply_overrides(Config(), {"train.epochs": 3}).train.epochs
    3
    """
    values = config.to_dict()
    for path, value in overrides.items():
        section, _, name = path.rpartition(".")
        target = values[section] if section else values
        if name not in target:
            raise ConfigError(f"Unknown config field {path!r}")
        target[name] = value
    return Config.from_dict(values)


def diff(old, new):
    """`{path: (old_value, new_value)}` for the leaves that differ."""
    a, b = old.flat(), new.flat()
    return {k: (a[k], b[k]) for k in a if a[k] != b[k]}
