"""Evaluate a trained kerlm run (see `kerlm/apps/evaluate.py`; `--help` lists the flags)."""

from kerlm.apps.evaluate import run

if __name__ == "__main__":
    run()
