"""Keras callbacks and TensorBoard summaries any task can add to training.

`GenerationExamples` writes a table of a few examples (source, reference, the model's
output) at each epoch end; `write_examples` writes such a table with the default summary
writer (also what `apps/evaluate.py` logs).
"""

import os

import keras
import tensorflow as tf


class GenerationExamples(keras.callbacks.Callback):
    """At each epoch end, TensorBoard text: a few sources, references and outputs (of the
    trained model, or of its `head` in a multi-task model, as `<head>_examples`), under
    `log_dir/validation`.

    `generator` is what turns records into texts and a model into outputs (a text-to-text
    task is one): `generator.texts(records)` → `(sources, references)` and
    `generator.generate(model, sources)` → output strings.

    Example:
    >>> import tempfile
    >>> class Echo:
    ...     def texts(self, records):
    ...         return [r[0] for r in records], [r[1] for r in records]
    ...     def generate(self, model, sources):
    ...         return [s.upper() for s in sources]
    >>> model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    >>> model.compile("sgd", "mse")
    >>> log_dir = tempfile.mkdtemp()
    >>> callback = GenerationExamples(Echo(), [("hola", "hello")], log_dir)
    >>> _ = model.fit(tf.zeros((2, 1)), tf.zeros((2, 1)), verbose=0, callbacks=[callback])
    >>> os.listdir(os.path.join(log_dir, "validation"))[0].startswith("events.out")
    True
    """

    def __init__(self, generator, records, log_dir, head=None):
        super().__init__()
        self.generator, self.records, self.head = generator, records, head
        self.writer = tf.summary.create_file_writer(os.path.join(log_dir, "validation"))

    def on_epoch_end(self, epoch, logs=None):
        sources, references = self.generator.texts(self.records)
        model = self.model.heads[self.head] if self.head else self.model
        outputs = self.generator.generate(model, sources)
        with self.writer.as_default(step=int(self.model.optimizer.iterations.numpy())):
            write_examples(sources, references, outputs,
                           f"{self.head}_examples" if self.head else "examples")
        self.writer.flush()


def write_examples(sources, references, outputs, name="examples"):
    """A markdown table of examples as a TensorBoard text summary (default writer).

    Example:
    >>> import tempfile
    >>> with tf.summary.create_file_writer(tempfile.mkdtemp()).as_default(step=0):
    ...     bool(write_examples(["a|b"], ["c"], ["d"]))
    True
    """
    def cell(text):
        return text.replace("|", "\\|").replace("\n", " ")

    rows = ["| source | reference | output |", "|---|---|---|"]
    rows += [f"| {cell(s)} | {cell(r)} | {cell(o)} |"
             for s, r, o in zip(sources, references, outputs)]
    return tf.summary.text(name, "\n".join(rows))
