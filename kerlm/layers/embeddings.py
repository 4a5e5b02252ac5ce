"""Position embeddings that are added to token embeddings: learned or sinusoidal."""

import keras
from keras import ops

from kerlm.layers.position import sinusoidal_encoding


@keras.saving.register_keras_serializable(package="kerlm")
class PositionEmbedding(keras.layers.Layer):
    """Learned absolute position embedding for sequences up to `sequence_length`.

    Returns `[batch, length, hidden]` embeddings of positions `start_index ..` (broadcast
    over the batch), to be added to the token embeddings.

    Example:
    >>> import numpy as np
    >>> tuple(PositionEmbedding(10)(np.zeros((2, 4, 8), "float32")).shape)
    (2, 4, 8)
    """

    def __init__(self, sequence_length, initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.sequence_length = sequence_length
        self.initializer = keras.initializers.get(initializer)

    def build(self, inputs_shape):
        self.position_embeddings = self.add_weight(
            name="embeddings", shape=(self.sequence_length, inputs_shape[-1]),
            initializer=self.initializer)
        self.built = True

    def call(self, inputs, start_index=0):
        shape = ops.shape(inputs)
        table = ops.convert_to_tensor(self.position_embeddings)
        positions = ops.slice(table, [start_index, 0], [shape[1], shape[2]])
        return ops.broadcast_to(ops.cast(positions, self.compute_dtype), shape)

    def compute_output_shape(self, inputs_shape):
        return inputs_shape

    def get_config(self):
        config = super().get_config()
        config.update(sequence_length=self.sequence_length,
                      initializer=keras.initializers.serialize(self.initializer))
        return config


@keras.saving.register_keras_serializable(package="kerlm")
class SinusoidalPositionEncoding(keras.layers.Layer):
    """Fixed sine/cosine position encodings (no weights), same interface as `PositionEmbedding`.

    Example:
    >>> import numpy as np
    >>> tuple(SinusoidalPositionEncoding()(np.zeros((2, 4, 8), "float32"), start_index=3).shape)
    (2, 4, 8)
    """

    def __init__(self, max_wavelength=10000.0, **kwargs):
        super().__init__(**kwargs)
        self.max_wavelength = max_wavelength
        self.built = True

    def call(self, inputs, start_index=0):
        shape = ops.shape(inputs)
        encoding = sinusoidal_encoding(shape[1], shape[2], start_index, self.max_wavelength)
        return ops.broadcast_to(ops.cast(encoding, self.compute_dtype), shape)

    def compute_output_shape(self, inputs_shape):
        return inputs_shape

    def get_config(self):
        return {**super().get_config(), "max_wavelength": self.max_wavelength}
