"""Token, position and segment embeddings."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="kerlm")
class PositionEmbedding(keras.layers.Layer):
    """Learned absolute position embedding for sequences up to `sequence_length`.

    Returns `[batch, length, hidden]` embeddings of positions `0..length-1` (broadcast
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

    def call(self, inputs):
        shape = ops.shape(inputs)
        positions = ops.convert_to_tensor(self.position_embeddings)[: shape[1]]
        return ops.broadcast_to(ops.cast(positions, self.compute_dtype), shape)

    def compute_output_shape(self, inputs_shape):
        return inputs_shape

    def get_config(self):
        config = super().get_config()
        config.update(sequence_length=self.sequence_length,
                      initializer=keras.initializers.serialize(self.initializer))
        return config


@keras.saving.register_keras_serializable(package="kerlm")
class TokenAndPositionEmbedding(keras.layers.Layer):
    """Token embedding plus learned position embedding (and segment embedding if asked).

    Example:
    >>> import numpy as np
    >>> layer = TokenAndPositionEmbedding(100, 16, 8)
    >>> tuple(layer(np.array([[5, 6, 0]])).shape)
    (1, 3, 8)
    """

    def __init__(self, vocabulary_size, sequence_length, embedding_dim, num_segments=0,
                 initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.vocabulary_size = vocabulary_size
        self.sequence_length = sequence_length
        self.embedding_dim = embedding_dim
        self.num_segments = num_segments
        self.initializer = keras.initializers.get(initializer)
        common = dict(dtype=self.dtype_policy)
        self.token_embedding = keras.layers.Embedding(
            vocabulary_size, embedding_dim, embeddings_initializer=self.initializer,
            name="token_embedding", **common)
        self.position_embedding = PositionEmbedding(
            sequence_length, initializer=self.initializer, name="position_embedding", **common)
        self.segment_embedding = keras.layers.Embedding(
            num_segments, embedding_dim, embeddings_initializer=self.initializer,
            name="segment_embedding", **common) if num_segments else None

    def build(self, token_ids_shape, segment_ids_shape=None):
        self.token_embedding.build(token_ids_shape)
        self.position_embedding.build(tuple(token_ids_shape) + (self.embedding_dim,))
        if self.segment_embedding is not None:
            self.segment_embedding.build(token_ids_shape)
        self.built = True

    def call(self, token_ids, segment_ids=None):
        x = self.token_embedding(token_ids)
        x = x + self.position_embedding(x)
        if self.segment_embedding is not None:
            if segment_ids is None:
                segment_ids = ops.zeros_like(token_ids)
            x = x + self.segment_embedding(segment_ids)
        return x

    def compute_output_shape(self, token_ids_shape, segment_ids_shape=None):
        return tuple(token_ids_shape) + (self.embedding_dim,)

    def get_config(self):
        config = super().get_config()
        config.update(vocabulary_size=self.vocabulary_size, sequence_length=self.sequence_length,
                      embedding_dim=self.embedding_dim, num_segments=self.num_segments,
                      initializer=keras.initializers.serialize(self.initializer))
        return config
