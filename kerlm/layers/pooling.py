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
