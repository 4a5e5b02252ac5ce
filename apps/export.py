"""Run kerlm's export app (see `kerlm/apps/export.py`; `--help` lists the flags)."""

from kerlm.apps.export import run

if __name__ == "__main__":
    run()
