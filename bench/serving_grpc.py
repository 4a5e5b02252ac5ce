"""gRPC serving: 16 clients with and without batching; first request with and without warm-up.

1. Trains a throw-away sentiment run (`encoder_tiny`, 2 steps; weights don't matter for
   speed) with `apps/train.py` and exports it (skipped with --export_base). Every kerlm
   export carries `assets.extra/tf_serving_warmup_requests`.
2. Throughput: starts two `apps/serve.py` processes on the export, one plain and one with
   `--enable_batching` (TF Serving's default parameters unless --batching_parameters_file),
   then runs --rounds rounds that alternate between them. In a round, --clients threads
   each send Predict requests one after another for --seconds; each request holds one real
   test sentence. Reports requests/s and p50/p99 latency per server, and the mean number of
   requests per merged call (from the batching server's `--v=1` log).
3. First request: starts fresh server processes, --starts times each, alternating between
   the export and a copy of it without the warm-up file. Times process start → ready
   (GetModelStatus answers), the first Predict and the median of the next 20.

The clients use grpcio and tensorflow-serving-api only, in this process; the servers share
the 2 cores with them.

    python bench/serving_grpc.py [--clients 16] [--seconds 10] [--rounds 3] [--starts 3]
"""

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import grpc  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow_serving.apis import (get_model_status_pb2, model_service_pb2_grpc,  # noqa: E402
                                     predict_pb2, prediction_service_pb2_grpc)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=16, help="Concurrent client threads.")
    parser.add_argument("--seconds", type=float, default=10, help="Length of a timed round.")
    parser.add_argument("--rounds", type=int, default=3, help="Timed rounds per server.")
    parser.add_argument("--starts", type=int, default=3,
                        help="Fresh server starts with and without the warm-up file, each "
                             "(0: skip that part).")
    parser.add_argument("--batching_parameters_file", default=None,
                        help="For the batching server (default: TF Serving's defaults).")
    parser.add_argument("--export_base", default=None,
                        help="An existing sentiment export (the directory of the versions).")
    parser.add_argument("--model", default="encoder_tiny", help="Preset of the throw-away run.")
    return parser.parse_args(argv)


def train_run(run_dir, model):
    """A throw-away sentiment run exported under RUN_DIR/exports (export_latency's)."""
    from export_latency import train_run as train_and_export  # bench/ is on sys.path

    train_and_export(run_dir, model)
    return os.path.join(run_dir, "exports", "sentiment")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """An apps/serve.py process serving `base` as "sentiment" over gRPC only."""

    def __init__(self, base, log_path, *flags):
        self.port, self.log_path = free_port(), log_path
        self.started = time.perf_counter()
        with open(log_path, "w") as log:
            self.process = subprocess.Popen(
                [sys.executable, os.path.join(REPO, "apps", "serve.py"), "--model_name=sentiment",
                 f"--model_base_path={base}", f"--port={self.port}", "--rest_api_port=0",
                 *flags], cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
        self.stub = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)

    def wait_ready(self, timeout=300):
        """Seconds from process start until GetModelStatus answers."""
        status = model_service_pb2_grpc.ModelServiceStub(self.channel)
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = "sentiment"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                sys.exit(f"server exited:\n{open(self.log_path).read()[-3000:]}")
            try:
                status.GetModelStatus(request, timeout=1)
                return time.perf_counter() - self.started
            except grpc.RpcError:
                time.sleep(0.05)
        sys.exit(f"server not ready after {timeout} s")

    def stop(self):
        self.channel.close()
        self.process.terminate()
        self.process.wait(timeout=30)


def make_request(text):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "sentiment"
    request.inputs["text"].CopyFrom(tf.make_tensor_proto([text]))
    return request


def load_round(stub, requests, clients, seconds):
    """Each client sends requests one after another for `seconds`; returns latencies (s)."""
    latencies = [[] for _ in range(clients)]
    errors = []
    barrier = threading.Barrier(clients + 1)
    stop_at = []

    def client(c):
        barrier.wait()
        i = c
        while time.perf_counter() < stop_at[0]:
            start = time.perf_counter()
            try:
                stub.Predict(requests[i % len(requests)], timeout=60)
            except grpc.RpcError as e:
                errors.append(e)
            latencies[c].append(time.perf_counter() - start)
            i += clients

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for thread in threads:
        thread.start()
    stop_at.append(time.perf_counter() + seconds)
    begin = time.perf_counter()
    barrier.wait()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - begin
    if errors:
        sys.exit(f"{len(errors)} failed requests, e.g. {errors[0]}")
    return [x for per_client in latencies for x in per_client], elapsed


def merged_calls(log_path):
    return [int(n) for n in re.findall(r"Ran (\d+) requests", open(log_path).read())]


