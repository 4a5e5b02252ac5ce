"""Serving latency: the exported SavedModel (fresh process) against the in-process Keras model.

1. Trains a throw-away sentiment run (`encoder_tiny`, 2 steps; weights don't matter for
   latency) with `apps/train.py` in a subprocess and exports it (skipped with --run_dir).
2. In this process: loads the run as the apps do (`tasks.restore_task(d)`,
   `training.load_model(d)`) and times the same serving `tf.function` the
   export uses, `task.serving_functions(model)["serving_default"](tf.constant(texts))`:
   tokenizer + model on raw strings in one graph. Also, for reference, `task.predict` (the
   Keras `model.predict` loop the apps use).
3. In a fresh subprocess that imports only `tensorflow` and `tensorflow_text`: times the
   imports, `tf.saved_model.load`, the first call, then
   `loaded.signatures["serving_default"](text=...)`.

Batches are real test sentences of the embedded UCI sentiment data (batch 1: one sentence per
call, cycling; batch 32: consecutive sentences). After warm-up, timed calls run in chunks
that alternate between the in-process function and the subprocess, so load from other
processes on this 2-core machine hits both alike. Reports median and p90 per call.

    python bench/export_latency.py [--calls 60] [--batch_sizes 1,32] [--run_dir DIR]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The fresh serving process: tensorflow + tensorflow_text only. Reads JSON commands on stdin
# ({"batch": B, "start": I, "calls": N}) and answers one JSON line of per-call seconds.
SERVER = r'''
import json, os, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
t0 = time.perf_counter()
import tensorflow as tf
t1 = time.perf_counter()
import tensorflow_text  # noqa: F401  (registers the tokenizer ops)
t2 = time.perf_counter()
export_path, texts_path = sys.argv[1], sys.argv[2]
texts = json.load(open(texts_path))
loaded = tf.saved_model.load(export_path)
serve = loaded.signatures["serving_default"]
t3 = time.perf_counter()
first = serve(text=tf.constant(texts[:1]))
first["label"].numpy()
t4 = time.perf_counter()
print(json.dumps({"import_tensorflow_s": t1 - t0, "import_tensorflow_text_s": t2 - t1,
                  "load_s": t3 - t2, "first_call_s": t4 - t3,
                  "keras_imported": "keras" in sys.modules,
                  "kerlm_imported": any(m.startswith("kerlm") for m in sys.modules)}),
      flush=True)
for line in sys.stdin:
    cmd = json.loads(line)
    times = []
    for i in range(cmd["calls"]):
        start = (cmd["start"] + i) * cmd["batch"]
        batch = [texts[(start + j) % len(texts)] for j in range(cmd["batch"])]
        t = time.perf_counter()
        out = serve(text=tf.constant(batch))
        out["probabilities"].numpy()
        times.append(time.perf_counter() - t)
    print(json.dumps(times), flush=True)
'''


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=60,
                        help="Timed calls per batch size and path.")
    parser.add_argument("--warmup", type=int, default=5, help="Untimed calls per batch size.")
    parser.add_argument("--chunks", type=int, default=3,
                        help="Alternate in-process / exported in this many chunks of calls.")
    parser.add_argument("--batch_sizes", default="1,32")
    parser.add_argument("--run_dir", default=None,
                        help="An existing trained + exported sentiment run to reuse (its "
                             "exports/ subfolder or --export_path must hold the SavedModel).")
    parser.add_argument("--export_path", default=None, help="SavedModel directory (version dir).")
    parser.add_argument("--model", default="encoder_tiny", help="Preset of the throw-away run.")
    parser.add_argument("--no_predict", action="store_true",
                        help="Skip the task.predict (Keras predict loop) reference rows.")
    return parser.parse_args(argv)


def train_run(run_dir, model):
    cmd = [sys.executable, os.path.join(REPO, "apps", "train.py"), "--task=sentiment",
           f"--model={model}", "--train_steps=2", f"--model_dir={run_dir}",
           f"--export_dir={os.path.join(run_dir, 'exports')}"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"training failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n"
                 f"{proc.stderr[-3000:]}")
    print(f"trained + exported a throw-away {model} run in {time.perf_counter() - start:.1f} s",
          flush=True)


def find_export(run_dir):
    base = os.path.join(run_dir, "exports", "sentiment")
    versions = sorted((int(d) for d in os.listdir(base) if d.isdigit()), reverse=True)
    if not versions:
        sys.exit(f"no exported version under {base}")
    return os.path.join(base, str(versions[0]))


def batch_of(texts, batch, index):
    start = index * batch
    return [texts[(start + j) % len(texts)] for j in range(batch)]


def stats(seconds):
    ms = np.asarray(seconds) * 1e3
    return dict(calls=int(ms.size), median_ms=round(float(np.median(ms)), 2),
                p90_ms=round(float(np.percentile(ms, 90)), 2),
                mean_ms=round(float(ms.mean()), 2), min_ms=round(float(ms.min()), 2))


def main(argv=None):
    args = parse_args(argv)
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    tmp = None
    if args.run_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="kerlm_export_latency_")
        args.run_dir = tmp.name
        train_run(args.run_dir, args.model)
    export_path = args.export_path or find_export(args.run_dir)

    import tensorflow as tf
    from kerlm import tasks, training
    from kerlm.data import uci_sentiment

    texts = [r.fields["text"] for r in uci_sentiment.load("test")]
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(texts, f)
        texts_path = f.name
    print(f"{len(texts)} test sentences, mean {np.mean([len(t.split()) for t in texts]):.1f} "
          f"words; SavedModel {export_path}", flush=True)

    # In-process: the serving tf.function the export is made of.
    start = time.perf_counter()
    task = tasks.restore_task(args.run_dir)
    model = training.load_model(args.run_dir)
    serve = task.serving_functions(model)[0]["serving_default"]
    load_in_process = time.perf_counter() - start

    def call_in_process(batch):
        out = serve(tf.constant(batch))
        out["probabilities"].numpy()

    # The fresh serving process.
    server = subprocess.Popen([sys.executable, "-c", SERVER, export_path, texts_path],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                              cwd=tempfile.gettempdir())
    fresh_start = time.perf_counter()
    header = json.loads(server.stdout.readline())
    header["process_start_to_ready_s"] = time.perf_counter() - fresh_start

    def call_server(batch, start, calls):
        server.stdin.write(json.dumps({"batch": batch, "start": start, "calls": calls}) + "\n")
        server.stdin.flush()
        return json.loads(server.stdout.readline())

    results = []
    try:
        for batch in batch_sizes:
            for i in range(args.warmup):
                call_in_process(batch_of(texts, batch, i))
            call_server(batch, 0, args.warmup)
            if not args.no_predict:
                for i in range(2):
                    task.predict(model, batch_of(texts, batch, i))
            timed = {"in_process": [], "export": [], "predict": []}
            per_chunk = -(-args.calls // args.chunks)
            for chunk in range(args.chunks):
                first = args.warmup + chunk * per_chunk
                for i in range(first, first + per_chunk):
                    b = batch_of(texts, batch, i)
                    t = time.perf_counter()
                    call_in_process(b)
                    timed["in_process"].append(time.perf_counter() - t)
                timed["export"] += call_server(batch, first, per_chunk)
                if not args.no_predict:
                    for i in range(first, first + max(per_chunk // 3, 1)):
                        b = batch_of(texts, batch, i)
                        t = time.perf_counter()
                        task.predict(model, b)
                        timed["predict"].append(time.perf_counter() - t)
            for path, seconds in timed.items():
                if seconds:
                    results.append(dict(path=path, batch=batch, **stats(seconds)))
            print(f"batch {batch}: done", flush=True)
    finally:
        server.stdin.close()
        server.wait(timeout=60)
        os.unlink(texts_path)

    by = {(r["path"], r["batch"]): r for r in results}
    for r in results:
        base = by[("in_process", r["batch"])]
        r["ratio_vs_in_process"] = round(r["median_ms"] / base["median_ms"], 3)
        r["per_example_ms"] = round(r["median_ms"] / r["batch"], 3)

    names = {"in_process": "in-process serving tf.function (kerlm + Keras)",
             "export": "exported SavedModel, fresh process (TF + TF Text only)",
             "predict": "in-process task.predict (Keras predict loop, reference)"}
    print()
    header_row = ["path", "batch", "median ms", "p90 ms", "ms/example", "÷ in-process",
                  "calls"]
    lines = [header_row]
    for r in sorted(results, key=lambda r: (r["batch"], list(names).index(r["path"]))):
        lines.append([names[r["path"]], str(r["batch"]), f"{r['median_ms']:.2f}",
                      f"{r['p90_ms']:.2f}", f"{r['per_example_ms']:.2f}",
                      f"{r['ratio_vs_in_process']:.2f}", str(r["calls"])])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header_row))]
    for i, line in enumerate(lines):
        print("  ".join(c.ljust(w) if j == 0 else c.rjust(w)
                        for j, (c, w) in enumerate(zip(line, widths))))
        if i == 0:
            print("  ".join("-" * w for w in widths))
    print(f"\nfresh process: import tensorflow {header['import_tensorflow_s']:.2f} s, "
          f"import tensorflow_text {header['import_tensorflow_text_s']:.2f} s, "
          f"tf.saved_model.load {header['load_s']:.2f} s, first call "
          f"{header['first_call_s'] * 1e3:.0f} ms (process start → ready "
          f"{header['process_start_to_ready_s']:.2f} s; keras imported: "
          f"{header['keras_imported']}, kerlm imported: {header['kerlm_imported']})")
    print(f"in-process: task + model load {load_in_process:.2f} s (kerlm already imported)")
    print(json.dumps({"benchmark": "export_latency", "config": vars(args),
                      "export_path": export_path, "fresh_process": header,
                      "in_process_load_s": load_in_process, "results": results}))
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
