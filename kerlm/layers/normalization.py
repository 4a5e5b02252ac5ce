"""LayerNorm and RMSNorm, picked by name."""

import keras
from keras import ops

NORMS = ("layer_norm", "rms_norm")


@keras.saving.register_keras_serializable(package="kerlm")
class RMSNormalization(keras.layers.Layer):
    """`x / sqrt(mean(x²) + epsilon) * scale` over the last axis, computed in float32.

    The normalization of T5 and LLaMA: no mean subtraction and no bias. Keras's own
    `RMSNormalization` computes in the input dtype, which loses precision under
    `mixed_bfloat16`.

    Example:
    >>> import numpy as np
    >>> y = RMSNormalization()(np.array([[3.0, -4.0]], "float32"))
    >>> [round(float(v), 4) for v in keras.ops.convert_to_numpy(y)[0]]
    [0.8485, -1.1314]
    """

    def __init__(self, epsilon=1e-6, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = epsilon

    def build(self, inputs_shape):
        self.scale = self.add_weight(name="scale", shape=(inputs_shape[-1],), initializer="ones")
        self.built = True

    def call(self, inputs):
        x = ops.cast(inputs, "float32")
        x = x * ops.rsqrt(ops.mean(ops.square(x), axis=-1, keepdims=True) + self.epsilon)
        return ops.cast(x * ops.cast(self.scale, "float32"), self.compute_dtype)

    def compute_output_shape(self, inputs_shape):
        return inputs_shape

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


def normalization(kind, epsilon, dtype=None, name=None):
    """A `"layer_norm"` (LayerNormalization) or `"rms_norm"` (RMSNormalization) layer.

    Example:
    >>> type(normalization("rms_norm", 1e-6)).__name__
    'RMSNormalization'
    """
    if kind == "layer_norm":
        return keras.layers.LayerNormalization(epsilon=epsilon, dtype=dtype, name=name)
    if kind == "rms_norm":
        return RMSNormalization(epsilon=epsilon, dtype=dtype, name=name)
    raise ValueError(f"norm must be one of {NORMS}, got {kind!r}")
