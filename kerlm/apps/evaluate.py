"""Evaluate a trained run on its test (or dev) split, beside a bag-of-words baseline.

    python apps/evaluate.py --model_dir=runs/sentiment

Writes `MODEL_DIR/<split>_metrics.json` and prints the headline figures. All
hyper-parameters come from `MODEL_DIR/config.json`.
"""

import json

from absl import flags

from kerlm.apps import flags as kerlm_flags

kerlm_flags.define_model_dir()
flags.DEFINE_enum("split", "test", ["test", "dev"], "Which split of the run's data to score.")
flags.DEFINE_string("data", None, "Score this file instead (same format and fields as the "
                    "run's training data).")
flags.DEFINE_bool("baseline", True, "Also train and score the bag-of-words logistic "
                  "regression baseline on the same training data.")
FLAGS = flags.FLAGS


def main(_):
    from kerlm import baselines, config, data, tasks, training

    task = tasks.get_task(config.Config.load(FLAGS.model_dir))
    task.restore(FLAGS.model_dir)
    if FLAGS.data:
        records = data.readers.read_records(FLAGS.data, list(task.fields()),
                                            skip_bad_rows=task.config.data.skip_bad_rows)
    else:
        records = task.read(FLAGS.split) or task.read("dev")
    report = {"model": task.evaluate(training.load_model(FLAGS.model_dir), records)}
    if FLAGS.baseline:
        report["bag_of_words_baseline"] = baselines.bag_of_words_report(
            task, task.read("train"), records)
    name = "data" if FLAGS.data else FLAGS.split
    path = training.write_report(FLAGS.model_dir, f"{name}_metrics", report)
    for who, metrics in report.items():
        print(f"{who:24s} accuracy {metrics['accuracy']:.4f}  macro-F1 {metrics['macro_f1']:.4f}"
              f"  ({metrics['num_examples']} examples)")
    print(json.dumps(report["model"]["confusion_matrix"]), "confusion matrix (rows: true)")
    print(f"Wrote {path}")


def run():
    kerlm_flags.run(main)


if __name__ == "__main__":
    run()
