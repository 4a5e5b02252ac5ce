"""`--strategy=multi_worker_mirrored` on a local cluster (kerlm.local_cluster): the workers
hold one model, train what one worker would on the same global batch, and a job that lost
a worker stops and resumes from the chief's checkpoints."""

import glob
import json
import os
import re
import subprocess
import sys
import time

import pytest

from conftest import ROOT, run_app
from kerlm import local_cluster, training

# Every test here starts a cluster of training processes (not seen by conftest's
# auto-marking, which looks for run_app / subprocess calls).
pytestmark = pytest.mark.slow

FAST = ["--task=sentiment", "--model=encoder_tiny", "--sequence_length=32", "--batch_size=64",
        "--learning_rate=1e-3", "--seed=7", "--log_every_steps=5"]
TRAIN = [sys.executable, os.path.join(ROOT, "apps", "train.py")]
WAIT = 600  # seconds: a generous bound on a run, not a timing assertion
FINGERPRINT = re.compile(r"Worker (\d+) weights fingerprint ([0-9a-f]{40})")
LOSS = re.compile(r"step (\d+)/(\d+)  loss (\d+\.\d+)")


def _env(tmp):
    """The cluster's environment: TF's quieter logs, and a temporary directory of the
    test's own (where the non-chief workers make theirs), so that what a worker leaves
    behind is seen without counting the shared /tmp."""
    os.makedirs(tmp, exist_ok=True)
    return {"TF_CPP_MIN_LOG_LEVEL": "2", "TMPDIR": str(tmp)}


def _run_cluster(workers, log_dir, argv, env):
    """Start `workers` workers of `argv`, wait for them; return (cluster, exit statuses)."""
    cluster = local_cluster.Cluster(argv, local_cluster.cluster_spec(workers), log_dir, env)
    try:
        codes = cluster.wait(timeout=WAIT)
    finally:
        cluster.stop()
    return cluster, codes


def _failure(cluster, codes):
    return "\n".join(f"--- {name} (exit {code}):\n{cluster.log(name)[-3000:]}"
                     for name, code in codes.items())


def _losses(log, total):
    """`{step: running loss}` of the `step N/TOTAL  loss X` lines."""
    return {int(step): float(loss) for step, of, loss in LOSS.findall(log) if int(of) == total}


def _fingerprints(cluster, names):
    found = {}
    for name in names:
        matches = FINGERPRINT.findall(cluster.log(name))
        assert len(matches) == 1, (name, matches, cluster.log(name)[-3000:])
        assert f"worker{matches[0][0]}" == name
        found[name] = matches[0][1]
    return found


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory):
    """One 2-worker run of 20 steps (dropout off: see the loss-curve test), shared by the
    tests that read it."""
    root = tmp_path_factory.mktemp("two_workers")
    model_dir, tmp = str(root / "run"), root / "tmp"
    argv = [*TRAIN, *FAST, "--dropout=0", "--strategy=multi_worker_mirrored",
            "--train_steps=20", "--checkpoint_every_steps=10", f"--model_dir={model_dir}"]
    cluster, codes = _run_cluster(2, str(root / "logs"), argv, _env(tmp))
    return {"cluster": cluster, "codes": codes, "model_dir": model_dir, "tmp": str(tmp),
            "flags": [*FAST, "--dropout=0", "--train_steps=20",
                      "--checkpoint_every_steps=10"]}


