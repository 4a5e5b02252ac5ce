"""Command-line programs; `apps/*.py` are thin shims that call their `run()`."""
