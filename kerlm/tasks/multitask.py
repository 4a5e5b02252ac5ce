"""Several tasks trained together on one encoder-decoder backbone and exported together."""

import dataclasses
import glob
import json
import math
import os

import tensorflow as tf

from kerlm import heads, tokenizers
from kerlm.config import ConfigError, field
from kerlm.tasks import registry
from kerlm.tasks.base import Task

# The SavedModel signature of each task's head in the multi-task export.
SIGNATURES = {"sentiment": "sentiment", "qa": "qa", "translation": "translate",
              "summarization": "summarize"}
MIXTURES = ["proportional", "equal", "temperature"]


@dataclasses.dataclass
class MultiTaskConfig:
    """The mixture, and one options section per member task (`members`), so that members
    can differ (e.g. `multitask.members.qa.sequence_length`, settable with
    `--params_override`). A flag of a member task sets it in every member that has it."""

    tasks: str = field("sentiment,qa,translation,summarization",
                       "--task=multitask: the tasks (comma-separated) whose heads share one "
                       "encoder-decoder backbone and one SentencePiece vocabulary.")
    mixture: str = field("temperature", "--task=multitask: each step's batch is split "
                                        "between the tasks in proportion to their rates: "
                                        "training-set size, equal, or size^(1/T) (T5's "
                                        "temperature scaling).", choices=MIXTURES)
    mixture_temperature: float = field(2.0, "--mixture=temperature: T (1 = proportional, "
                                            "large = equal).")
    members: dict = field({}, "Each member task's options, by task name.")

    def __post_init__(self):
        names = self.names()
        unknown = [n for n in names if n not in SIGNATURES]
        if unknown or not names or len(set(names)) != len(names):
            raise ConfigError(f"--tasks={self.tasks!r}: give distinct tasks among "
                              f"{', '.join(SIGNATURES)}")
        extra = sorted(set(self.members) - set(names))
        if extra:
            raise ConfigError(f"multitask.members has {extra}, which --tasks={self.tasks!r} "
                              "lacks")
        self.members = {n: self.members.get(n) or registry.get(n).options_class()
                        for n in names}

    def names(self):
        return [n.strip() for n in self.tasks.split(",") if n.strip()]

    @classmethod
    def _own(cls, values):
        names = {f.name for f in dataclasses.fields(cls)} - {"members"}
        return {k: v for k, v in values.items() if k in names}

    @classmethod
    def _with_members(cls, values, member):
        """The config of `values`' own fields, each member's options `member(its options
        class, its name)`."""
        config = cls(**cls._own(values))
        config.members = {n: member(registry.get(n).options_class, n) for n in config.names()}
        return config

    @classmethod
    def from_dict(cls, values, where):
        unknown = set(values) - set(cls._own(values)) - {"members"}
        if unknown:
            raise ConfigError(f"Unknown keys in config section {where!r}: {sorted(unknown)}")
        members = values.get("members", {})
        return cls._with_members(values, lambda options, n: options.from_dict(
            members.get(n, {}), f"{where}.members.{n}"))

    @classmethod
    def from_flags(cls, values):
        return cls._with_members(values, lambda options, _: options.from_flags(values))

    @classmethod
    def from_v1(cls, pool):
        return cls._with_members(pool, lambda options, _: options.from_v1(pool))

    @classmethod
    def owns(cls, name):
        return name in cls._own({name: None}) or any(
            registry.get(n).options_class.owns(name) for n in SIGNATURES)

    def to_dict(self):
        return {**self._own(dataclasses.asdict(self)),
                "members": {n: m.to_dict() for n, m in self.members.items()}}