def test_two_workers_train_one_model_equal_to_what_each_worker_holds(two_workers):
    cluster, codes, model_dir = (two_workers[k] for k in ("cluster", "codes", "model_dir"))
    assert codes == {"worker0": 0, "worker1": 0}, _failure(cluster, codes)
    logs = {name: cluster.log(name) for name in codes}
    assert "2 replica(s) on 2 worker(s)" in logs["worker0"]
    # Both hold the same weights, and the chief saved them.
    fingerprints = _fingerprints(cluster, codes)
    assert fingerprints["worker0"] == fingerprints["worker1"], fingerprints
    saved = training.weights_fingerprint(training.load_model(model_dir))
    assert saved == fingerprints["worker0"]
    # The metrics are read across workers: both log the same losses, at every 5th step.
    assert sorted(_losses(logs["worker0"], 20)) == [5, 10, 15, 20]
    assert _losses(logs["worker0"], 20) == _losses(logs["worker1"], 20)
    # Only the chief wrote model_dir: the run's files are there, its TensorBoard events
    # are all the chief's (the process id is in their names), and worker 1's temporary
    # directory is gone.
    for name in ("config.json", "checkpoints", "model.keras", "dev_metrics.json",
                 "progress.json"):
        assert os.path.exists(os.path.join(model_dir, name)), name
    assert sorted(os.listdir(os.path.join(model_dir, "checkpoints"))) == [
        "checkpoint", "step-10.data-00000-of-00001", "step-10.index",
        "step-20.data-00000-of-00001", "step-20.index"]
    events = glob.glob(os.path.join(model_dir, "logs", "*", "events.out.tfevents.*"))
    assert events
    chief_pid = str(cluster.tasks["worker0"].pid)
    assert {os.path.basename(e).split(".")[-3] for e in events} == {chief_pid}, events
    assert "dev accuracy" in logs["worker0"] and "dev accuracy" not in logs["worker1"]
    assert not glob.glob(os.path.join(two_workers["tmp"], "kerlm-*")), \
        os.listdir(two_workers["tmp"])


def test_the_loss_curve_matches_one_worker_with_the_same_global_batch(two_workers, tmp_path):
    """The two workers train on the two halves of each global batch of 64 and all-reduce
    the gradients: one worker on whole batches of 64 takes the same steps. Measured with
    dropout off: the same losses to the 4 logged decimals (max difference 0.0000) and the
    same dev accuracy; the tolerances leave room for the float sums' order (the gradients
    of two halves summed rather than of one batch). (With dropout 0.1 the replicas' masks
    differ from one process's: 0.0123 apart at most, measured, which would hide e.g. a
    worker training on its own full batch.)"""
    cluster, codes = two_workers["cluster"], two_workers["codes"]
    assert codes == {"worker0": 0, "worker1": 0}, _failure(cluster, codes)
    one_dir = str(tmp_path / "one")
    one = run_app("train", *two_workers["flags"], "--strategy=default",
                  f"--model_dir={one_dir}")
    assert "1 replica(s) on 1 worker(s)" in one.stderr
    two_losses, one_losses = _losses(cluster.log("worker0"), 20), _losses(one.stderr, 20)
    assert sorted(two_losses) == sorted(one_losses) == [5, 10, 15, 20]
    differences = {step: abs(two_losses[step] - one_losses[step]) for step in one_losses}
    print(f"2 workers {two_losses}\n1 worker  {one_losses}\n"
          f"max loss difference {max(differences.values()):.4f}")
    assert max(differences.values()) <= 2e-3, (two_losses, one_losses)
    with open(os.path.join(two_workers["model_dir"], "dev_metrics.json")) as f:
        two_accuracy = json.load(f)["accuracy"]
    with open(os.path.join(one_dir, "dev_metrics.json")) as f:
        one_accuracy = json.load(f)["accuracy"]
    print(f"dev accuracy: 2 workers {two_accuracy:.4f}, 1 worker {one_accuracy:.4f}")
    assert abs(two_accuracy - one_accuracy) <= 0.01  # 3 of the 299 dev examples


