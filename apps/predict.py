"""Run kerlm's predict app (see `kerlm/apps/predict.py`; `--help` lists the flags)."""

from kerlm.apps.predict import run

if __name__ == "__main__":
    run()
