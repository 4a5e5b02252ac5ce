"""Pooling a sequence to one vector per example, ignoring padding."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="kerlm")
class MaskedMeanPooling(keras.layers.Layer):
    """Mean of `[batch, length, hidden]` over the positions where `padding_mask` is 1.

    Example:
    >>> import numpy as np
    >>> x = np.array([[[1.0], [3.0], [100.0]]], "float32")
    >>> keras.ops.convert_to_numpy(MaskedMeanPooling()(x, np.array([[1, 1, 0]]))).tolist()
    [[2.0]]
    """

    def call(self, inputs, padding_mask):
        mask = ops.cast(ops.expand_dims(padding_mask, -1), inputs.dtype)
        total = ops.sum(inputs * mask, axis=1)
        count = ops.maximum(ops.sum(mask, axis=1), ops.cast(1.0, inputs.dtype))
        return total / count

    def compute_output_shape(self, inputs_shape, padding_mask_shape=None):
        return (inputs_shape[0], inputs_shape[-1])


@keras.saving.register_keras_serializable(package="kerlm")
class MaskedMaxPooling(keras.layers.Layer):
    """Largest value of each feature of `[batch, length, hidden]` over the positions where
    `padding_mask` is 1 (sentence-transformers' max pooling: padded states count as -1e9).

    Example:
    >>> import numpy as np
    >>> x = np.array([[[1.0, -5.0], [3.0, -7.0], [100.0, 9.0]]], "float32")
    >>> keras.ops.convert_to_numpy(MaskedMaxPooling()(x, np.array([[1, 1, 0]]))).tolist()
    [[3.0, -5.0]]
    """

    def call(self, inputs, padding_mask):
        real = ops.expand_dims(ops.cast(padding_mask, "bool"), -1)
        return ops.max(ops.where(real, inputs, ops.cast(-1e9, inputs.dtype)), axis=1)

    def compute_output_shape(self, inputs_shape, padding_mask_shape=None):
        return (inputs_shape[0], inputs_shape[-1])


@keras.saving.register_keras_serializable(package="kerlm")
class TokenPooling(keras.layers.Layer):
    """The state of one token per example: the `"first"` or the `"last"` real one.

    `"last"` picks the last position where `padding_mask` is 1 (the summary of everything
    before it in a causal model); rows without real tokens give position 0.

    Example:
    >>> import numpy as np
    >>> x = np.arange(8, dtype="float32").reshape(2, 4, 1)
    >>> mask = np.array([[1, 1, 1, 0], [1, 0, 0, 0]])
    >>> keras.ops.convert_to_numpy(TokenPooling("last")(x, mask)).ravel().tolist()
    [2.0, 4.0]
    >>> keras.ops.convert_to_numpy(TokenPooling("first")(x, mask)).ravel().tolist()
    [0.0, 4.0]
    """

    def __init__(self, position="last", **kwargs):
        super().__init__(**kwargs)
        if position not in ("first", "last"):
            raise ValueError(f"position must be 'first' or 'last', got {position!r}")
        self.position = position

    def call(self, inputs, padding_mask):
        if self.position == "first":
            return inputs[:, 0, :]
        length = ops.shape(inputs)[1]
        last = ops.max(ops.arange(length, dtype="int32")[None, :]
                       * ops.cast(padding_mask, "int32"), axis=1)
        # A one-hot contraction rather than a gather: exact, and the same on every backend.
        return ops.einsum("bl,bld->bd", ops.one_hot(last, length, dtype=inputs.dtype), inputs)

    def compute_output_shape(self, inputs_shape, padding_mask_shape=None):
        return (inputs_shape[0], inputs_shape[-1])

    def get_config(self):
        return {**super().get_config(), "position": self.position}
