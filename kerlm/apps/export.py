"""Export a trained run as a SavedModel: `EXPORT_DIR/<model_name>/<next version>/`.

    python apps/export.py --model_dir=runs/sentiment --export_dir=saved_models
"""

from absl import flags

from kerlm.apps import flags as kerlm_flags

kerlm_flags.define_model_dir()
flags.DEFINE_string("export_dir", "saved_models", "Base directory of TF Serving's layout.")
flags.DEFINE_string("model_name", None, "Name of the served model (default: the task name).")
FLAGS = flags.FLAGS


def main(_):
    from kerlm import config, export, tasks, training

    task = tasks.get_task(config.Config.load(FLAGS.model_dir))
    task.restore(FLAGS.model_dir)
    path = export.export_task(task, training.load_model(FLAGS.model_dir), FLAGS.export_dir,
                              name=FLAGS.model_name)
    print(f"Exported to {path}")


def run():
    kerlm_flags.run(main)


if __name__ == "__main__":
    run()
