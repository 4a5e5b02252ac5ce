"""Train a kerlm task (see `kerlm/apps/train.py`; `--help` lists the flags)."""

from kerlm.apps.train import run

if __name__ == "__main__":
    run()
