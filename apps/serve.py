"""Run kerlm's gRPC + REST model server (see `kerlm/apps/serve.py`; `--help` lists the flags)."""

from kerlm.apps.serve import run

if __name__ == "__main__":
    run()
