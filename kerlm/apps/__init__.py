"""Command-line programs; `apps/*.py` are thin shims that call their `run()`.

Importing this package (every app module does, before TensorFlow is imported) quiets
TensorFlow's start-up noise on stderr: the CUDA lines of a machine without a GPU ("Could not
find cuda drivers", "failed call to cuInit"), the oneDNN and CPU-instruction notices.

* `TF_CPP_MIN_LOG_LEVEL` defaults to 3 (`os.environ.setdefault`: a user's own value wins).
  3 is the level that hides the cuInit line, an ERROR; 1 and 2 leave it.
* TensorFlow ignores that variable for what it logs before `absl::InitializeLog()` (the
  "All log messages before absl::InitializeLog() ..." banner, oneDNN's "custom operations
  are on", "Could not find cuda drivers": INFO lines printed at every level). So while
  `tensorflow` is first imported, its stderr is caught and written back without the log
  lines below the level; anything else (a Python warning, an import error's output) is
  written back as it was when the import ends. A hard crash inside the import (an abort
  in C++) would lose what was caught: `TF_CPP_MIN_LOG_LEVEL=0` shows everything and
  catches nothing.
"""

import contextlib
import importlib.abc
import importlib.util
import os
import re
import sys
import tempfile

DEFAULT_TF_LOG_LEVEL = "3"

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", DEFAULT_TF_LOG_LEVEL)

_SEVERITIES = "IWEF"  # absl/glog: INFO, WARNING, ERROR, FATAL = TF_CPP_MIN_LOG_LEVEL 0..3
_LOG_LINE = re.compile(r"[IWEF]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [^\]]*\] ")
_PYTHON_WARNING = re.compile(r"\S.*:\d+: \w*Warning: ")
_BANNER = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"


def tf_log_level():
    """The level `TF_CPP_MIN_LOG_LEVEL` asks for (0 if unset or not a number)."""
    try:
        return max(0, min(3, int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))))
    except ValueError:
        return 0


def filter_startup_log(text, level):
    """`text` (stderr of an import) without the absl log lines below `level` and their
    continuation lines, nor absl's banner when `level` > 0; other lines are kept.

    >>> print(filter_startup_log(
    ...     "I0000 00:00:1.5    7 cpu_feature_guard.cc:227] This TensorFlow binary is ...\\n"
    ...     "To enable the following instructions: AVX2 FMA, ...\\n"
    ...     "E0000 00:00:1.6    7 cuda_platform.cc:52] failed call to cuInit: ...\\n"
    ...     "x.py:3: UserWarning: kept\\n", 2), end="")
    E0000 00:00:1.6    7 cuda_platform.cc:52] failed call to cuInit: ...
    x.py:3: UserWarning: kept
    """
    kept, dropping = [], False
    for line in text.splitlines(keepends=True):
        if _LOG_LINE.match(line):
            dropping = _SEVERITIES.index(line[0]) < level
        elif line.rstrip("\r\n") == _BANNER:
            if level > 0:
                continue
        elif _PYTHON_WARNING.match(line):
            dropping = False  # a new message, not the continuation of a dropped log line
        if not dropping:
            kept.append(line)
    return "".join(kept)


@contextlib.contextmanager
def filtered_stderr(level):
    """Catch what is written to file descriptor 2 inside the block (C++ code included) and
    write it back through `filter_startup_log(..., level)` at its end."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no usable stderr: nothing to filter
        yield
        return
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            yield
        finally:
            try:
                sys.stderr.flush()
            except (OSError, ValueError, AttributeError):
                pass
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            kept = filter_startup_log(caught.read().decode("utf-8", "replace"), level)
            data = kept.encode("utf-8", "replace")
            while data:
                data = data[os.write(2, data):]


class _FilteredLoader(importlib.abc.Loader):
    """Runs a module's loader inside `filtered_stderr`, then puts the loader back."""

    def __init__(self, loader, level):
        self.loader, self.level = loader, level

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        module.__loader__ = module.__spec__.loader = self.loader
        with filtered_stderr(self.level):
            self.loader.exec_module(module)


class QuietImportFinder(importlib.abc.MetaPathFinder):
    """A `sys.meta_path` entry that loads the top-level module `name` (once) with its
    stderr filtered at `level`; every other import passes it by."""

    def __init__(self, name, level):
        self.name, self.level = name, level

    def find_spec(self, fullname, path=None, target=None):
        if fullname != self.name:
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)  # once, and not again for the lookup below
        spec = importlib.util.find_spec(fullname)
        if spec is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _FilteredLoader(spec.loader, self.level)
        return spec


if tf_log_level() > 0 and "tensorflow" not in sys.modules:
    sys.meta_path.insert(0, QuietImportFinder("tensorflow", tf_log_level()))

