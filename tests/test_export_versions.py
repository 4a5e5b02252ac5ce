"""Export versions: no new version for an unchanged model (unless forced), abandoned
temporary directories removed by the next export."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from conftest import ROOT, TINY_RUN_FLAGS, run_app


def _versions(base):
    return sorted(os.listdir(base))


def _skipped_line(path):
    return (f"Export skipped: {path} holds this model (unchanged since); --force_export "
            "writes a new version")


def test_rerunning_a_finished_train_command_exports_nothing_new(trained_run, tmp_path):
    model_dir, export_dir = tmp_path / "model", tmp_path / "exports"
    shutil.copytree(trained_run["model_dir"], model_dir)
    shutil.copytree(trained_run["export_dir"], export_dir)
    result = run_app("train", *TINY_RUN_FLAGS, f"--model_dir={model_dir}",
                     f"--export_dir={export_dir}")
    assert result.stdout.splitlines()[-1] == _skipped_line(export_dir / "sentiment" / "1")
    assert _versions(export_dir / "sentiment") == ["1"]


def test_export_app_skips_the_model_train_exported_unless_forced(trained_run, tmp_path):
    export_dir = tmp_path / "exports"
    shutil.copytree(trained_run["export_dir"], export_dir)
    base = export_dir / "sentiment"
    args = [f"--model_dir={trained_run['model_dir']}", f"--export_dir={export_dir}"]
    # train.py's in-memory model and the model.keras export.py loads: the same fingerprint
    assert run_app("export", *args).stdout.splitlines() == [_skipped_line(base / "1")]
    assert run_app("export", *args, "--force_export").stdout.splitlines() == [
        f"Exported to {base / '2'}"]
    assert _versions(base) == ["1", "2"]
    fingerprints = [json.loads((base / v / "assets.extra" / "kerlm_fingerprint.json")
                               .read_text())["fingerprint"] for v in ("1", "2")]
    assert fingerprints[0] == fingerprints[1] and len(fingerprints[0]) == 64


def test_a_changed_model_is_a_new_version(trained_run, tmp_path):
    from kerlm import export, tasks, training
    task = tasks.restore_task(trained_run["model_dir"])
    model = training.load_model(trained_run["model_dir"])
    base = tmp_path / "sentiment"
    assert export.export_if_changed(task, model, str(tmp_path)) == (str(base / "1"), True)
    assert export.export_if_changed(task, model, str(tmp_path)) == (str(base / "1"), False)
    weight = model.weights[-1]
    weight.assign(weight + 1e-3)
    assert export.export_if_changed(task, model, str(tmp_path)) == (str(base / "2"), True)
    assert export.export_if_changed(task, model, str(tmp_path), name="other") == (
        str(tmp_path / "other" / "1"), True)  # another name: its own versions
    # a version without a fingerprint (an older kerlm's) is not taken for this model
    os.remove(base / "2" / export.FINGERPRINT_FILE)
    assert export.export_if_changed(task, model, str(tmp_path)) == (str(base / "3"), True)
    assert _versions(base) == ["1", "2", "3"]


# Temporary directories ----------------------------------------------------------------------
def _dead_pid():
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_stale_temporary_directories_are_removed_live_ones_kept(tmp_path):
    from kerlm import export
    host = export._host()  # noqa: SLF001
    dead, alive = _dead_pid(), os.getppid()  # pytest's parent runs as long as the test
    names = {"dead": f".tmp-{host}-{dead}-{'a' * 32}",
             "alive": f".tmp-{host}-{alive}-{'b' * 32}",
             "other_host": f".tmp-elsewhere-{dead}-{'c' * 32}",
             "old_kerlm": ".tmp-" + "d" * 32,
             "old_kerlm_hours_ago": ".tmp-" + "e" * 32,
             "version": "1", "notes": "notes"}
    for name in names.values():
        (tmp_path / name).mkdir()
        (tmp_path / name / "saved_model.pb").write_bytes(b"partial")
    hours_ago = time.time() - 2 * export.STALE_SECONDS
    os.utime(tmp_path / names["old_kerlm_hours_ago"], (hours_ago, hours_ago))
    removed = export.remove_stale_temporaries(str(tmp_path))
    assert sorted(removed) == sorted(str(tmp_path / names[k])
                                     for k in ("dead", "old_kerlm_hours_ago"))
    assert _versions(tmp_path) == sorted(names[k] for k in
                                         ("alive", "other_host", "old_kerlm", "version", "notes"))
    # hours later nothing is being written there any more: all temporaries go
    later = time.time() + 2 * export.STALE_SECONDS
    assert len(export.remove_stale_temporaries(str(tmp_path), now=later)) == 3
    assert _versions(tmp_path) == ["1", "notes"]


KILLED_EXPORTER = r"""
import os, signal, sys
from kerlm import export
path = export.temporary_directory(sys.argv[1])
os.makedirs(os.path.join(path, "variables"))  # half-written, as write_out leaves it
print(path, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs kill -9")
def test_the_next_export_removes_what_a_killed_exporter_left(trained_run, tmp_path):
    base = tmp_path / "exports" / "sentiment"
    base.mkdir(parents=True)
    killed = subprocess.run([sys.executable, "-c", KILLED_EXPORTER, str(base)],
                            capture_output=True, text=True, cwd=ROOT)
    assert killed.returncode == -signal.SIGKILL
    left = killed.stdout.strip()
    assert os.path.isdir(left) and os.path.basename(left).startswith(".tmp-")
    run_app("export", f"--model_dir={trained_run['model_dir']}",
            f"--export_dir={tmp_path / 'exports'}")
    assert _versions(base) == ["1"]
