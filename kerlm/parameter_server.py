"""Asynchronous training under `ParameterServerStrategy` (`--strategy=parameter_server`).

The chief (coordinator) holds no data: it schedules train steps on whichever worker is
free (`tf.distribute.coordinator.ClusterCoordinator`); the variables live on the parameter
servers, and each worker applies its gradients to them without waiting for the others.
Keras 3's `fit` does not support this strategy, so this loop does, with the same pieces as
the synchronous one (`kerlm.steps`: Keras' `train_step`; `StepCheckpoints`; the chief
evaluates the dev set and writes `model_dir`).

What asynchrony changes (TensorFlow's documented behaviour, measured here):
- each step is one `--batch_size` batch on one worker; worker k of n reads batches k,
  k + n, ... of the training stream, but which worker runs which step is the scheduler's
  choice, so the order of updates and the weights are not reproducible, and a resumed run
  (each worker skipping its share of the steps done) may re-train or skip a few batches;
- the input pipeline is sent to the workers as a graph: tasks whose datasets call Python
  (the seq2seq length bucketing and LM packing use `from_generator`) cannot run here;
- Keras' metric variables are updated with non-atomic `assign_add` by concurrent workers,
  so the logged running loss is approximate (the weights' updates are atomic);
- no `PreemptionCheckpointHandler` (TensorFlow does not support it here): after SIGTERM
  the run resumes from its last step checkpoint.
"""

import os
import time

import keras
import tensorflow as tf
from absl import logging

from kerlm import checkpointing, distribute, steps, training


def train(task, model_dir, strategy=None):
    """Train `task` into `model_dir` as `kerlm.training.train` does, asynchronously; return
    the saved model. On the cluster's workers and parameter servers this serves the chief
    and does not return (`distribute.get_strategy`)."""
    config = task.config
    keras.utils.set_random_seed(config.train.seed)
    tf.get_logger().setLevel("WARNING")
    strategy = strategy or distribute.get_strategy(config.train)
    coordinator = tf.distribute.coordinator.ClusterCoordinator(strategy)
    checkpoint_dir = os.path.join(model_dir, training.CHECKPOINT_DIR)
    train_records, train_ds, dev_ds = training.prepare_run(task, model_dir, model_dir)
    epochs, steps_per_epoch, total_steps = training.step_budget(task, train_ds)
    spec = tf.distribute.cluster_resolver.TFConfigClusterResolver().cluster_spec().as_dict()
    logging.info("Training %s: %s examples, %d steps (%d epoch(s) of %d), asynchronously on "
                 "%d worker(s) and %d parameter server(s)", config.task,
                 task.num_examples(train_records), total_steps, epochs, steps_per_epoch,
                 len(spec.get("worker", [])), len(spec.get("ps", [])))
    # Every variable in the scope: optimizer slots built later would land on the chief.
    model = training.build_model(task, strategy, train_ds, total_steps)
    checkpoints = checkpointing.StepCheckpoints(model, checkpoint_dir, config.train.max_to_keep)
    step = checkpoints.restore()
    if step:
        logging.info("Resuming from step %d", step)
    log_dir = os.path.join(model_dir, training.LOG_DIR)
    if not step:
        training.write_hparams(log_dir, config)

    def dataset_fn(context):
        # Worker k reads batches k, k + n, k + 2n, ... of the stream (each step is one
        # --batch_size batch on one worker); resumed, each skips its share of the steps done.
        # Built here, not captured: the function's graph is what the workers run.
        n = context.num_input_pipelines
        return task.dataset(train_records, training=True).repeat().shard(
            n, context.input_pipeline_id).skip(step // n)

    iterator = iter(coordinator.create_per_worker_dataset(
        strategy.distribute_datasets_from_function(dataset_fn)))

    replica_train = steps.replica_train_step(model, task.num_tokens)

    @tf.function
    def train_step(iterator):
        return strategy.run(replica_train, args=(next(iterator),))

    @tf.function
    def test_step(batch):  # on the chief, reading the parameter servers' variables
        model.test_step(batch)

    metrics = steps.Metrics(model)
    progress = training.ProgressLogger(log_dir, config.train.log_every_steps, total_steps)
    every = config.train.checkpoint_every_steps
    start = time.perf_counter()
    for epoch in range(step // steps_per_epoch, epochs):
        logging.info("Epoch %d/%d", epoch + 1, epochs)
        metrics.reset()
        end = min((epoch + 1) * steps_per_epoch, total_steps)
        while step < end:
            # Schedule up to the next log, checkpoint or epoch end, then wait for them.
            stop = min(end, _next(step, config.train.log_every_steps),
                       _next(step, every) if every else end)
            scheduled = [coordinator.schedule(train_step, args=(iterator,))
                         for _ in range(stop - step)]
            coordinator.join()
            tokens = sum(float(value.fetch()) for value in scheduled)
            step = stop
            progress.update(step, tokens, metrics.results,
                            lambda: training.learning_rate(model))
            if every and step % every == 0:
                checkpoints.save(step)
        train_logs = metrics.results()
        metrics.reset()
        for batch in dev_ds:
            test_step(batch)
        dev_logs = metrics.results()
        progress.epoch_end(epoch, epochs, step, train_logs, dev_logs)
        checkpoints.save(step)
    training.save_model(model, model_dir)
    training.write_report(model_dir, training.PROGRESS,
                          {"steps": step, "fit_seconds": round(time.perf_counter() - start, 1)})
    return training.load_model(model_dir)


def _next(step, every):
    """The next multiple of `every` after `step`."""
    return (step // every + 1) * every
