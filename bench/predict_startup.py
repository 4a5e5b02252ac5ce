"""Start-up time of `apps/predict.py` for one text, against the old path, and where it goes.

    python bench/predict_startup.py                       # trains a 60-step run first (~30 s)
    python bench/predict_startup.py --model_dir=runs/sentiment --repeats=7

Times, in fresh processes taking turns, the wall time of
`echo "great phone" | python apps/predict.py --model_dir=RUN --input_file=-` and of the
old path (what predict.py did before: the serving function traced for the one text, and
then also TensorBoard's hparams plugin imported with `kerlm.training`, now imported only
when training writes hparams); then one process's time per phase. Not run by
CI: the figures depend on the machine and its load (best and median are printed).
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEXT = "great phone\n"

# predict.py before the start-up work, as a script (the baseline).
OLD_PATH = r"""
import json, sys
from kerlm import tasks, training
task = tasks.restore_task(sys.argv[1])
texts = [line.rstrip("\n") for line in sys.stdin if line.strip()]
for text, answer in zip(texts, task.predict(training.load_model(sys.argv[1]), texts)):
    print(json.dumps({"text": text, **answer}))
"""

PHASES = r"""
import sys, time
start = last = time.perf_counter()
def lap(name):
    global last
    now = time.perf_counter()
    print(f"  {name:52s} {now - last:6.2f} s", flush=True)
    last = now
import tensorflow as tf; lap("import tensorflow")
import tensorflow_text; lap("import tensorflow_text (tokenizer ops)")
import keras_hub; lap("import keras_hub (kerlm.heads -> kerlm.generation)")
from kerlm import tasks, training; lap("import kerlm.tasks, kerlm.training")
task = tasks.restore_task(sys.argv[1]); lap("restore (vocabulary, labels)")
model = training.load_model(sys.argv[1]); lap("load model.keras")
task.predict(model, ["great phone"]); lap("first call, serving function traced")
tf.config.run_functions_eagerly(True)
task.predict(model, ["great phone"]); lap("the same call eagerly")
print(f"  {'total':52s} {time.perf_counter() - start:6.2f} s")
"""


def wall(argv, env=None):
    start = time.perf_counter()
    result = subprocess.run(argv, input=TEXT, capture_output=True, text=True, cwd=ROOT,
                            env={**os.environ, **(env or {})})
    seconds = time.perf_counter() - start
    if result.returncode != 0 or '"label"' not in result.stdout:
        sys.exit(f"{argv} failed:\n{result.stdout}\n{result.stderr[-3000:]}")
    return seconds


def tiny_run(directory):
    subprocess.run([sys.executable, "apps/train.py", "--model=encoder_tiny", "--train_steps=60",
                    "--sequence_length=64", f"--model_dir={directory}"], cwd=ROOT, check=True,
                   capture_output=True)
    return directory


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model_dir", help="a trained run (default: train a tiny one)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    model_dir = args.model_dir or tiny_run(os.path.join(tempfile.mkdtemp(), "run"))
    commands = {
        "old path (training.load_model, traced call)": [sys.executable, "-c", OLD_PATH, model_dir],
        "apps/predict.py": [sys.executable, "apps/predict.py", f"--model_dir={model_dir}",
                            "--input_file=-"],
    }
    times = {name: [] for name in commands}
    for _ in range(args.repeats):  # taking turns, so load changes hit both alike
        for name, argv in commands.items():
            times[name].append(wall(argv))
    print(f"one text, fresh process, {args.repeats} repeats, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f}:")
    for name, seconds in times.items():
        print(f"  {name:52s} best {min(seconds):5.2f} s  median {statistics.median(seconds):5.2f} s")
    print("phases, one process:")
    subprocess.run([sys.executable, "-c", PHASES, model_dir], cwd=ROOT, check=True,
                   stderr=subprocess.DEVNULL)


if __name__ == "__main__":
    main()