def mixture_rates(sizes, mixture, temperature=2.0):
    """`{task: rate}` summing to 1 from training-set sizes: proportional to the size,
    equal, or proportional to size^(1/temperature) (T5's temperature-scaled mixing).

    Example:
    >>> rates = mixture_rates({"a": 900, "b": 100}, "temperature", temperature=2.0)
    >>> {k: round(v, 2) for k, v in rates.items()}  # 30:10 instead of 900:100
    {'a': 0.75, 'b': 0.25}
    """
    if mixture not in MIXTURES:
        raise ValueError(f"mixture must be one of {MIXTURES}, got {mixture!r}")
    power = {"proportional": 1.0, "equal": 0.0, "temperature": 1.0 / temperature}[mixture]
    weights = {name: float(size) ** power for name, size in sizes.items()}
    total = sum(weights.values())
    return {name: w / total for name, w in weights.items()}


def split_batch(rates, batch_size):
    """`{task: examples}` of one step's batch: in proportion to `rates`, at least one
    each, summing to `batch_size` (largest remainders get the rounding).

    Example:
    >>> split_batch({"a": 0.7, "b": 0.2, "c": 0.1}, 16)
    {'a': 10, 'b': 4, 'c': 2}
    """
    if batch_size < len(rates):
        raise ConfigError(f"--batch_size={batch_size} cannot hold one example of each of "
                          f"the {len(rates)} tasks")
    spare = batch_size - len(rates)
    exact = {name: rate * spare for name, rate in rates.items()}
    sizes = {name: 1 + int(value) for name, value in exact.items()}
    by_remainder = sorted(exact, key=lambda name: int(exact[name]) - exact[name])
    for name in by_remainder[:batch_size - sum(sizes.values())]:
        sizes[name] += 1
    return sizes


def _task_files(config, name):
    """`{"train_data": DIR/<name>.<ext>, ...}` for the data directories given."""
    files = {}
    for flag in ("train_data", "eval_data", "test_data"):
        directory = getattr(config.data, flag)
        if not directory:
            continue
        if not os.path.isdir(directory):
            raise ConfigError(f"--task=multitask: --{flag}={directory} must be a directory "
                              f"holding a file per task ({name}.jsonl, ...)")
        found = sorted(glob.glob(os.path.join(glob.escape(directory), f"{name}.*")))
        if len(found) != 1:
            raise ConfigError(f"--{flag}={directory}: expected one file {name}.<jsonl|json|csv"
                              f"|tsv> for --tasks' {name}, found {len(found) or 'none'}")
        files[flag] = found[0]
    return files


def _joined(reports):
    """One report from `{task: report}`: keys `<task>/<key>`, plus the total
    `num_examples`."""
    joined = {f"{name}/{key}": value for name, report in reports.items()
              for key, value in report.items()}
    joined["num_examples"] = sum(r["num_examples"] for r in reports.values())
    return joined


