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


@keras.saving.register_keras_serializable(package="kerlm")
class InBatchNegativesLoss(keras.losses.Loss):
    """InfoNCE over a batch of pairs: each first text against every second text of the batch.

    `y_pred` is `[2 · batch, dim]` embeddings of interleaved pairs (query 0, target 0,
    query 1, target 1, ...: a replica's share of an even batch keeps its pairs whole);
    `y_true` gives each text's id (equal ids: equal texts). The loss is cross-entropy of
    `scale · cos(query i, target j)` over `j` with target `i` the answer: sentence-
    transformers' MultipleNegativesRankingLoss (cosine similarities, as the embeddings are
    unit vectors when the head normalizes, dot products otherwise), not symmetric unless
    `symmetric` (then also each target against every query, averaged). Another pair's
    target that repeats this query's pair (same query or same target text) is no negative:
    it is left out. `scale`: a number or a function giving it (a learned scale).

    Example:
    >>> import numpy as np
    >>> pairs = np.array([[1, 0], [1, 0], [0, 1], [0, 1]], "float32")  # two perfect pairs
    >>> ids = np.array([0, 1, 2, 3])
    >>> round(float(InBatchNegativesLoss(scale=1.0)(ids, pairs)), 4)  # log(1 + e^-1)
    0.3133
    """

    def __init__(self, scale=20.0, symmetric=False, name="in_batch_negatives", **kwargs):
        super().__init__(name=name, **kwargs)
        self.scale = scale
        self.symmetric = symmetric

    def call(self, y_true, y_pred):
        pairs = ops.reshape(ops.cast(y_pred, "float32"), (-1, 2, ops.shape(y_pred)[-1]))
        ids = ops.reshape(y_true, (-1, 2))
        scale = self.scale() if callable(self.scale) else self.scale
        logits = ops.cast(scale, "float32") * ops.matmul(pairs[:, 0], ops.transpose(pairs[:, 1]))
        count = ops.shape(logits)[0]
        repeats = ((ids[:, None, 0] == ids[None, :, 0]) | (ids[:, None, 1] == ids[None, :, 1])) \
            & ~ops.eye(count, dtype="bool")
        logits = ops.where(repeats, -1e9, logits)
        labels = ops.arange(count)
        losses = keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
        if self.symmetric:
            transposed = keras.losses.sparse_categorical_crossentropy(
                labels, ops.transpose(logits), from_logits=True)
            losses = (losses + transposed) / 2.0
        return losses

    def get_config(self):
        scale = None if callable(self.scale) else self.scale
        return {**super().get_config(), "scale": scale, "symmetric": self.symmetric}
