"""Pointer-generator output: a decoder copies source tokens (See et al., 2017)."""

import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="kerlm")
class CopyDistribution(keras.layers.Layer):
    """Next-token log-probabilities that mix generating and copying.

    `p(w) = g · softmax(logits)(w) + (1 − g) · Σ_{s: source_s = w} a_s`, where `a` is one
    attention head from each decoder state over the encoder output and `g` a sigmoid gate
    of the decoder state ("Get To The Point", See et al., 2017). Names, numbers and rare
    subwords of the source can then be produced by pointing at them, which a plain decoder
    has to learn through its vocabulary. Returns float32 log-probabilities, which every
    from-logits loss, metric and sampler accepts unchanged (`log_softmax` of them is
    themselves). Written here because neither keras-hub nor TF Model Garden has a copy layer.

    `keys(encoder_output)` projects the encoder output once (generation caches it);
    `call(logits, hidden, keys, source_ids, source_mask)` with `logits`
    `[batch, length, vocabulary]`, `hidden` `[batch, length, hidden_dim]`, `keys`
    `[batch, source_length, hidden_dim]`, `source_ids`/`source_mask` `[batch, source_length]`.

    Example:
    >>> import numpy as np
    >>> layer = CopyDistribution(hidden_dim=4)
    >>> hidden, memory = np.ones((1, 2, 4), "float32"), np.ones((1, 3, 4), "float32")
    >>> log_probs = layer(np.zeros((1, 2, 10), "float32"), hidden, layer.keys(memory),
    ...                   np.array([[7, 7, 0]]), np.array([[1, 1, 0]]))
    >>> probs = np.exp(keras.ops.convert_to_numpy(log_probs))
    >>> bool(np.allclose(probs.sum(-1), 1.0, atol=1e-5)), bool(probs[0, 0, 7] > probs[0, 0, 1])
    (True, True)
    """

    def __init__(self, hidden_dim, **kwargs):
        super().__init__(**kwargs)
        self.hidden_dim = hidden_dim
        dense = dict(dtype=self.dtype_policy, kernel_initializer="glorot_uniform")
        self.query_dense = keras.layers.Dense(hidden_dim, use_bias=False, name="query", **dense)
        self.key_dense = keras.layers.Dense(hidden_dim, use_bias=False, name="key", **dense)
        self.gate_dense = keras.layers.Dense(1, name="gate", **dense)

    def build(self, *shapes, **named_shapes):
        for layer in (self.query_dense, self.key_dense, self.gate_dense):
            layer.build((None, None, self.hidden_dim))
        self.built = True

    def keys(self, encoder_output):
        """The encoder output projected for the copy attention."""
        if not self.built:
            self.build()
        return self.key_dense(encoder_output)

    def call(self, logits, hidden, keys, source_ids, source_mask):
        query = self.query_dense(hidden)
        scores = ops.cast(ops.einsum("btd,bsd->bts", query, keys), "float32")
        scores = scores / math.sqrt(self.hidden_dim)
        mask = ops.expand_dims(ops.cast(source_mask, "bool"), 1)
        attention = ops.softmax(ops.where(mask, scores, -1e9), axis=-1)
        attention = ops.where(mask, attention, 0.0)
        # Scatter the attention of each source position onto its token id (duplicates add).
        shape = ops.shape(attention)
        batch = ops.broadcast_to(ops.reshape(ops.arange(shape[0]), (-1, 1, 1)), shape)
        step = ops.broadcast_to(ops.reshape(ops.arange(shape[1]), (1, -1, 1)), shape)
        token = ops.broadcast_to(ops.expand_dims(ops.cast(source_ids, "int32"), 1), shape)
        indices = ops.stack([batch, step, token], axis=-1)
        copy = ops.scatter(indices, attention, (shape[0], shape[1], ops.shape(logits)[-1]))
        gate = ops.cast(self.gate_dense(hidden), "float32")
        generate = ops.log_sigmoid(gate) + ops.log_softmax(ops.cast(logits, "float32"), axis=-1)
        point = ops.log_sigmoid(-gate) + ops.log(copy + 1e-20)
        return ops.logaddexp(generate, point)

    def compute_output_shape(self, logits_shape, *shapes):
        return logits_shape

    def get_config(self):
        return {**super().get_config(), "hidden_dim": self.hidden_dim}