@registry.register("multitask", MultiTaskConfig)
class MultiTask(Task):
    """`--tasks` (sentiment, qa, translation, summarization) as one model: one SentencePiece
    vocabulary learned on all their training texts, one encoder-decoder backbone with a head
    per task (`heads.MultiTaskModel`), trained on batches split between the tasks by
    `--mixture`, evaluated per task, exported as one SavedModel with a signature per task.

    Records are `{task: records}`. Each task reads its embedded data, or with
    `--train_data=DIR` (and `--eval_data`, `--test_data`) the file `DIR/<task>.<ext>` in
    that task's format and fields. An epoch is as many steps as the training sets hold
    batches altogether.
    """

    default_export_name = "kerlm_multitask"

    def __init__(self, config):
        super().__init__(config)
        self.tasks = {n: registry.get(n).task_class(self.member_config(n, options))
                      for n, options in self.options.members.items()}
        self.batch_sizes = None

    def member_config(self, name, options, **files):
        """The config of member `name`: the shared sections, its own `options`, and its
        data files (`DIR/<name>.<ext>` of the data directories, or `files`)."""
        data = dataclasses.replace(self.config.data,
                                   **(files or _task_files(self.config, name)))
        return dataclasses.replace(self.config, task=name, options=options, data=data)

    # Data ---------------------------------------------------------------------------------
    def fields(self):
        return ()

    def embedded(self, split):
        return {name: task.embedded(split) for name, task in self.tasks.items()}

    def read(self, split):
        return {name: task.read(split) for name, task in self.tasks.items()}

    def read_file(self, path):
        """`{task: records}` of the directory `path` (a file per task, as `--test_data`)."""
        config = dataclasses.replace(
            self.config, data=dataclasses.replace(self.config.data, test_data=path))
        return {name: task.read_file(_task_files(config, name)["test_data"])
                for name, task in self.tasks.items()}

    def num_examples(self, records):
        return sum(len(r) for r in records.values())

    def split(self, train_records):
        """Each task's share of a training batch, from the sizes of its training set."""
        multitask = self.options
        rates = mixture_rates({n: len(r) for n, r in train_records.items()},
                              multitask.mixture, multitask.mixture_temperature)
        return split_batch(rates, self.config.train.batch_size)

    # Assets -------------------------------------------------------------------------------
    def vocabulary_texts(self, records):
        return [text for name, task in self.tasks.items()
                for text in task.vocabulary_texts(records[name])]

    def prepare(self, train_records, model_dir):
        """One SentencePiece model learned on every task's texts, shared by all tasks."""
        tokenizer = self.vocabulary(lambda: tokenizers.SentencePieceTokenizer.learn(
            self.vocabulary_texts(train_records), self.config.model.vocabulary_size))
        if not tokenizer.reversible:
            raise ConfigError(f"--model={self.config.model.preset} has a "
                              f"{type(tokenizer).__name__}, which does not detokenize "
                              "exactly; a multi-task model shares a SentencePiece vocabulary "
                              "(give a preset or a multi-task run's backbone/)")
        for name, task in self.tasks.items():
            task.shared_vocabulary = tokenizer
            task.prepare(train_records[name], model_dir)

    def assets(self):
        return {name: task.assets() for name, task in self.tasks.items()}

    def restore(self, model_dir):
        tokenizer = tokenizers.load(model_dir)
        for task in self.tasks.values():
            task.shared_vocabulary = tokenizer
            task.restore(model_dir)

    # Features -----------------------------------------------------------------------------
    def dataset(self, records, training, batch_size=None):
        """`({task: features}, {task: targets})` batches holding every task. Training: each
        step's batch split by `--mixture` (every task's data repeats), one epoch = as many
        steps as all training sets hold batches. Evaluation: each task's full batches; the
        tasks with fewer batches than the largest dev set start over (monitoring only; the
        per-task `evaluate` reads each dev set once)."""
        if training:
            self.batch_sizes = self.split(records)
            parts = {name: task.dataset(records[name], True, self.batch_sizes[name]).repeat()
                     for name, task in self.tasks.items()}
            steps = math.ceil(self.num_examples(records) / self.config.train.batch_size)
        else:
            parts = {name: task.dataset(records[name], False) for name, task in
                     self.tasks.items()}
            steps = max(int(ds.cardinality()) for ds in parts.values())
            parts = {name: ds.repeat() for name, ds in parts.items()}
        ds = tf.data.Dataset.zip(parts).take(steps)

        def regroup(batches):
            x, y = {}, {}
            for name, batch in batches.items():
                x[name] = batch[0]
                y[name] = batch[1] if len(batch) == 2 else {"labels": batch[1],
                                                            "sample_weight": batch[2]}
            return x, y

        return ds.map(regroup).prefetch(tf.data.AUTOTUNE)

    # Model --------------------------------------------------------------------------------
    capability = "seq2seq"  # one encoder-decoder backbone for every head

    @property
    def preprocessor(self):
        """The first member's (all members share one vocabulary)."""
        return next(iter(self.tasks.values())).preprocessor

    def new_model(self):
        """One backbone (`--model`: an encoder-decoder preset or saved backbone) and every
        task's head on it."""
        positions = [t.max_decode_length() for t in self.tasks.values()
                     if t.capability == "seq2seq"]
        return self.build_model(self.backbone(positions=max(positions, default=0)))

    def backbone(self, positions=0, sequence_length=None):
        """`Task.backbone` with positions for the longest member sequence."""
        return super().backbone(positions, sequence_length or max(
            t.options.sequence_length for t in self.tasks.values()))

    def build_model(self, backbone):
        return heads.MultiTaskModel({name: task.build_model(backbone)
                                     for name, task in self.tasks.items()})

    def loss(self):
        return {name: task.loss() for name, task in self.tasks.items()}

    def compile_model(self, model, optimizer):
        """Each task's loss and metrics; its loss weight is its share of the batch (equal
        shares before a training dataset split the batch, e.g. for `evaluate`)."""
        sizes = self.batch_sizes or {name: 1 for name in self.tasks}
        total = sum(sizes.values())
        model.compile(optimizer=optimizer, tasks={
            name: dict(loss=task.loss(), weight=sizes[name] / total, metrics=task.metrics(),
                       weighted_metrics=task.weighted_metrics())
            for name, task in self.tasks.items()})

    def callbacks(self, log_dir, head=None):
        return [c for name, task in self.tasks.items() for c in task.callbacks(log_dir, name)]

    # Evaluation and prediction ------------------------------------------------------------
    def evaluate(self, model, records):
        """`{"<task>/<figure>": value}` of each task's `evaluate` on its records, and the
        total `num_examples`."""
        return _joined({name: task.evaluate(model.heads[name], records[name])
                        for name, task in self.tasks.items()})

    def baseline_reports(self, train_records, records):
        """`{"<task>/<baseline>": report}`, reports keyed like `evaluate`'s."""
        return {f"{name}/{baseline}": _joined({name: report})
                for name, task in self.tasks.items()
                for baseline, report in task.baseline_reports(train_records[name],
                                                              records[name]).items()}

    def headline(self, report):
        """Each task's headline (of the tasks the report covers)."""
        lines = []
        for name, task in self.tasks.items():
            prefix = f"{name}/"
            own = {k[len(prefix):]: v for k, v in report.items() if k.startswith(prefix)}
            if own:
                lines.append(f"{name}: {task.headline(own)}")
        return "  |  ".join(lines)

    def predict(self, model, inputs):
        """Answers for JSON objects naming their task: `{"task": "sentiment", "text": ...}`,
        `{"task": "qa", "question": ..., "context": ...}`, `{"task": "translation" or
        "summarization", "text": ...}`; each answer is that task's."""
        groups = {}
        for n, item in enumerate(inputs, 1):
            try:
                item = json.loads(item) if isinstance(item, str) else item
            except json.JSONDecodeError as e:
                raise ConfigError(f"input {n}: a multi-task input is a JSON object with a "
                                  f'"task" field: {e}') from e
            name = item.get("task") if isinstance(item, dict) else None
            if name not in self.tasks:
                raise ConfigError(f"input {n}: \"task\" must be one of {', '.join(self.tasks)}"
                                  f", got {name!r}")
            value = item if name == "qa" else item.get("text")
            if not isinstance(value, (str, dict)):
                raise ConfigError(f"input {n}: {name} input needs a string field 'text'")
            groups.setdefault(name, []).append((n - 1, value))
        answers = [None] * len(inputs)
        for name, items in groups.items():
            indices, values = zip(*items)
            for i, answer in zip(indices, self.tasks[name].predict(model.heads[name],
                                                                   list(values))):
                answers[i] = {"task": name, **answer}
        return answers

    # Export -------------------------------------------------------------------------------
    def serving_functions(self, model):
        """One signature per task (`sentiment`, `qa`, `translate`, `summarize`: each task's
        `serving_default`), and `serving_default` = the first of `--tasks`. Every function
        calls the one backbone, so the SavedModel holds its weights once."""
        functions, trackables = {}, []
        for name, task in self.tasks.items():
            task_functions, task_trackables = task.serving_functions(model.heads[name])
            functions[SIGNATURES[name]] = task_functions["serving_default"]
            trackables += task_trackables
        functions["serving_default"] = functions[SIGNATURES[next(iter(self.tasks))]]
        return functions, trackables
