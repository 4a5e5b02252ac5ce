"""Train a task; resume if `--model_dir` already holds a run; optionally export.

    python apps/train.py --flagfile=configs/sentiment.flags --model_dir=runs/sentiment \
        --export_dir=saved_models
"""

from absl import flags, logging

from kerlm.apps import config_flags
from kerlm.apps import flags as kerlm_flags

config_flags.define_config_flags()
kerlm_flags.define_model_dir()
flags.DEFINE_string("export_dir", None, "If set, export the trained model to "
                    "EXPORT_DIR/<task>/<version>/ (TF Serving's layout).")
flags.DEFINE_bool("force_export", False, "Export a new version even if the latest one under "
                  "EXPORT_DIR/<task>/ already holds this model (same weights, config and "
                  "vocabulary: the export's fingerprint).")
flags.DEFINE_integer("num_cpu_devices", 0, "Split the CPU into N logical devices (to try "
                     "--strategy=mirrored without GPUs).")
FLAGS = flags.FLAGS


def main(_):
    from kerlm import export, parameter_server, tasks, training

    training.configure_devices(FLAGS.num_cpu_devices)
    config, explicit = config_flags.config_from_flags()
    config, resuming = training.resolve_config(FLAGS.model_dir, config, explicit)
    if resuming:
        logging.info("Resuming the run in %s", FLAGS.model_dir)
    if config.train.mixed_precision != "float32":
        training.set_precision(config.train.mixed_precision)
    task = tasks.get_task(config)
    trainer = parameter_server.train if config.train.strategy == "parameter_server" else \
        training.train
    model = trainer(task, FLAGS.model_dir)
    if model is None:  # a worker of a cluster: the chief evaluates and exports
        return
    report = task.evaluate(model, task.read("dev"))
    training.write_report(FLAGS.model_dir, "dev_metrics", report)
    print(f"dev {task.headline(report)}")
    if FLAGS.export_dir:
        print(export.export_message(*export.export_if_changed(
            task, model, FLAGS.export_dir, force=FLAGS.force_export)))


def run():
    kerlm_flags.run(main)


if __name__ == "__main__":
    run()
