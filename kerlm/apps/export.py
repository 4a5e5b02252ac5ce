"""Export a trained run as a SavedModel: `EXPORT_DIR/<model_name>/<next version>/`.

    python apps/export.py --model_dir=runs/sentiment --export_dir=saved_models

Writes no new version when the latest one already holds this model (its fingerprint in
`assets.extra/kerlm_fingerprint.json` is this model's; see `kerlm.export`) and says so in
one line; `--force_export` writes one anyway.
"""

from absl import flags

from kerlm.apps import flags as kerlm_flags

kerlm_flags.define_model_dir()
flags.DEFINE_string("export_dir", "saved_models", "Base directory of TF Serving's layout.")
flags.DEFINE_string("model_name", None, "Name of the served model (default: the task name).")
flags.DEFINE_bool("force_export", False, "Export a new version even if the latest one "
                  "already holds this model (same weights, config and vocabulary).")
FLAGS = flags.FLAGS


def main(_):
    from kerlm import export, tasks, training

    task = tasks.restore_task(FLAGS.model_dir)
    print(export.export_message(*export.export_if_changed(
        task, training.load_model(FLAGS.model_dir), FLAGS.export_dir, name=FLAGS.model_name,
        force=FLAGS.force_export)))


def run():
    kerlm_flags.run(main)


if __name__ == "__main__":
    run()
