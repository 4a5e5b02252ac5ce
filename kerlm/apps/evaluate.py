"""Evaluate a trained run on its test (or dev) split, beside the task's simple baselines.

    python apps/evaluate.py --model_dir=runs/sentiment
    python apps/evaluate.py --model_dir=runs/qa --split=natural

`--split` is one of the task's evaluation splits (`Task.evaluation_splits()`: "dev" and
"test", and a task's own evaluation sets, e.g. qa's "natural" questions).

Writes `MODEL_DIR/<split>_metrics.json`, TensorBoard scalars (and, for text-generating
tasks, a table of source / reference / output examples) under `MODEL_DIR/logs/eval_<split>`,
and prints the headline figures. All hyper-parameters come from `MODEL_DIR/config.json`.
"""

import os

from absl import flags

from kerlm.apps import flags as kerlm_flags

kerlm_flags.define_model_dir()
flags.DEFINE_string("split", "test", "Which split to score: the run's test or dev data, or "
                    "one of the task's own evaluation sets (qa: natural).")
flags.DEFINE_string("data", None, "Score this file instead (same format and fields as the "
                    "run's training data).")
flags.DEFINE_bool("baseline", True, "Also score the task's simple baselines (bag-of-words "
                  "classifier; copy-source and word-by-word translation; lead-N summary).")
FLAGS = flags.FLAGS


def write_tensorboard(log_dir, report, step):
    """Scalars of every numeric figure (`model/bleu`, `copy_source_baseline/bleu`, ...)
    and the model's examples as a text table."""
    import tensorflow as tf

    from kerlm.callbacks import write_examples

    with tf.summary.create_file_writer(log_dir).as_default(step=step):
        for who, metrics in report.items():
            for name, value in metrics.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    tf.summary.scalar(f"{who}/{name}", value)
        for key, examples in report["model"].items():  # "examples", "<task>/examples"
            if key.endswith("examples") and isinstance(examples, list) and examples:
                write_examples(*zip(*[(e["source"], e["reference"], e["output"])
                                      for e in examples]), name=key.replace("/", "_"))


def check_split(task, split):
    """Refuse a `--split` the task does not have, in one line listing its choices."""
    from kerlm.config import ConfigError

    choices = task.evaluation_splits()
    if split not in choices:
        raise ConfigError(f"--split={split}: the {task.name} task has no such split; choose "
                          f"from {', '.join(choices)}")


def main(_):
    from kerlm import tasks, training

    task = tasks.get_task(tasks.load_config(FLAGS.model_dir))
    if not FLAGS.data:
        check_split(task, FLAGS.split)  # before loading anything
    task.restore(FLAGS.model_dir)
    if FLAGS.data:
        records = task.read_file(FLAGS.data)
    else:
        records = task.read(FLAGS.split) or task.read("dev")
    report = {"model": task.evaluate(training.load_model(FLAGS.model_dir), records)}
    if FLAGS.baseline:
        report.update(task.baseline_reports(task.read("train"), records))
    name = "data" if FLAGS.data else FLAGS.split
    path = training.write_report(FLAGS.model_dir, f"{name}_metrics", report)
    write_tensorboard(os.path.join(FLAGS.model_dir, training.LOG_DIR, f"eval_{name}"), report,
                      training.trained_steps(FLAGS.model_dir))
    for who, metrics in report.items():
        print(f"{who:24s} {task.headline(metrics)}  ({metrics['num_examples']} examples)")
    if "confusion_matrix" in report["model"]:
        print(report["model"]["confusion_matrix"], "confusion matrix (rows: true)")
    print(f"Wrote {path}")


def run():
    kerlm_flags.run(main)


if __name__ == "__main__":
    run()