@pytest.mark.slow
def test_three_workers(tmp_path):
    argv = [*TRAIN, *FAST, "--strategy=multi_worker_mirrored", "--batch_size=63",
            "--train_steps=15", f"--model_dir={tmp_path / 'run'}"]
    cluster, codes = _run_cluster(3, str(tmp_path / "logs"), argv, _env(tmp_path / "tmp"))
    assert codes == {"worker0": 0, "worker1": 0, "worker2": 0}, _failure(cluster, codes)
    assert "3 replica(s) on 3 worker(s)" in cluster.log("worker0")
    fingerprints = _fingerprints(cluster, codes)
    assert len(set(fingerprints.values())) == 1, fingerprints  # dropout on: still one model
    assert training.weights_fingerprint(training.load_model(str(tmp_path / "run"))) == \
        fingerprints["worker0"]
    assert sorted(_losses(cluster.log("worker0"), 15)) == [5, 10, 15]


def _wait_for_step(cluster, name, step, timeout=WAIT):
    """The last step in `name`'s log once it is >= `step`."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        steps = [int(s) for s in re.findall(r"step (\d+)/\d+", cluster.log(name))]
        if steps and steps[-1] >= step:
            return steps[-1]
        assert cluster.tasks[name].poll() is None, cluster.log(name)[-3000:]
        time.sleep(0.05)
    raise AssertionError(f"{name}: no step {step} within {timeout} s")


def test_a_killed_worker_stops_the_job_and_a_restart_resumes_it(tmp_path):
    """kill -9 of worker 1 at step >= 25: worker 0 fails by itself (TF's coordination
    service reports the lost task within seconds) rather than waiting forever in an
    all-reduce; both restarted on the same ports resume from the chief's last checkpoint
    and finish."""
    model_dir = str(tmp_path / "run")
    argv = [*TRAIN, *FAST, "--strategy=multi_worker_mirrored", "--train_steps=300",
            "--checkpoint_every_steps=10", "--log_every_steps=1", f"--model_dir={model_dir}"]
    env = _env(tmp_path / "tmp")
    cluster = local_cluster.Cluster(argv, local_cluster.cluster_spec(2),
                                    str(tmp_path / "logs"), env)
    try:
        _wait_for_step(cluster, "worker0", 25)
        cluster.tasks["worker1"].kill()
        killed = time.time()
        cluster.tasks["worker1"].wait()
        try:
            survivor = cluster.tasks["worker0"].wait(timeout=120)
        except subprocess.TimeoutExpired:
            pytest.fail("worker0 still running 120 s after worker1 was killed:\n"
                        + cluster.log("worker0")[-3000:])
        seconds = time.time() - killed
        first_log = cluster.log("worker0")
        last = max(int(s) for s in re.findall(r"step (\d+)/300", first_log))
        error = [line for line in first_log.splitlines() if "Error" in line][-3:]
        print(f"killed worker1 at step {last}; worker0 exited with {survivor} after "
              f"{seconds:.1f} s; its last error lines: {error}")
        assert survivor == 75, first_log[-3000:]  # EX_TEMPFAIL: retry
        assert re.search(r"error: worker 0: another task of the cluster stopped \(\w+Error: .+\); "
                         r"restart every task to resume from the last checkpoint \(step \d+\)",
                         first_log), first_log[-3000:]
        assert "Traceback" not in first_log
        assert "step 300/300" not in first_log

        for index in (0, 1):  # as an orchestrator restarts the job's pods, same addresses
            cluster.start(argv, "worker", index, env)
        codes = cluster.wait(timeout=WAIT)
        assert codes == {"worker0": 0, "worker1": 0}, _failure(cluster, codes)
    finally:
        cluster.stop()
    restarted = cluster.log("worker0")[len(first_log):]
    resumed = int(re.search(r"Resuming from step (\d+)", restarted).group(1))
    print(f"resumed from step {resumed}")
    assert resumed >= 10 and resumed % 10 == 0 and resumed <= last, (resumed, last)
    assert f"Resuming from step {resumed}" in cluster.log("worker1")  # the chief's checkpoint
    assert "step 300/300" in restarted
    assert not re.search(rf"step {resumed}/300", restarted)  # no step trained twice
    fingerprints = _fingerprints(cluster, codes)  # one line each: the first run ended early
    assert fingerprints["worker0"] == fingerprints["worker1"]
    assert training.trained_steps(model_dir) == 300
