"""One config object for a run: parsed from flags once, saved beside the checkpoints.

A `Config` has the sections every task shares (`data`, `model`, `train`) and one section
of the chosen task's own options (a `TaskConfig` subclass defined in the task's module and
registered with it, see `kerlm.tasks.registry`). `apps/train.py` writes it to
`MODEL_DIR/config.json` as ``{"version": 2, "task": "qa", "data": ..., "model": ...,
"train": ..., "qa": {...}}``; evaluate, predict and export read it back from there (with
`kerlm.tasks.load_config`) and nowhere else. Config files of kerlm 0.x (one flat set of
sections for all tasks, no "version") still load: `TaskConfig.from_v1` picks the task's
fields from them.

This module knows no task: the task tier maps a task name to its options class.
"""

import dataclasses
import json
import os
import typing

CONFIG_FILE = "config.json"
VERSION = 2


class ConfigError(ValueError):
    """A config that cannot be used: unknown keys, a missing file, a conflicting resume."""


def field(default, help, flag=None, choices=None, resumable=False):
    """A config field: its default, its flag's help text (and name, if not the field's),
    the allowed values, and whether a resumed run may change it (e.g. decoding options,
    which never change the trained weights)."""
    metadata = dict(help=help, flag=flag, choices=choices, resumable=resumable)
    if isinstance(default, (dict, list)):
        return dataclasses.field(default_factory=lambda: type(default)(default),
                                 metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass
class DataConfig:
    train_data: str = field("", "Training file (.jsonl/.csv/.tsv, optionally .gz). "
                                "Empty: the task's embedded data.")
    eval_data: str = field("", "Dev file evaluated after every epoch. Empty: embedded dev split.")
    test_data: str = field("", "Test file for evaluate.py. Empty: embedded test split.")
    skip_bad_rows: bool = field(False, "Skip malformed rows (their count is printed) "
                                       "instead of stopping at the first one.",
                                resumable=True)


@dataclasses.dataclass
class ModelConfig:
    preset: str = field("encoder_tiny", "Backbone: a preset name (kerlm.models.list_presets()"
                        ": encoder, decoder or encoder-decoder), built with random weights "
                        "for the task's learned vocabulary; or a checkpoint directory (kerlm "
                        "save, keras-hub preset, Hugging Face config.json + model.safetensors) "
                        "loaded with its weights and its vocabulary.", flag="model")
    vocabulary_size: int = field(8000, "Vocabulary size learned from the training texts "
                                       "(WordPiece for classification and QA; one "
                                       "SentencePiece model shared by source and target for "
                                       "seq2seq; small corpora give fewer). Ignored when "
                                       "--model is a directory (its vocabulary is used).")
    dropout: float = field(0.1, "Dropout in the backbone and head.")


STRATEGIES = ["default", "one_device", "mirrored", "multi_worker_mirrored", "tpu",
              "parameter_server"]


@dataclasses.dataclass
class TrainConfig:
    epochs: int = field(10, "Passes over the training data (ignored if train_steps > 0).",
                        resumable=True)
    train_steps: int = field(0, "Total optimizer steps, exactly (the learning-rate schedule "
                                "is sized to them); 0 means use --epochs.", resumable=True)
    batch_size: int = field(32, "Global batch size (split across replicas).")
    learning_rate: float = field(5e-4, "Peak learning rate (linear warm-up, cosine decay).")
    warmup_ratio: float = field(0.1, "Fraction of steps spent warming up the learning rate.")
    weight_decay: float = field(0.01, "AdamW weight decay (not applied to biases and norms).")
    strategy: str = field("default", "tf.distribute strategy (kerlm.distribute; the cluster "
                                     "ones read TF_CONFIG).", choices=STRATEGIES,
                          resumable=True)
    tpu: str = field("", "--strategy=tpu: the Cloud TPU's name, a grpc:// address, or "
                         "'local' on a TPU VM.", resumable=True)
    all_reduce_alg: str = field("auto", "--strategy=multi_worker_mirrored: the collective "
                                        "implementation (ring on CPUs, nccl on GPUs).",
                                choices=["auto", "ring", "nccl"], resumable=True)
    input_sharding: str = field("auto", "How workers split the input: by file, by data "
                                        "(every worker reads all, keeps its share), auto "
                                        "(files if there are enough), off.",
                                choices=["auto", "file", "data", "off"], resumable=True)
    jit_compile: str = field("auto", "Compile the train step with XLA: true, false, or auto "
                                     "(the task's choice: on for the pretraining tasks, "
                                     "whose packed batches have one shape; measured in "
                                     "bench/distribute_speed.py).",
                             choices=["auto", "true", "false"], resumable=True)
    checkpoint_every_steps: int = field(100, "Steps between checkpoints (also written at "
                                             "each epoch end); 0: epoch ends only. A killed "
                                             "run loses at most this many steps.",
                                        resumable=True)
    max_to_keep: int = field(3, "Checkpoints kept (older ones are deleted).", resumable=True)
    mixed_precision: str = field("float32", "Keras dtype policy.",
                                 choices=["float32", "mixed_bfloat16", "mixed_float16"])
    freeze_backbone: bool = field(False, "Train only the head: keep the backbone that "
                                         "--model=DIRECTORY loaded fixed (fine-tuning a new "
                                         "head on a trained backbone).")
    seed: int = field(42, "Seed for weights, shuffling and dropout.")
    log_every_steps: int = field(25, "Log loss and tokens/s every N steps.", resumable=True)
    validation_interval: int = field(1000, "Streamed training data (a corpus of unknown "
                                           "size): steps between dev evaluations (each "
                                           "ends an 'epoch').",
                                     resumable=True)


@dataclasses.dataclass
class TaskConfig:
    """Options every task has; a task's own options subclass it (one dataclass per task,
    in the task's module). Fields are flags of the same name, allowed only with that
    `--task`."""

    sequence_length: int = field(128, "Maximum tokens per example (the source, for seq2seq "
                                      "tasks), special tokens included.")

    @classmethod
    def from_dict(cls, values, where):
        """The options in `values`; unknown keys are a ConfigError naming `where`."""
        return cls(**_known(cls, values, where))

    @classmethod
    def from_flags(cls, values):
        """The options with `values` ({flag field: value}, the flags given) over the
        defaults; only fields of this class are taken."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})

    @classmethod
    def from_v1(cls, pool):
        """The options from a kerlm 0.x config, whose fields of every task were flattened
        into `pool` ({field name: value})."""
        return cls.from_flags(pool)

    @classmethod
    def owns(cls, name):
        """True if the flag `name` sets one of these options."""
        return name in {f.name for f in dataclasses.fields(cls)}

    def to_dict(self):
        return dataclasses.asdict(self)


@dataclasses.dataclass
class Config:
    """The whole run: task name, shared sections and the task's `options`.

    Example:
    >>> config = Config(task="demo", options=TaskConfig(sequence_length=64))
    >>> config.to_dict()["demo"], config.train.epochs
    ({'sequence_length': 64}, 10)
    >>> apply_overrides(config, {"train.epochs": 3, "demo.sequence_length": 32}).flat()[
    ...     "demo.sequence_length"]
    32
    """

    task: str = field("sentiment", "The task to train.")
    export_name: str = field("", "Name of the exported model (EXPORT_DIR/NAME/<version>/); "
                                 "empty: the task's default (its name).", resumable=True)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    options: typing.Any = None  # the task's TaskConfig, saved under the task's name

    def to_dict(self):
        out = {"version": VERSION, "task": self.task, "export_name": self.export_name}
        for name in SECTIONS:
            out[name] = dataclasses.asdict(getattr(self, name))
        out[self.task] = self.options.to_dict() if self.options is not None else {}
        return out

    @classmethod
    def from_dict(cls, values, options_class):
        """A Config from `to_dict`'s output (or a kerlm 0.x config); the task's section is
        read with `options_class`. Unknown keys are a ConfigError."""
        values = dict(values)
        if "version" not in values:
            values = _upgrade_v1(values, options_class)
        if values.pop("version") != VERSION:
            raise ConfigError(f"config version must be {VERSION}")
        task = values.pop("task", cls.task)
        kwargs = {name: _section_from_dict(SECTIONS[name], values.pop(name, {}), name)
                  for name in SECTIONS}
        options = options_class.from_dict(values.pop(task, {}), task)
        export_name = values.pop("export_name", "")
        if values:
            raise ConfigError(f"Unknown config keys: {sorted(values)}")
        return cls(task=task, export_name=export_name, options=options, **kwargs)

    def flat(self):
        """`{"section.field": value}` for every leaf, e.g. for TensorBoard hparams.

        The task's section is named after the task; nested sections (a multi-task run's
        members) give longer paths such as `multitask.members.qa.sequence_length`.
        """
        return dict(_flatten(self.to_dict()))

    def resumable(self, path):
        """Whether a resumed run may change the leaf at `path` (a `flat()` key)."""
        return _leaf_field(self, path).metadata.get("resumable", False)

    def save(self, model_dir):
        os.makedirs(model_dir, exist_ok=True)
        path = os.path.join(model_dir, CONFIG_FILE)
        with open(path + ".tmp", "w") as f:
            json.dump(self.to_dict(), f, indent=2, sort_keys=True)
        os.replace(path + ".tmp", path)


SECTIONS = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig}


def read_config_file(model_dir):
    """The dict saved in `model_dir/config.json`; a clear error if there is none."""
    path = os.path.join(model_dir, CONFIG_FILE)
    if not os.path.exists(path):
        raise ConfigError(f"{path} not found: is {model_dir!r} a directory written by "
                          "apps/train.py?")
    with open(path) as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path}: not valid JSON ({e})") from e


def shared_fields():
    """Yield `(path, dataclasses.Field)` of every shared leaf, e.g. `("model.preset", f)`."""
    for f in dataclasses.fields(Config):
        if f.name in SECTIONS:
            for sub in dataclasses.fields(SECTIONS[f.name]):
                yield f"{f.name}.{sub.name}", sub
        elif f.name != "options":
            yield f.name, f


def flag_name(path, f):
    """The flag of a config field: `metadata["flag"]` (`--model` for `model.preset`), else
    the field's name."""
    return f.metadata.get("flag") or path.rpartition(".")[2]


