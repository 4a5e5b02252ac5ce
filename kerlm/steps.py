"""The compiled steps of kerlm's training loop, for any `tf.distribute` strategy.

Keras' `fit` is not used: under `MultiWorkerMirroredStrategy` it fails before its first
step (keras-team/keras#20329: the `PerReplica` batch reaching `_maybe_symbolic_build`, then
`reduce_per_replica` concatenating scalars, tensorflow#72388), it has no parameter-server
support, and its `BackupAndRestore` restarts an epoch from its first batch. The loop here
keeps what `fit` is made of: the model's own `train_step` / `test_step` (so a head's
`compute_loss` and the compiled losses and metrics apply unchanged), run per replica by
`strategy.run`, and Keras' metrics read in cross-replica context (their variables are
sum-aggregated on read, so the values are over all replicas and workers).

Example (default strategy):
>>> import keras, numpy as np, tensorflow as tf
>>> model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
>>> model.compile(keras.optimizers.SGD(0.1), "mse")
>>> ds = tf.data.Dataset.from_tensor_slices((np.ones((8, 3)), np.ones((8, 1)))).batch(4)
>>> strategy = tf.distribute.get_strategy()
>>> build(model, strategy, ds)
>>> step = Steps(model, strategy, count_tokens=lambda x: tf.size(x))
>>> it = iter(strategy.experimental_distribute_dataset(ds.repeat()))
>>> step.train(it), int(model.optimizer.iterations.numpy())
(12.0, 1)
>>> sorted(step.results())
['loss']
"""

import tensorflow as tf


def build(model, strategy, dataset):
    """Create every variable before the first step: the model's, the compiled losses' and
    metrics', the optimizer's. Keras' own build (`Trainer._symbolic_build`, what `fit` does
    first), from the dataset's element spec rather than a distributed batch (which is what
    fails in `fit`, keras#20329)."""
    with strategy.scope():
        model._symbolic_build(data_batch=dataset.element_spec)
        if model.optimizer is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)


class Metrics:
    """`results()`: the model's running metrics, read in cross-replica context (a
    collective under several workers: call it on every worker at the same step);
    `reset()` them."""

    def __init__(self, model):
        self.model = model
        self._results = tf.function(model.get_metrics_result)

    def results(self):
        return {k: float(v) for k, v in self._results().items()}

    def reset(self):
        for metric in self.model.metrics:
            metric.reset_state()


def replica_train_step(model, count_tokens):
    """The per-replica step: Keras' `train_step` on a batch, returning its real tokens."""
    def step(batch):
        model.train_step(batch)
        return tf.cast(count_tokens(batch[0]), tf.float32)
    return step


class Steps(Metrics):
    """`train(iterator)` runs one optimizer step on the next global batch and returns its
    real tokens (`count_tokens(features)`, summed over all replicas, for tokens/s);
    `evaluate(dataset)` the metrics over a (distributed) dataset; `results()` the running
    metrics; `reset()` them. `jit_compile` compiles the step on a batch with XLA."""

    def __init__(self, model, strategy, count_tokens, jit_compile=False):
        super().__init__(model)
        self.strategy = strategy
        replica_train = replica_train_step(model, count_tokens)

        # As in Keras' own trainer: XLA compiles the step on a batch (around
        # `strategy.run`: a tf.function inside it cannot hold the gradients' all-reduce),
        # and taking the next batch stays outside the compiled function.
        @tf.function(jit_compile=jit_compile)
        def train_on_batch(batch):
            per_replica = strategy.run(replica_train, args=(batch,))
            return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

        @tf.function
        def train(iterator):
            return train_on_batch(next(iterator))

        @tf.function(jit_compile=jit_compile)
        def test(batch):
            strategy.run(model.test_step, args=(batch,))

        self._train, self._test = train, test

    def train(self, iterator):
        return float(self._train(iterator))

    def evaluate(self, distributed_dataset):
        """Metrics over one pass of `distributed_dataset` (the running training metrics are
        reset: call at an epoch end)."""
        self.reset()
        for batch in distributed_dataset:
            self._test(batch)
        logs = self.results()
        self.reset()
        return logs
