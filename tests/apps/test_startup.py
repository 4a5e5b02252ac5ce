"""The apps' start-up: TensorFlow's start-up noise silenced (kerlm/apps/__init__.py), a
user's TF_CPP_MIN_LOG_LEVEL kept, and predict's imports (no TensorBoard)."""

import json
import os
import subprocess
import sys
import textwrap

from conftest import ROOT

# The environment without the variable the tests' run_app sets: as a user's shell.
USER_ENV = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}


def python(code, env=None, stdin=None, timeout=300):
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], input=stdin,
                          capture_output=True, text=True, cwd=ROOT, timeout=timeout,
                          env=env or USER_ENV)


def test_apps_default_the_tf_log_level_and_keep_the_users():
    code = "import os, kerlm.apps; print(os.environ['TF_CPP_MIN_LOG_LEVEL'])"
    assert python(code).stdout == "3\n"
    assert python(code, env={**USER_ENV, "TF_CPP_MIN_LOG_LEVEL": "1"}).stdout == "1\n"


NOISY_MODULE = r'''
import os, sys
os.write(2, b"a line of its own\n"
            b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
            b"I0000 00:00:1796235174.652939    3751 port.cc:153] oneDNN custom operations are on.\n"
            b"I0000 00:00:1796235174.703271    3751 cpu_feature_guard.cc:227] This TensorFlow binary\n"
            b"To enable the following instructions: AVX2 FMA, rebuild TensorFlow.\n"
            b"E0000 00:00:1796235176.130060    3751 cuda_platform.cc:52] failed call to cuInit\n")
sys.stderr.write("noisy.py:3: UserWarning: a Python warning\n")
VALUE = 42
'''


def test_the_quiet_import_drops_log_lines_below_the_level_only(tmp_path):
    (tmp_path / "noisy.py").write_text(NOISY_MODULE)
    code = f"""
        import sys
        sys.path.insert(0, {str(tmp_path)!r})
        from kerlm.apps import QuietImportFinder
        sys.meta_path.insert(0, QuietImportFinder("noisy", int(sys.argv[1])))
        import noisy
        print(noisy.VALUE, noisy.__loader__.__class__.__name__, file=sys.stderr)
        """
    results = {level: subprocess.run([sys.executable, "-c", textwrap.dedent(code), str(level)],
                                     capture_output=True, text=True, cwd=ROOT, env=USER_ENV)
               for level in (2, 3)}
    assert results[3].stderr.splitlines() == [
        "a line of its own", "noisy.py:3: UserWarning: a Python warning",
        "42 SourceFileLoader"]  # the module's own loader is put back
    assert results[2].stderr.splitlines() == [
        "a line of its own",
        "E0000 00:00:1796235176.130060    3751 cuda_platform.cc:52] failed call to cuInit",
        "noisy.py:3: UserWarning: a Python warning",
        "42 SourceFileLoader"]


# predict.py as a user runs it (no TF_CPP_MIN_LOG_LEVEL), reporting what it imported.
PREDICT = """
    import atexit, runpy, sys
    atexit.register(lambda: print("imported:", sorted(
        m for m in ("tensorboard.plugins.hparams", "tensorflow") if m in sys.modules),
        file=sys.stderr))
    sys.argv = ["apps/predict.py", "--model_dir=" + sys.argv[1], "--input_file=-"]
    runpy.run_path("apps/predict.py", run_name="__main__")
    """


def test_predict_prints_no_tensorflow_start_up_lines_nor_imports_tensorboard(trained_run):
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(PREDICT),
                             trained_run["model_dir"]], input="great phone\n",
                            capture_output=True, text=True, cwd=ROOT, env=USER_ENV, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert [json.loads(line)["text"] for line in result.stdout.splitlines()] == ["great phone"]
    # nothing but the import report: no cuInit / CUDA / oneDNN / absl banner lines
    assert result.stderr.splitlines() == ["imported: ['tensorflow']"], result.stderr[-3000:]

