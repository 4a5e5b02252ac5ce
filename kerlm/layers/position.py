"""Position information: sinusoidal encodings, rotary embeddings and T5's relative bias.

Learned absolute positions are `kerlm.layers.PositionEmbedding`. Every function here takes
a `start_index`, the position of the first token, so that incremental decoding with a
key/value cache sees the same positions as a full forward pass.
"""

import math

import keras
from keras import ops


def sinusoidal_encoding(length, dim, start_index=0, max_wavelength=10000.0):
    """The `[length, dim]` sine/cosine encoding of "Attention Is All You Need".

    Sines in the first half of the channels, cosines in the second (tensor2tensor's layout).

    Example:
    >>> import numpy as np
    >>> e = keras.ops.convert_to_numpy(sinusoidal_encoding(3, 4, start_index=1))
    >>> e.shape, [round(float(v), 4) for v in e[0]]
    ((3, 4), [0.8415, 0.0001, 0.5403, 1.0])
    """
    positions = ops.cast(ops.arange(length) + start_index, "float32")
    half = dim // 2
    inverse = ops.exp(ops.arange(half, dtype="float32") * (-math.log(max_wavelength) / max(half - 1, 1)))
    angles = positions[:, None] * inverse[None, :]
    return ops.concatenate([ops.sin(angles), ops.cos(angles)], axis=-1)


def apply_rotary(x, start_index=0, max_wavelength=10000.0):
    """Rotary position embedding (RoPE) of `[batch, length, heads, head_dim]` queries or keys.

    Rotates channel pairs `(i, i + head_dim/2)` by `position / max_wavelength^(2i/head_dim)`
    (the GPT-NeoX/LLaMA layout), computed in float32. Dot products of rotated queries and keys
    depend only on their relative position.

    Example:
    >>> import numpy as np
    >>> q = np.random.default_rng(0).normal(size=(1, 1, 1, 8)).astype("float32")
    >>> k = np.random.default_rng(1).normal(size=(1, 1, 1, 8)).astype("float32")
    >>> dot = lambda a, b: float((keras.ops.convert_to_numpy(apply_rotary(q, a)) *
    ...                           keras.ops.convert_to_numpy(apply_rotary(k, b))).sum())
    >>> round(dot(3, 1), 4) == round(dot(7, 5), 4)
    True
    """
    dtype = x.dtype
    length, dim = ops.shape(x)[1], ops.shape(x)[-1]
    half = dim // 2
    inverse = 1.0 / (max_wavelength ** (ops.arange(half, dtype="float32") * 2.0 / dim))
    positions = ops.cast(ops.arange(length) + start_index, "float32")
    angles = positions[:, None] * inverse[None, :]
    angles = ops.concatenate([angles, angles], axis=-1)[None, :, None, :]
    x = ops.cast(x, "float32")
    x1, x2 = ops.split(x, 2, axis=-1)
    rotated = ops.concatenate([-x2, x1], axis=-1)
    return ops.cast(x * ops.cos(angles) + rotated * ops.sin(angles), dtype)


@keras.saving.register_keras_serializable(package="kerlm")
class RelativePositionBias(keras.layers.Layer):
    """T5's learned attention bias per head and bucket of relative position.

    Relative positions are bucketed: small distances exactly, larger ones logarithmically up
    to `max_distance`. `bidirectional=False` (the decoder) gives all future positions one
    bucket. Called on the `[batch, query_length, ...]` queries, it returns
    `[1, num_heads, query_length, key_length]` float32 scores to add to the attention logits
    (`key_length` defaults to the query length; `start_index` is the first query's position).

    Example:
    >>> import numpy as np
    >>> bias = RelativePositionBias(num_heads=2)
    >>> tuple(bias(np.zeros((1, 3, 8)), key_length=5).shape), bias.count_params()
    ((1, 2, 3, 5), 64)
    """

    def __init__(self, num_heads, num_buckets=32, max_distance=128, bidirectional=True,
                 **kwargs):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.num_buckets = num_buckets
        self.max_distance = max_distance
        self.bidirectional = bidirectional

    def build(self, *args):
        self.embeddings = self.add_weight(
            name="embeddings", shape=(self.num_buckets, self.num_heads),
            initializer=keras.initializers.RandomNormal(stddev=0.02))
        self.built = True

    def bucket(self, relative_position):
        """The bucket index of each `key_position - query_position`."""
        buckets = self.num_buckets
        result = 0
        if self.bidirectional:
            buckets //= 2
            result = ops.cast(relative_position > 0, "int32") * buckets
            distance = ops.abs(relative_position)
        else:
            distance = -ops.minimum(relative_position, 0)
        max_exact = buckets // 2
        large = max_exact + ops.cast(
            ops.log(ops.cast(ops.maximum(distance, 1), "float32") / max_exact)
            / math.log(self.max_distance / max_exact) * (buckets - max_exact), "int32")
        large = ops.minimum(large, buckets - 1)
        return result + ops.where(distance < max_exact, distance, large)

    def call(self, query, key_length=None, start_index=0):
        query_length = ops.shape(query)[1]
        key_length = query_length if key_length is None else key_length
        query = ops.arange(query_length)[:, None] + start_index
        key = ops.arange(key_length)[None, :]
        values = ops.take(ops.cast(self.embeddings, "float32"), self.bucket(key - query), axis=0)
        return ops.expand_dims(ops.transpose(values, (2, 0, 1)), axis=0)

    def get_config(self):
        config = super().get_config()
        config.update(num_heads=self.num_heads, num_buckets=self.num_buckets,
                      max_distance=self.max_distance, bidirectional=self.bidirectional)
        return config
