"""Export a task's model as a SavedModel in TF Serving's `BASE/NAME/<version>/` layout.

* Versions are written to a hidden `.tmp-HOST-PID-ID` directory beside them and renamed into
  place when complete. A temporary directory whose exporter died (`kill -9`, a crash) is
  removed by the next export to the same `BASE/NAME`: one of a process of this host that no
  longer runs, or any older than `STALE_SECONDS` (another host's, or one of an older kerlm).
* Every version holds `assets.extra/kerlm_fingerprint.json`: a SHA-256 of what decides the
  SavedModel (see `fingerprint`). `export_if_changed` (what `apps/train.py --export_dir` and
  `apps/export.py` call) compares it with the latest version's and writes no new version
  for an unchanged model unless forced (`--force_export`).
"""

import hashlib
import json
import os
import re
import shutil
import socket
import time
import uuid

import keras
import numpy as np
from absl import logging

from kerlm.serving import warmup

FINGERPRINT_FILE = os.path.join("assets.extra", "kerlm_fingerprint.json")
# Part of the fingerprint: raise it when kerlm's export of the same model changes (new
# signatures or outputs), so that the next export writes a new version.
EXPORT_FORMAT = 1
STALE_SECONDS = 3600  # a temporary directory no live local process owns, older than this
_TMP_PREFIX = ".tmp-"
_TMP_NAME = re.compile(r"\.tmp-(?P<host>[A-Za-z0-9_.]+)-(?P<pid>\d+)-[0-9a-f]{32}")


def next_version(model_base_path):
    """One more than the highest integer version directory under `model_base_path` (or 1)."""
    return (latest_version(model_base_path) or 0) + 1


def latest_version(model_base_path):
    """The highest integer version directory under `model_base_path`, or None."""
    versions = [int(d) for d in os.listdir(model_base_path) if d.isdigit()] \
        if os.path.isdir(model_base_path) else []
    return max(versions, default=None)


# Temporary directories ----------------------------------------------------------------------
def _host():
    return re.sub(r"[^A-Za-z0-9_.]", "_", socket.gethostname()) or "localhost"


def temporary_directory(base):
    """A new temporary directory's path under `base`, naming this host and process."""
    return os.path.join(base, f"{_TMP_PREFIX}{_host()}-{os.getpid()}-{uuid.uuid4().hex}")


