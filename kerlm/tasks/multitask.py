"""Several tasks trained together on one encoder-decoder backbone and exported together."""

import glob
import json
import math
import os

import tensorflow as tf

from kerlm import heads, models, tokenizers
from kerlm.config import MIXTURES, ConfigError, apply_overrides
from kerlm.tasks.base import Task, build_backbone

# The SavedModel signature of each task's head in the multi-task export.
SIGNATURES = {"sentiment": "sentiment", "qa": "qa", "translation": "translate",
              "summarization": "summarize"}


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
    """`{"data.train_data": DIR/<name>.<ext>, ...}` for the data directories given."""
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
        files[f"data.{flag}"] = found[0]
    return files


def _joined(reports):
    """One report from `{task: report}`: keys `<task>/<key>`, plus the total
    `num_examples`."""
    joined = {f"{name}/{key}": value for name, report in reports.items()
              for key, value in report.items()}
    joined["num_examples"] = sum(r["num_examples"] for r in reports.values())
    return joined


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

    name = "multitask"
    export_name = "kerlm_multitask"

    def __init__(self, config):
        super().__init__(config)
        from kerlm.tasks import TASKS  # noqa: PLC0415 (the registry imports this module)

        names = [n.strip() for n in config.multitask.tasks.split(",") if n.strip()]
        unknown = [n for n in names if n not in SIGNATURES]
        if unknown or not names or len(set(names)) != len(names):
            raise ConfigError(f"--tasks={config.multitask.tasks!r}: give distinct tasks "
                              f"among {', '.join(SIGNATURES)}")
        self.tasks = {n: TASKS[n](apply_overrides(config, {"task": n, **_task_files(config, n)}))
                      for n in names}
        self.batch_sizes = None

    # Data ---------------------------------------------------------------------------------
    def fields(self):
        return ()

    def embedded(self, split):
        return {name: task.embedded(split) for name, task in self.tasks.items()}

    def read(self, split):
        return {name: task.read(split) for name, task in self.tasks.items()}

    def read_file(self, path):
        """`{task: records}` of the directory `path` (a file per task, as `--test_data`)."""
        config = apply_overrides(self.config, {"data.test_data": path})
        return {name: task.read_file(_task_files(config, name)["data.test_data"])
                for name, task in self.tasks.items()}

    def num_examples(self, records):
        return sum(len(r) for r in records.values())

    def split(self, train_records):
        """Each task's share of a training batch, from the sizes of its training set."""
        multitask = self.config.multitask
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

    def mean_tokens(self, records):
        """Mean real tokens per example of a training batch (tasks weighted by share)."""
        sizes = self.batch_sizes or self.split(records)
        total = sum(sizes.values())
        return sum(sizes[name] / total * task.mean_tokens(records[name])
                   for name, task in self.tasks.items())

    # Model --------------------------------------------------------------------------------
    def build_model(self):
        """One backbone (`--model`: an encoder-decoder preset or saved backbone) and every
        task's head on it."""
        seq2seq = [t for t in self.tasks.values() if hasattr(t, "max_decode_length")]
        if not seq2seq:  # no head uses the decoder
            first = next(iter(self.tasks.values()))
            backbone = build_backbone(self.config.model, first.preprocessor.vocabulary_size,
                                      encoder_only=True)
        else:
            backbone = build_backbone(self.config.model,
                                      seq2seq[0].preprocessor.vocabulary_size,
                                      positions=max(t.max_decode_length() for t in seq2seq))
        if not isinstance(backbone, models.EncoderDecoderBackbone):
            raise ConfigError(f"--task=multitask needs an encoder-decoder backbone; --model="
                              f"{self.config.model.preset} is a {type(backbone).__name__}")
        return heads.MultiTaskModel({name: task.build_model(backbone)
                                     for name, task in self.tasks.items()})

    def compile_args(self):
        """Each task's loss and metrics; its loss weight is its share of the batch."""
        if self.batch_sizes is None:
            raise RuntimeError("compile_args needs the batch split: build the training "
                               "dataset first")
        total = sum(self.batch_sizes.values())
        tasks = {}
        for name, task in self.tasks.items():
            args = task.compile_args()
            tasks[name] = dict(loss=args["loss"], weight=self.batch_sizes[name] / total,
                               metrics=args.get("metrics", []),
                               weighted_metrics=args.get("weighted_metrics", []))
        return {"tasks": tasks}

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
