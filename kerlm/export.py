"""Export a task's model as a SavedModel in TF Serving's `BASE/NAME/<version>/` layout."""

import os
import shutil
import uuid

import keras

from kerlm.serving import warmup


def next_version(model_base_path):
    """One more than the highest integer version directory under `model_base_path` (or 1)."""
    versions = [int(d) for d in os.listdir(model_base_path) if d.isdigit()] \
        if os.path.isdir(model_base_path) else []
    return max(versions, default=0) + 1


def _store_weights_once(archive):
    """Make `archive`'s variable collections list the `tf.Variable`s themselves.

    Keras 3.15's `track()` lists the `keras.Variable` wrappers while the endpoints capture
    the `tf.Variable`s inside them: two objects per weight, which the SavedModel checkpoint
    cannot de-duplicate, so every weight was stored (and loaded by TF Serving) twice
    (keras-team/keras#23553, open). The collections are replaced, not mutated in place:
    a tracked list edited in place refuses to save.
    """
    tracked = archive._tf_trackable  # noqa: SLF001 (the collections' owner; no public way)
    for name in ("variables", "trainable_variables", "non_trainable_variables"):
        setattr(tracked, name, [v.value if isinstance(v, keras.Variable) else v
                                for v in getattr(tracked, name)])


def export_task(task, model, export_dir, name=None):
    """Write `export_dir/NAME/<next version>/` atomically and return its path (NAME: the
    task's `export_name`, else its name).

    The SavedModel is first written to a hidden temporary directory beside the versions
    and renamed into place when complete, so TF Serving (which ignores non-integer
    directories) never sees a half-written version. Every export holds TF Serving's
    warm-up file, one request per signature (see `serving.warmup`), with the example
    inputs of the task's optional `warmup_inputs()` or default ones.
    """
    name = name or getattr(task, "export_name", task.name)
    base = os.path.join(export_dir, name)
    os.makedirs(base, exist_ok=True)
    functions, trackables = task.serving_functions(model)
    archive = keras.export.ExportArchive()
    for obj in [model, *trackables]:
        archive.track(obj)
    _store_weights_once(archive)
    for signature, fn in functions.items():
        archive.add_endpoint(signature, fn)
    tmp = os.path.join(base, f".tmp-{uuid.uuid4().hex}")
    try:
        archive.write_out(tmp, verbose=False)
        warmup_inputs = getattr(task, "warmup_inputs", None)
        warmup.write_requests(tmp, name, warmup_inputs() if warmup_inputs else None)
        while True:  # another exporter may have taken the version meanwhile
            path = os.path.join(base, str(next_version(base)))
            try:
                os.rename(tmp, path)
                return path
            except OSError:
                if not os.path.exists(path):
                    raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
