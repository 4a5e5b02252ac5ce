"""`tf.distribute` strategies by name, and what each process of a cluster writes.

`get_strategy(train_config)` builds the strategy of `--strategy`:

| name | what | configured by |
|---|---|---|
| `default` | the current device, no distribution | |
| `one_device` | the first GPU, else the CPU | |
| `mirrored` | synchronous data parallelism over this machine's GPUs (else its CPUs) | |
| `multi_worker_mirrored` | synchronous data parallelism across processes / machines | `TF_CONFIG`, `--all_reduce_alg` |
| `tpu` | a Cloud TPU (or TPU VM) | `--tpu` |
| `parameter_server` | asynchronous training, variables on parameter servers | `TF_CONFIG` |

In a cluster every process runs the same command; `TF_CONFIG` (set by the launcher: a
TFJob, Vertex AI, or by hand) says which task it is. Only the chief writes `--model_dir`;
the other workers write what they must (checkpoints and saves are collective operations
under `multi_worker_mirrored`) to a temporary directory that is removed at the end
(`Role`). `--batch_size` is the global batch, split evenly over all replicas of all workers.

Example:
>>> from kerlm.config import TrainConfig
>>> strategy = get_strategy(TrainConfig())
>>> role = Role(strategy, "/tmp/run")
>>> role.chief, role.num_workers, role.write_dir("/tmp/run")
(True, 1, '/tmp/run')
"""

import json
import os
import shutil
import tempfile

import tensorflow as tf
from absl import logging

from kerlm.checkpointing import error_line
from kerlm.config import ConfigError

class ClusterError(RuntimeError):
    """A task of the cluster stopped (killed, lost): this one cannot go on alone."""


# `--all_reduce_alg` for multi_worker_mirrored (TF Model Garden's flag name).
ALL_REDUCE = {"auto": tf.distribute.experimental.CommunicationImplementation.AUTO,
              "ring": tf.distribute.experimental.CommunicationImplementation.RING,
              "nccl": tf.distribute.experimental.CommunicationImplementation.NCCL}
SHARDING = {"auto": tf.data.experimental.AutoShardPolicy.AUTO,
            "file": tf.data.experimental.AutoShardPolicy.FILE,
            "data": tf.data.experimental.AutoShardPolicy.DATA,
            "off": tf.data.experimental.AutoShardPolicy.OFF}


