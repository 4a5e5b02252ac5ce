"""Losses for the heads' token-level outputs (keras.ops only): they live beside the heads
whose logits (or `Seq2SeqLM(copy_attention=True)` log-probabilities) they score."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="kerlm")
class SmoothedSparseCrossentropy(keras.losses.Loss):
    """Sparse cross-entropy from logits with label smoothing, averaged over real tokens.

    `loss = (1 - ε) · NLL(target) + ε · mean over the vocabulary of −log p`, the smoothing
    of Szegedy et al. as used for Transformer translation. Keras' own sparse loss has no
    smoothing, and the dense one would need `[batch, length, vocabulary]` one-hot targets.
    Pass the targets' padding mask as `sample_weight`: the reduction
    `mean_with_sample_weight` divides by the number of real tokens, not padded positions.

    Example:
    >>> import numpy as np
    >>> loss = SmoothedSparseCrossentropy(label_smoothing=0.0)
    >>> logits = np.log(np.array([[[0.5, 0.25, 0.25], [0.1, 0.8, 0.1]]], "float32"))
    >>> round(float(loss(np.array([[0, 1]]), logits, sample_weight=np.array([[1, 0]]))), 4)
    0.6931
    """

    def __init__(self, label_smoothing=0.0, name="smoothed_sparse_crossentropy", **kwargs):
        kwargs.setdefault("reduction", "mean_with_sample_weight")
        super().__init__(name=name, **kwargs)
        self.label_smoothing = label_smoothing

    def call(self, y_true, y_pred):
        log_probs = ops.log_softmax(ops.cast(y_pred, "float32"), axis=-1)
        target = ops.expand_dims(ops.cast(y_true, "int32"), -1)
        nll = -ops.squeeze(ops.take_along_axis(log_probs, target, axis=-1), -1)
        if not self.label_smoothing:
            return nll
        smooth = -ops.mean(log_probs, axis=-1)
        return (1.0 - self.label_smoothing) * nll + self.label_smoothing * smooth

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}
