"""TF Serving's request batching: concurrent requests to one signature run as one call.

`apps/serve.py --enable_batching` makes one `BatchScheduler` that every model shares (both
APIs go through it), configured by `--batching_parameters_file` in TF Serving's text format:

    max_batch_size { value: 32 }
    batch_timeout_micros { value: 1000 }
    num_batch_threads { value: 2 }
    max_enqueued_batches { value: 100 }

Requests queue by model version, signature, and the dtypes and inner shapes (all dimensions
but the first) of their inputs; rows of one queue are concatenated along dimension 0 into
batches of at most `max_batch_size` rows. A batch thread runs the oldest batch once it is
full or its first request has waited `batch_timeout_micros`; with the default timeout of 0,
requests merge only while every batch thread is busy. The outputs are split back along
dimension 0. Requests with a scalar input or more rows than `max_batch_size` run alone, at
once. If a merged call fails, or an output has no batch dimension to split, each request of
the batch runs again alone, so every request gets its own answer or error.

>>> scheduler = BatchScheduler(**parse_batching_parameters("max_batch_size { value: 8 }"))
>>> scheduler.run("double", lambda inputs: {"y": inputs["x"] * 2}, {"x": np.array([1, 2])})
{'y': array([2, 4])}
>>> scheduler.close()
"""

import collections
import os
import threading
import time

import numpy as np
from absl import logging
from google.protobuf import (descriptor_pb2, descriptor_pool, message_factory, text_format,
                             wrappers_pb2)

from kerlm.serving.codec import ServingError