def get_strategy(train_config):
    """The strategy named by `train_config.strategy` (see the module doc)."""
    name = train_config.strategy
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "one_device":
        gpus = tf.config.list_logical_devices("GPU")
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    if name == "mirrored":
        devices = [d.name for d in tf.config.list_logical_devices("GPU")] or \
                  [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    if name == "multi_worker_mirrored":
        _check_tf_config("multi_worker_mirrored", required=False)
        options = tf.distribute.experimental.CommunicationOptions(
            implementation=ALL_REDUCE[train_config.all_reduce_alg])
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    if name == "tpu":
        return _tpu_strategy(train_config.tpu)
    if name == "parameter_server":
        return _parameter_server_strategy()
    raise ConfigError(f"Unknown strategy {name!r}")


def _check_tf_config(strategy, required):
    """The parsed `TF_CONFIG`, or None; a one-line error if it is not valid JSON."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        if required:
            raise ConfigError(f"--strategy={strategy} needs TF_CONFIG (the cluster and this "
                              "task's role); see README, 'Running on a cluster'")
        return None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as e:
        raise ConfigError(f"TF_CONFIG is not valid JSON ({e})") from e
    if not isinstance(value, dict) or "cluster" not in value or "task" not in value:
        raise ConfigError("TF_CONFIG needs 'cluster' and 'task' keys, e.g. "
                          '{"cluster": {"worker": ["host1:2222", "host2:2222"]}, '
                          '"task": {"type": "worker", "index": 0}}')
    return value


def _tpu_strategy(tpu):
    """`TPUStrategy` on the TPU `tpu` (a name, `grpc://host:port`, or `local` on a TPU VM)."""
    if not tpu:
        raise ConfigError("--strategy=tpu needs --tpu=NAME_OR_ADDRESS (the Cloud TPU's "
                          "name, a grpc:// address, or 'local' on a TPU VM)")
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, OSError, tf.errors.OpError) as e:  # OSError: no GCE
        raise ConfigError(f"--tpu={tpu}: no TPU reachable ({error_line(e)})") from e
    return tf.distribute.TPUStrategy(resolver)


def _parameter_server_strategy():
    """`ParameterServerStrategy` for the chief; workers and parameter servers serve the
    chief's requests until the chief ends the job (this call does not return for them)."""
    _check_tf_config("parameter_server", required=True)
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    if resolver.task_type in ("worker", "ps"):
        logging.info("Serving as %s %d of the parameter-server cluster", resolver.task_type,
                     resolver.task_id)
        server = tf.distribute.Server(resolver.cluster_spec(), job_name=resolver.task_type,
                                      task_index=resolver.task_id,
                                      protocol=resolver.rpc_layer or "grpc", start=True)
        server.join()
    if resolver.task_type != "chief":
        raise ConfigError(f"--strategy=parameter_server: TF_CONFIG task type "
                          f"{resolver.task_type!r} must be chief, worker or ps")
    return tf.distribute.ParameterServerStrategy(resolver)


def is_parameter_server(strategy):
    return isinstance(strategy, tf.distribute.ParameterServerStrategy)


class Role:
    """What this process is in `strategy`'s cluster: `chief` (writes `model_dir`),
    `num_workers`, `task_id`, and `write_dir(path)`: `path` for the chief, else the same
    relative path inside this worker's temporary directory (removed by `cleanup`)."""

    def __init__(self, strategy, model_dir):
        resolver = getattr(strategy, "cluster_resolver", None)
        task_type = getattr(resolver, "task_type", None)
        self.task_id = getattr(resolver, "task_id", None) or 0
        spec = resolver.cluster_spec().as_dict() if resolver is not None else {}
        self.num_workers = len(spec.get("worker", [])) + len(spec.get("chief", [])) or 1
        if is_parameter_server(strategy):
            self.num_workers = len(spec.get("worker", []))
        # The chief: the "chief" task, else worker 0 (TF's convention); a process outside
        # a cluster is its own chief.
        self.chief = task_type in (None, "chief") or \
            (task_type == "worker" and self.task_id == 0 and "chief" not in spec)
        self.model_dir = model_dir
        self._tmp = None if self.chief else tempfile.mkdtemp(
            prefix=f"kerlm-{task_type}{self.task_id}-")

    def write_dir(self, path):
        if self.chief:
            return path
        return os.path.join(self._tmp, os.path.relpath(path, self.model_dir))

    def cleanup(self):
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)


def full_batches(dataset):
    """`dataset` without its partial batches: XLA on TPUs needs a static batch dimension
    (the sequence dimension takes few values: batches are cut to lengths rounded up to 16,
    each compiled once). A full batch is as long as the first (a task's rows per batch may
    differ from `--batch_size`: sentence pairs give two texts each). Drops at most one
    batch's worth of examples per pass, as Keras' `drop_remainder` does.

    >>> ds = tf.data.Dataset.range(10).batch(4)
    >>> [len(b) for b in full_batches(ds)]
    [4, 4]
    """
    def rows(*batch):
        return tf.shape(tf.nest.flatten(batch)[0])[0]

    size = int(rows(*tf.nest.flatten(next(iter(dataset)))))
    return dataset.filter(lambda *batch: tf.equal(rows(*batch), size))


def distribute_dataset(strategy, dataset, sharding):
    """`dataset` (of global batches) split over `strategy`'s replicas; across workers by
    file or by data (`--input_sharding`: auto tries files, then data)."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = SHARDING[sharding]
    return strategy.experimental_distribute_dataset(dataset.with_options(options))
