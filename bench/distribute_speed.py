"""Training throughput per `--strategy` and with / without XLA, through the real app.

    python bench/distribute_speed.py                       # strategies, then XLA per task
    python bench/distribute_speed.py --part strategies --steps 60
    python bench/distribute_speed.py --part xla --tasks sentiment,causal_lm

Part `strategies`: one recipe (`encoder_small` sentiment classifier, sequence 128, global
batch 32, float32) under `default` (the baseline), `one_device`, `mirrored` (2 logical CPU
devices), `multi_worker_mirrored` with 1, 2 and 3 local workers (kerlm.local_cluster) and
`parameter_server` (chief + 2 workers + 1 ps), alternating the order over `--repeats`.
Every process shares this machine's cores, so the figures are each strategy's overhead
over `default`, not the speed-up of real machines. Part `xla`: each task on its tiny preset
with `--jit_compile` off and on.

Figures: real tokens/s and ms per step from the app's own log lines (the first line is
left out: it holds the first step's tracing and compilation). Ends with a JSON line.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from kerlm import local_cluster  # noqa: E402

TRAIN = [sys.executable, os.path.join(ROOT, "apps", "train.py")]
RECIPE = ["--task=sentiment", "--model=encoder_small", "--sequence_length=128",
          "--batch_size=32", "--learning_rate=1e-3", "--dropout=0.1", "--seed=1",
          "--checkpoint_every_steps=0"]
# (name, flags, cluster: workers, ps) per strategy row
STRATEGIES = [
    ("default", ["--strategy=default"], None),
    ("one_device", ["--strategy=one_device"], None),
    ("mirrored, 2 CPU devices", ["--strategy=mirrored", "--num_cpu_devices=2"], None),
    ("multi_worker_mirrored, 1 worker", ["--strategy=multi_worker_mirrored"], None),
    ("multi_worker_mirrored, 2 workers", ["--strategy=multi_worker_mirrored"], (2, 0)),
    ("multi_worker_mirrored, 3 workers", ["--strategy=multi_worker_mirrored",
                                          "--batch_size=33"], (3, 0)),
    ("parameter_server, 2 workers + 1 ps", ["--strategy=parameter_server"], (2, 1)),
]
TASKS = {  # tiny presets; each task's own data
    "sentiment": ["--task=sentiment", "--model=encoder_tiny", "--sequence_length=64"],
    "qa": ["--task=qa", "--model=encoder_tiny", "--sequence_length=128", "--doc_stride=64"],
    "masked_lm": ["--task=masked_lm", "--model=encoder_tiny", "--sequence_length=128"],
    "causal_lm": ["--task=causal_lm", "--model=decoder_tiny", "--sequence_length=128"],
    "sentence_embedding": ["--task=sentence_embedding", "--model=encoder_tiny",
                           "--sequence_length=64"],
    "translation": ["--task=translation", "--model=encoder_decoder_tiny",
                    "--sequence_length=64"],
    "summarization": ["--task=summarization", "--model=encoder_decoder_tiny",
                      "--sequence_length=64"],
    "span_corruption": ["--task=span_corruption", "--model=encoder_decoder_tiny",
                        "--sequence_length=128"],
}
LINE = re.compile(r"step (\d+)/\d+  loss \S+  lr \S+  (\d+) tokens/s")


def _tokens_per_sec(log):
    """Mean real tokens/s of the log lines after the first."""
    lines = [int(t) for _, t in LINE.findall(log)][1:]
    if not lines:
        raise RuntimeError(f"no step lines in the log:\n{log[-2000:]}")
    return statistics.mean(lines)


def _ms_per_step(log):
    """ms per step from the timestamps of the absl lines (after the first)."""
    stamps = re.findall(r"^I\d{4} (\d\d):(\d\d):(\d\d\.\d+) .*step (\d+)/\d+  loss", log, re.M)
    points = [(int(s), int(h) * 3600 + int(m) * 60 + float(sec)) for h, m, sec, s in stamps][1:]
    if len(points) < 2:
        return float("nan")
    return 1000 * (points[-1][1] - points[0][1]) / (points[-1][0] - points[0][0])


def run(flags, steps, cluster=None, workdir=None):
    """Train `steps` steps with `flags`; return (tokens/s, ms per step)."""
    model_dir = tempfile.mkdtemp(dir=workdir)
    args = [*flags, f"--train_steps={steps}", f"--log_every_steps={max(steps // 6, 1)}",
            f"--model_dir={model_dir}"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    if cluster is None:
        result = subprocess.run([*TRAIN, *args], capture_output=True, text=True, env=env)
        if result.returncode:
            raise RuntimeError(result.stderr[-3000:])
        log = result.stderr
    else:
        workers, ps = cluster
        spec = local_cluster.cluster_spec(workers, ps, chief=bool(ps))
        logs = tempfile.mkdtemp(dir=workdir)
        tasks = local_cluster.Cluster([*TRAIN, *args], spec, logs, env)
        try:
            codes = tasks.wait(timeout=1800)
        finally:
            tasks.stop()
        chief = "chief0" if ps else "worker0"
        log = tasks.log(chief)
        if any(codes.values()):
            raise RuntimeError(f"{codes}\n{log[-3000:]}")
    return _tokens_per_sec(log), _ms_per_step(log)


def strategies(steps, repeats, workdir):
    results = {name: [] for name, _, _ in STRATEGIES}
    for repeat in range(repeats):
        order = STRATEGIES if repeat % 2 == 0 else STRATEGIES[::-1]
        for name, flags, cluster in order:
            results[name].append(run([*RECIPE, *flags], steps, cluster, workdir))
            print(f"  {name}: {results[name][-1][0]:.0f} tokens/s, "
                  f"{results[name][-1][1]:.0f} ms/step", flush=True)
    best = {name: max(runs) for name, runs in results.items()}
    base = best["default"]
    print(f"\n{'strategy':<38}{'tokens/s':>10}{'ms/step':>10}{'vs default':>12}")
    for name, (tokens, ms) in best.items():
        print(f"{name:<38}{tokens:>10.0f}{ms:>10.0f}{tokens / base[0]:>12.2f}")
    return {name: {"tokens_per_sec": round(t), "ms_per_step": round(ms, 1),
                   "ratio_to_default": round(t / base[0], 3)} for name, (t, ms) in best.items()}


def xla(tasks, steps, workdir):
    out = {}
    print(f"\n{'task':<22}{'eager tok/s':>12}{'XLA tok/s':>12}{'XLA / eager':>13}")
    for task in tasks:
        flags = [*TASKS[task], "--batch_size=32", "--seed=1", "--checkpoint_every_steps=0",
                 "--validation_interval=100000"]
        off = run([*flags, "--jit_compile=false"], steps, None, workdir)
        on = run([*flags, "--jit_compile=true"], steps, None, workdir)
        out[task] = {"eager_tokens_per_sec": round(off[0]), "xla_tokens_per_sec": round(on[0]),
                     "ratio": round(on[0] / off[0], 3)}
        print(f"{task:<22}{off[0]:>12.0f}{on[0]:>12.0f}{on[0] / off[0]:>13.2f}", flush=True)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=["strategies", "xla", "both"], default="both")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--tasks", default=",".join(TASKS))
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="kerlm-distribute-speed-")
    report = {}
    if args.part in ("strategies", "both"):
        report["strategies"] = strategies(args.steps, args.repeats, workdir)
    if args.part in ("xla", "both"):
        report["xla"] = xla(args.tasks.split(","), args.steps, workdir)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