def _process_running(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def remove_stale_temporaries(base, now=None):
    """Remove the temporary directories under `base` that no exporter is writing: those of
    a process of this host that is not running, and any older than `STALE_SECONDS`.
    Returns the paths removed."""
    if not os.path.isdir(base):
        return []
    now = time.time() if now is None else now
    removed = []
    for entry in os.listdir(base):
        if not entry.startswith(_TMP_PREFIX):
            continue
        path = os.path.join(base, entry)
        try:
            age = now - os.stat(path).st_mtime
        except FileNotFoundError:  # renamed or removed by its exporter meanwhile
            continue
        owner = _TMP_NAME.fullmatch(entry)
        dead = bool(owner and owner["host"] == _host() and int(owner["pid"]) != os.getpid()
                    and not _process_running(int(owner["pid"])))
        if dead or age > STALE_SECONDS:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    if removed:
        logging.info("Removed %d abandoned temporary export directories: %s", len(removed),
                     ", ".join(removed))
    return removed


# Fingerprints -------------------------------------------------------------------------------
def _jsonable(value):
    """A JSON stand-in for config values json cannot write (arrays, bytes, dtypes...)."""
    if isinstance(value, (bytes, bytearray)):
        return hashlib.sha256(value).hexdigest()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def _without_names(value):
    """A config without its "name" entries: Keras numbers layer names per process
    (`classifier_1`), so the same model may carry other names in another run."""
    if isinstance(value, dict):
        return {k: _without_names(v) for k, v in value.items() if k != "name"}
    if isinstance(value, (list, tuple)):
        return [_without_names(v) for v in value]
    return value


def fingerprint(task, model, name, functions=None, trackables=None):
    """SHA-256 (hex) of what decides the export of `model` for `task` as `name`: the export
    format, the name, the signature names, the task's config, labels and warm-up inputs,
    the configs (layer names left out) and weights (dtype, shape, bytes, in order) of the
    model and of the objects the signatures use (tokenizers: their vocabulary).

    Equal for the model `apps/train.py` has in memory and the one `apps/export.py` loads
    from `model.keras`, and for a finished run trained again (which trains no further).
    """
    if functions is None:
        functions, trackables = task.serving_functions(model)
    digest = hashlib.sha256()

    def add(tag, data):
        if isinstance(data, str):
            data = data.encode("utf-8")
        elif not isinstance(data, bytes):
            data = json.dumps(data, sort_keys=True, default=_jsonable).encode("utf-8")
        digest.update(f"{tag}:{len(data)}:".encode())
        digest.update(data)

    add("format", EXPORT_FORMAT)
    add("name", name)
    add("signatures", sorted(functions))
    add("config", task.config.to_dict())
    add("assets", task.assets())
    add("warmup", task.warmup_inputs())
    for i, obj in enumerate([model, *(trackables or [])]):
        try:
            add(f"object{i}", _without_names(obj.get_config()))
        except (AttributeError, NotImplementedError, TypeError):
            add(f"object{i}", type(obj).__name__)
        weights = obj.weights if isinstance(obj, keras.layers.Layer) else \
            getattr(obj, "variables", ())
        for weight in weights:
            value = np.ascontiguousarray(keras.ops.convert_to_numpy(weight))
            add("weight", f"{value.dtype.str}{list(value.shape)}")
            digest.update(value.tobytes())
    return digest.hexdigest()


def stored_fingerprint(version_path):
    """The fingerprint a kerlm export stored in `version_path`, or None."""
    try:
        with open(os.path.join(version_path, FINGERPRINT_FILE)) as f:
            return json.load(f).get("fingerprint")
    except (OSError, ValueError, AttributeError):
        return None


# Export -------------------------------------------------------------------------------------
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


def _export_name(task, name):
    return name or task.export_name


def export_task(task, model, export_dir, name=None):
    """Write `export_dir/NAME/<next version>/` atomically and return its path (NAME: the
    task's `export_name`, else its name).

    The SavedModel is first written to a hidden temporary directory beside the versions
    and renamed into place when complete, so TF Serving (which ignores non-integer
    directories) never sees a half-written version; abandoned temporary directories are
    removed first (`remove_stale_temporaries`). Every export holds TF Serving's
    warm-up file, one request per signature (see `serving.warmup`), with the example
    inputs of the task's optional `warmup_inputs()` or default ones, and the model's
    `fingerprint` in `assets.extra/kerlm_fingerprint.json`.
    """
    name = _export_name(task, name)
    base = os.path.join(export_dir, name)
    os.makedirs(base, exist_ok=True)
    remove_stale_temporaries(base)
    return _write_version(task, model, base, name, *task.serving_functions(model))


def export_if_changed(task, model, export_dir, name=None, force=False):
    """`(path, True)` after `export_task` wrote a new version; `(path, False)` when the
    latest version under `export_dir/NAME` already holds this model (the same
    `fingerprint`) and `force` is False: then nothing is written."""
    name = _export_name(task, name)
    base = os.path.join(export_dir, name)
    os.makedirs(base, exist_ok=True)
    remove_stale_temporaries(base)
    functions, trackables = task.serving_functions(model)
    digest = fingerprint(task, model, name, functions, trackables)
    latest = latest_version(base)
    if not force and latest is not None:
        path = os.path.join(base, str(latest))
        if stored_fingerprint(path) == digest:
            return path, False
    return _write_version(task, model, base, name, functions, trackables, digest), True


def export_message(path, written):
    """The line the apps print for `export_if_changed`'s `(path, written)`."""
    if written:
        return f"Exported to {path}"
    return (f"Export skipped: {path} holds this model (unchanged since); --force_export "
            "writes a new version")


def _write_version(task, model, base, name, functions, trackables, digest=None):
    archive = keras.export.ExportArchive()
    for obj in [model, *trackables]:
        archive.track(obj)
    _store_weights_once(archive)
    for signature, fn in functions.items():
        archive.add_endpoint(signature, fn)
    tmp = temporary_directory(base)
    try:
        archive.write_out(tmp, verbose=False)
        warmup.write_requests(tmp, name, task.warmup_inputs())
        os.makedirs(os.path.join(tmp, os.path.dirname(FINGERPRINT_FILE)), exist_ok=True)
        with open(os.path.join(tmp, FINGERPRINT_FILE), "w") as f:
            json.dump({"fingerprint": digest or fingerprint(task, model, name, functions,
                                                            trackables),
                       "format": EXPORT_FORMAT}, f)
            f.write("\n")
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
