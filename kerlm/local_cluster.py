"""A tf.distribute cluster on one machine: every task a process on a free 127.0.0.1 port,
with its `TF_CONFIG`, as a launcher (a TFJob, Vertex AI, ssh) would start them on hosts.

    python -m kerlm.local_cluster --workers=2 --log_dir=/tmp/cluster -- \
        python apps/train.py --flagfile=configs/sentiment.flags \
        --strategy=multi_worker_mirrored --model_dir=runs/sentiment_2w

prints each task's exit status (and exits with the first non-zero one); each task's output
goes to `LOG_DIR/<type><index>.log`. `--ps=1 --chief` makes a parameter-server cluster
(`--strategy=parameter_server`). For trying things out and for tests: the processes share
this machine's cores, so they show the strategies' overhead, not a speed-up.

Example:
>>> spec = cluster_spec(workers=2, ps=1, chief=True)
>>> sorted(spec), len(spec["worker"])
(['chief', 'ps', 'worker'], 2)
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import time


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cluster_spec(workers, ps=0, chief=False):
    """`{"worker": [host:port, ...], "ps": [...], "chief": [...]}` on free local ports."""
    spec = {"worker": [f"127.0.0.1:{_free_port()}" for _ in range(workers)]}
    if ps:
        spec["ps"] = [f"127.0.0.1:{_free_port()}" for _ in range(ps)]
    if chief:
        spec["chief"] = [f"127.0.0.1:{_free_port()}"]
    return spec


class Cluster:
    """The tasks of `spec`, each running `argv` with its TF_CONFIG; `tasks` maps
    `"worker0"`, `"ps0"`, `"chief0"` to their `subprocess.Popen`."""

    def __init__(self, argv, spec, log_dir, env=None):
        os.makedirs(log_dir, exist_ok=True)
        self.spec, self.log_dir, self.tasks = spec, log_dir, {}
        for task_type in ("chief", "ps", "worker"):  # the chief last would do as well
            for index in range(len(spec.get(task_type, []))):
                self.start(argv, task_type, index, env)

    def start(self, argv, task_type, index, env=None):
        """(Re)start one task, appending to its log (as an orchestrator restarts a pod)."""
        name = f"{task_type}{index}"
        tf_config = {"cluster": self.spec, "task": {"type": task_type, "index": index}}
        log = open(self.log_path(name), "a")
        self.tasks[name] = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {}), "TF_CONFIG": json.dumps(tf_config)})
        log.close()
        return self.tasks[name]

    def log_path(self, name):
        return os.path.join(self.log_dir, f"{name}.log")

    def log(self, name):
        with open(self.log_path(name), errors="replace") as f:
            return f.read()

    def wait(self, names=None, timeout=None):
        """`{name: exit status}` of the named tasks once they end (default: the workers, or
        the chief of a parameter-server cluster, whose workers and parameter servers serve
        until they are stopped)."""
        serving = "ps0" in self.tasks and "chief0" in self.tasks
        names = names or (["chief0"] if serving else
                          [n for n in self.tasks if not n.startswith("ps")])
        deadline = None if timeout is None else time.time() + timeout
        codes = {}
        for name in names:
            left = None if deadline is None else max(deadline - time.time(), 0.1)
            codes[name] = self.tasks[name].wait(timeout=left)
        return codes

    def stop(self):
        for process in self.tasks.values():
            if process.poll() is None:
                process.kill()
                process.wait()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--ps", type=int, default=0)
    parser.add_argument("--chief", action="store_true")
    parser.add_argument("--log_dir", default="cluster_logs")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to run after --")
    cluster = Cluster(command, cluster_spec(args.workers, args.ps, args.chief), args.log_dir)
    try:
        codes = cluster.wait()
    finally:
        cluster.stop()
    for name, code in codes.items():
        print(f"{name}: exit status {code} (log {cluster.log_path(name)})")
    sys.exit(next((code for code in codes.values() if code), 0))


if __name__ == "__main__":
    main()
