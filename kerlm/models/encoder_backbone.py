"""BERT-like encoder-only backbone."""

import keras

from kerlm.layers import TokenAndPositionEmbedding, TransformerEncoder
from kerlm.models.backbone import Backbone


@keras.saving.register_keras_serializable(package="kerlm")
class EncoderBackbone(Backbone):
    """A stack of Transformer encoder blocks over token + position (+ segment) embeddings.

    Inputs are a dict with keras-hub's keys: `token_ids` and `padding_mask` (int
    `[batch, length]`) and, when `num_segments > 0`, `segment_ids`. Outputs are a dict with
    `sequence_output` (`[batch, length, hidden_dim]`) and `pooled_output` (the first token's
    state through a tanh dense layer, as in BERT).

    Example:
    >>> import numpy as np
    >>> backbone = EncoderBackbone(vocabulary_size=50, num_layers=1, hidden_dim=8,
    ...                            num_heads=2, intermediate_dim=16)
    >>> out = backbone({"token_ids": np.array([[2, 7, 3, 0]]),
    ...                 "padding_mask": np.array([[1, 1, 1, 0]])})
    >>> tuple(out["sequence_output"].shape), tuple(out["pooled_output"].shape)
    ((1, 4, 8), (1, 8))
    """

    def __init__(self, vocabulary_size, num_layers, hidden_dim, num_heads, intermediate_dim,
                 max_sequence_length=512, num_segments=0, dropout=0.1, activation="gelu",
                 norm_first=False, layer_norm_epsilon=1e-12, dtype=None, **kwargs):
        token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        padding_mask = keras.Input(shape=(None,), dtype="int32", name="padding_mask")
        inputs = {"token_ids": token_ids, "padding_mask": padding_mask}
        segment_ids = None
        if num_segments:
            segment_ids = keras.Input(shape=(None,), dtype="int32", name="segment_ids")
            inputs["segment_ids"] = segment_ids

        initializer = keras.initializers.TruncatedNormal(stddev=0.02)
        x = TokenAndPositionEmbedding(
            vocabulary_size, max_sequence_length, hidden_dim, num_segments=num_segments,
            initializer=initializer, dtype=dtype, name="embeddings")(token_ids, segment_ids)
        norm = lambda name: keras.layers.LayerNormalization(  # noqa: E731
            epsilon=layer_norm_epsilon, dtype=dtype, name=name)
        if not norm_first:
            x = norm("embeddings_norm")(x)
        x = keras.layers.Dropout(dropout, dtype=dtype, name="embeddings_dropout")(x)
        for i in range(num_layers):
            x = TransformerEncoder(
                num_heads, intermediate_dim, dropout=dropout, activation=activation,
                norm_first=norm_first, layer_norm_epsilon=layer_norm_epsilon,
                kernel_initializer=initializer, dtype=dtype,
                name=f"transformer_layer_{i}")(x, padding_mask=padding_mask)
        if norm_first:
            x = norm("final_norm")(x)
        pooled = keras.layers.Dense(hidden_dim, activation="tanh", kernel_initializer=initializer,
                                    dtype=dtype, name="pooled_dense")(x[:, 0, :])
        super().__init__(inputs=inputs, outputs={"sequence_output": x, "pooled_output": pooled},
                         dtype=dtype, **kwargs)
        self.vocabulary_size = vocabulary_size
        self.num_layers = num_layers
        self.hidden_dim = hidden_dim
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.max_sequence_length = max_sequence_length
        self.num_segments = num_segments
        self.dropout = dropout
        self.activation = activation
        self.norm_first = norm_first
        self.layer_norm_epsilon = layer_norm_epsilon

    def get_config(self):
        return {
            "name": self.name, "trainable": self.trainable,
            "dtype": keras.dtype_policies.serialize(self.dtype_policy),
            "vocabulary_size": self.vocabulary_size, "num_layers": self.num_layers,
            "hidden_dim": self.hidden_dim, "num_heads": self.num_heads,
            "intermediate_dim": self.intermediate_dim,
            "max_sequence_length": self.max_sequence_length,
            "num_segments": self.num_segments, "dropout": self.dropout,
            "activation": self.activation, "norm_first": self.norm_first,
            "layer_norm_epsilon": self.layer_norm_epsilon,
        }