def apply_overrides(config, overrides):
    """A copy of `config` with `{"section.field": value}` overrides applied; the task's
    own options are `"<task>.field"`.

    Example:
    >>> apply_overrides(Config(options=TaskConfig()), {"train.epochs": 3}).train.epochs
    3
    """
    values = config.to_dict()
    for path, value in overrides.items():
        *sections, name = path.split(".")
        target = values
        for section in sections:
            target = target.get(section) if isinstance(target, dict) else None
            if target is None:
                break
        if not isinstance(target, dict) or name not in target or sections == [] and \
                name in ("task", "version"):
            raise ConfigError(f"Unknown config field {path!r}")
        target[name] = value
    return Config.from_dict(values, type(config.options))


def diff(old, new):
    """`{path: (old_value, new_value)}` for the leaves that differ."""
    a, b = old.flat(), new.flat()
    return {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}


def _known(cls, values, where):
    if not isinstance(values, dict):
        raise ConfigError(f"config section {where!r} must be an object, got {values!r}")
    unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise ConfigError(f"Unknown keys in config section {where!r}: {sorted(unknown)}")
    return values


def _section_from_dict(section_cls, values, name):
    return section_cls(**_known(section_cls, values, name))


def _flatten(values, prefix=""):
    for key, value in values.items():
        if key == "version":
            continue
        if isinstance(value, dict) and value:
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _leaf_field(obj, path):
    """The `dataclasses.Field` at `path` in a Config (through dicts of dataclasses)."""
    *sections, name = path.split(".")
    if sections and sections[0] == getattr(obj, "task", None):
        obj, sections = obj.options, sections[1:]
    for section in sections:
        obj = obj[section] if isinstance(obj, dict) else getattr(obj, section)
    return {f.name: f for f in dataclasses.fields(obj)}[name]


def _upgrade_v1(values, options_class):
    """A kerlm 0.x config (sections data, model, train, decode, multitask holding the
    fields of every task) in today's layout: the shared fields stay, the task's options
    are picked from the rest by `options_class.from_v1`."""
    values = json.loads(json.dumps(values))  # a deep copy
    pool = {}
    out = {"version": VERSION, "task": values.pop("task", Config.task)}
    for name, section_cls in SECTIONS.items():
        section = values.pop(name, {})
        names = {f.name for f in dataclasses.fields(section_cls)}
        out[name] = {k: v for k, v in section.items() if k in names}
        pool.update({k: v for k, v in section.items() if k not in names})
    for name in ("decode", "multitask"):
        pool.update(values.pop(name, {}))
    if values:
        raise ConfigError(f"Unknown config keys: {sorted(values)}")
    out[out["task"]] = options_class.from_v1(pool).to_dict()
    return out