def _batching_parameters_class():
    """TF Serving's `tensorflow.serving.BatchingParameters` (session_bundle_config.proto).

    tensorflow-serving-api does not ship that proto, so its fields are declared here, in a
    private descriptor pool, for `text_format` to parse TF Serving's files with.
    """
    field = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(
        name="kerlm/serving/batching_parameters.proto", package="tensorflow.serving",
        syntax="proto3", dependency=["google/protobuf/wrappers.proto"])
    message = file.message_type.add(name="BatchingParameters")
    for number, (name, wrapper) in enumerate(
            [("max_batch_size", "Int64Value"), ("batch_timeout_micros", "Int64Value"),
             ("max_enqueued_batches", "Int64Value"), ("num_batch_threads", "Int64Value"),
             ("thread_pool_name", "StringValue")], start=1):
        message.field.add(name=name, number=number, label=field.LABEL_OPTIONAL,
                          type=field.TYPE_MESSAGE, type_name=f".google.protobuf.{wrapper}")
    message.field.add(name="allowed_batch_sizes", number=6, label=field.LABEL_REPEATED,
                      type=field.TYPE_INT64)
    message.field.add(name="pad_variable_length_inputs", number=7,
                      label=field.LABEL_OPTIONAL, type=field.TYPE_BOOL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(descriptor_pb2.FileDescriptorProto.FromString(wrappers_pb2.DESCRIPTOR.serialized_pb))
    pool.Add(file)
    return message_factory.GetMessageClass(
        pool.FindMessageTypeByName("tensorflow.serving.BatchingParameters"))


BatchingParameters = _batching_parameters_class()
_OPTIONS = ("max_batch_size", "batch_timeout_micros", "max_enqueued_batches",
            "num_batch_threads")


def parse_batching_parameters(text):
    """`BatchScheduler` keyword arguments from a BatchingParameters in protobuf text format.

    Only the fields present are returned; the others keep TF Serving's defaults.

    >>> parse_batching_parameters("max_batch_size { value: 32 } "
    ...                           "batch_timeout_micros { value: 500 }")
    {'max_batch_size': 32, 'batch_timeout_micros': 500}

    Raises:
      ValueError: for malformed text (with its line and column) or an out-of-range value.
    """
    try:
        parameters = text_format.Parse(text, BatchingParameters())
    except text_format.ParseError as e:
        raise ValueError(str(e)) from e
    options = {name: getattr(parameters, name).value for name in _OPTIONS
               if parameters.HasField(name)}
    for name, value in options.items():
        if value < (0 if name == "batch_timeout_micros" else 1):
            raise ValueError(f"{name} must be >= {0 if name == 'batch_timeout_micros' else 1}, "
                             f"got {value}")
    for name in ("allowed_batch_sizes", "pad_variable_length_inputs"):
        if getattr(parameters, name):
            logging.warning("Batching parameter %s is not supported by kerlm's server and is "
                            "ignored: requests with different inner shapes queue apart", name)
    return options


class _Task:
    """One request waiting in a queue."""

    def __init__(self, inputs, rows):
        self.inputs, self.rows = inputs, rows
        self.done = threading.Event()
        self.outputs = self.error = None


class _Batch:
    """Tasks for one call of `fn`, in arrival order."""

    def __init__(self, key, fn):
        self.key, self.fn, self.created = key, fn, time.monotonic()
        self.tasks, self.rows = [], 0


class BatchScheduler:
    """Merges concurrent calls on same-shaped inputs (see the module docstring).

    The defaults are TF Serving's: batches of up to 1000 rows, no waiting (merge what
    queued while the batch threads were busy), 10 batches per queue, one thread per CPU.
    """

    def __init__(self, max_batch_size=1000, batch_timeout_micros=0, max_enqueued_batches=10,
                 num_batch_threads=None):
        self.max_batch_size = max_batch_size
        self.max_enqueued_batches = max_enqueued_batches
        self._timeout = batch_timeout_micros / 1e6
        self._queues = {}  # queue key -> [_Batch], oldest first; only non-empty lists
        self._cond = threading.Condition()
        self._closed = False
        self.merged_calls = collections.Counter()  # requests in a merged call -> calls
        self._threads = [threading.Thread(target=self._work, name=f"batch-{i}", daemon=True)
                         for i in range(num_batch_threads or os.cpu_count() or 1)]
        for thread in self._threads:
            thread.start()

    def run(self, key, fn, inputs):
        """`fn(inputs)`, possibly merged with other calls of the same `key`.

        Args:
          key: hashable; calls with equal keys must mean the same `fn`.
          fn: {input name: np.ndarray} -> {output name: np.ndarray}.
          inputs: {input name: array-like}; arrays of equal first dimension are batchable.
        Returns:
          `fn`'s outputs for these inputs alone (its rows of the merged outputs).
        Raises:
          Whatever `fn` raises for these inputs alone; ServingError UNAVAILABLE (503) when
          the queue already holds `max_enqueued_batches` batches.
        """
        arrays = {name: np.asarray(value) for name, value in inputs.items()}
        rows = {array.shape[0] if array.ndim else -1 for array in arrays.values()}
        if len(rows) != 1 or not 0 < min(rows) <= self.max_batch_size:
            return fn(arrays)
        task = _Task(arrays, rows.pop())
        queue_key = (key, tuple(sorted((name, array.dtype.str, array.shape[1:])
                                       for name, array in arrays.items())))
        with self._cond:
            if self._closed:
                raise ServingError("The batch scheduler is shut down", status=503)
            batches = self._queues.setdefault(queue_key, [])
            if not batches or batches[-1].rows + task.rows > self.max_batch_size:
                if len(batches) >= self.max_enqueued_batches:
                    raise ServingError("The batch scheduling queue to which this task was "
                                       "submitted is full", status=503)
                batches.append(_Batch(key, fn))
            batches[-1].tasks.append(task)
            batches[-1].rows += task.rows
            self._cond.notify()
        task.done.wait()
        if task.error is not None:
            raise task.error
        return task.outputs

    def close(self):
        """Runs what is queued, then stops the batch threads."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join()

    def _work(self):
        while True:
            with self._cond:
                while (batch := self._take_ready_batch()) is None:
                    if self._closed:
                        return
                    self._cond.wait(self._time_to_next_deadline())
            self._process(batch)

    def _take_ready_batch(self):
        """Removes and returns the oldest batch that is full or has waited long enough."""
        now = time.monotonic()
        ready = [key for key, batches in self._queues.items()
                 if self._closed or len(batches) > 1 or
                 batches[0].rows >= self.max_batch_size or
                 now - batches[0].created >= self._timeout]
        if not ready:
            return None
        key = min(ready, key=lambda k: self._queues[k][0].created)
        batches = self._queues[key]
        batch = batches.pop(0)
        if not batches:
            del self._queues[key]
        return batch

    def _time_to_next_deadline(self):
        if not self._queues:
            return None
        oldest = min(batches[0].created for batches in self._queues.values())
        return max(0.0, oldest + self._timeout - time.monotonic())

    def _process(self, batch):
        tasks = batch.tasks
        if len(tasks) > 1:
            try:
                outputs = batch.fn({name: np.concatenate([t.inputs[name] for t in tasks])
                                    for name in tasks[0].inputs})
                parts = _split(outputs, [t.rows for t in tasks])
            except Exception as e:  # noqa: BLE001 - each request then gets its own error
                logging.warning("A merged call of %d requests of %s failed (%s); running "
                                "each alone", len(tasks), batch.key, e)
            else:
                with self._cond:
                    self.merged_calls[len(tasks)] += 1
                logging.vlog(1, "Ran %d requests (%d rows) of %s as one call", len(tasks),
                             batch.rows, batch.key)
                for task, part in zip(tasks, parts):
                    task.outputs = part
                    task.done.set()
                return
        for task in tasks:
            try:
                task.outputs = batch.fn(task.inputs)
            except Exception as e:  # noqa: BLE001 - raised again in the request's thread
                task.error = e
            task.done.set()


def _split(outputs, rows):
    """[{output name: rows of that task}] for tasks of `rows` rows each, in order."""
    total = sum(rows)
    for name, array in outputs.items():
        if np.ndim(array) == 0 or len(array) != total:
            raise ValueError(f"output '{name}' has shape {list(np.shape(array))}, not "
                             f"[{total}, ...]: it cannot be split between the requests")
    ends = np.cumsum(rows)
    return [{name: array[end - n:end] for name, array in outputs.items()}
            for n, end in zip(rows, ends)]