def throughput(base, requests, args, tmp):
    batching = ["--enable_batching", "--v=1"]
    if args.batching_parameters_file:
        batching.append(f"--batching_parameters_file={args.batching_parameters_file}")
    servers = {"plain": Server(base, os.path.join(tmp, "plain.log")),
               "batching": Server(base, os.path.join(tmp, "batching.log"), *batching)}
    try:
        for server in servers.values():
            server.wait_ready()
        for server in servers.values():  # untimed: connections, thread pools
            load_round(server.stub, requests, args.clients, 2)
        merged_before = len(merged_calls(servers["batching"].log_path))
        timed = {name: {"latencies": [], "requests": 0, "seconds": 0.0} for name in servers}
        for r in range(args.rounds):
            order = list(servers) if r % 2 == 0 else list(servers)[::-1]
            for name in order:
                latencies, elapsed = load_round(servers[name].stub, requests, args.clients,
                                                args.seconds)
                timed[name]["latencies"] += latencies
                timed[name]["requests"] += len(latencies)
                timed[name]["seconds"] += elapsed
                print(f"round {r + 1} {name}: {len(latencies) / elapsed:.0f} req/s", flush=True)
        merged = merged_calls(servers["batching"].log_path)[merged_before:]
    finally:
        for server in servers.values():
            server.stop()
    results = {}
    for name, t in timed.items():
        ms = np.asarray(t["latencies"]) * 1e3
        results[name] = dict(requests=t["requests"],
                             req_per_s=round(t["requests"] / t["seconds"], 1),
                             p50_ms=round(float(np.percentile(ms, 50)), 2),
                             p99_ms=round(float(np.percentile(ms, 99)), 2))
    batched = sum(merged)
    results["batching"]["merged_calls"] = len(merged)
    results["batching"]["requests_per_call"] = round(
        results["batching"]["requests"] / (len(merged) + results["batching"]["requests"]
                                           - batched), 2)
    return results


def first_requests(bases, requests, starts, tmp):
    """Per export: [{ready_s, first_ms, next_median_ms}] over fresh server processes."""
    results = {name: [] for name in bases}
    for s in range(starts):
        for name in (list(bases) if s % 2 == 0 else list(bases)[::-1]):
            server = Server(bases[name], os.path.join(tmp, f"{name}-{s}.log"))
            try:
                ready = server.wait_ready()
                times = []
                for request in requests[:21]:
                    start = time.perf_counter()
                    server.stub.Predict(request, timeout=60)
                    times.append(time.perf_counter() - start)
                log = open(server.log_path).read()
            finally:
                server.stop()
            warmup = re.search(r"replayed (\d+) requests in ([\d.]+) ms", log)
            results[name].append(dict(
                ready_s=round(ready, 2), first_ms=round(times[0] * 1e3, 1),
                next_median_ms=round(float(np.median(times[1:])) * 1e3, 2),
                warmup_ms=float(warmup.group(2)) if warmup else None))
            print(f"start {s + 1} {name}: ready {ready:.2f} s, first request "
                  f"{times[0] * 1e3:.1f} ms", flush=True)
    return results


def print_table(header, rows):
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    for i, row in enumerate([header, *rows]):
        print("  ".join(str(c).ljust(w) if j == 0 else str(c).rjust(w)
                        for j, (c, w) in enumerate(zip(row, widths))))
        if i == 0:
            print("  ".join("-" * w for w in widths))


def main(argv=None):
    args = parse_args(argv)
    tmp = tempfile.mkdtemp(prefix="kerlm_serving_grpc_")
    base = args.export_base or train_run(os.path.join(tmp, "run"), args.model)
    version = max((d for d in os.listdir(base) if d.isdigit()), key=int)
    if not os.path.exists(os.path.join(base, version, WARMUP_FILE)):
        sys.exit(f"{base}/{version} has no {WARMUP_FILE}: export it with this kerlm")
    no_warmup = os.path.join(tmp, "no_warmup", "sentiment")
    shutil.copytree(os.path.join(base, version), os.path.join(no_warmup, version),
                    ignore=shutil.ignore_patterns("assets.extra"))

    from kerlm.data import uci_sentiment
    texts = [r.fields["text"] for r in uci_sentiment.load("test")]
    requests = [make_request(t) for t in texts]
    print(f"{len(texts)} test sentences; export {base}/{version}; {os.cpu_count()} CPUs",
          flush=True)

    loaded = throughput(base, requests, args, tmp)
    starts = first_requests({"with warm-up file": base, "without": no_warmup}, requests,
                            args.starts, tmp)

    print(f"\n{args.clients} concurrent gRPC clients, batch 1 per request, "
          f"{args.rounds} × {args.seconds:g} s per server:")
    print_table(["server", "requests", "req/s", "p50 ms", "p99 ms", "requests/call"],
                [[name, r["requests"], r["req_per_s"], r["p50_ms"], r["p99_ms"],
                  r.get("requests_per_call", 1)] for name, r in loaded.items()])
    if args.starts:
        print(f"\nFresh server processes ({args.starts} starts each; medians):")
        print_table(["export", "start → ready s", "warm-up ms", "first request ms",
                     "next 20 median ms"],
                    [[name, *(("-" if rs[0][key] is None else
                               f"{np.median([r[key] for r in rs]):.{digits}f}")
                              for key, digits in (("ready_s", 2), ("warmup_ms", 0),
                                                  ("first_ms", 1), ("next_median_ms", 2)))]
                     for name, rs in starts.items()])
    print(json.dumps({"benchmark": "serving_grpc", "config": vars(args), "throughput": loaded,
                      "first_request": starts}))
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
