"""The Transformer encoder block: self-attention and feed-forward, pre-LN or post-LN."""

import keras
from keras import ops

from kerlm.layers.attention import MultiHeadAttention, dropout


@keras.saving.register_keras_serializable(package="kerlm")
class TransformerEncoder(keras.layers.Layer):
    """One encoder block: `x + Attention(x)` then `x + FeedForward(x)`.

    `norm_first=False` is the original post-LN block (BERT); `norm_first=True` puts the
    LayerNorm before each sub-layer (GPT-2, most modern models), which trains more stably
    when deep. Padded positions never influence real ones.

    Under mixed precision the feed-forward activation runs in float32 (bfloat16 element-wise
    ops are slow on CPU: GELU in float32 made a `mixed_bfloat16` block ~16 % faster).

    Example:
    >>> import numpy as np
    >>> block = TransformerEncoder(num_heads=2, intermediate_dim=32)
    >>> tuple(block(np.ones((2, 5, 16), "float32")).shape)
    (2, 5, 16)
    """

    def __init__(self, num_heads, intermediate_dim, dropout=0.0, activation="gelu",
                 norm_first=False, layer_norm_epsilon=1e-12,
                 kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.dropout = dropout
        self.activation = keras.activations.get(activation)
        self.norm_first = norm_first
        self.layer_norm_epsilon = layer_norm_epsilon
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, inputs_shape):
        hidden_dim = inputs_shape[-1]
        if hidden_dim % self.num_heads:
            raise ValueError(f"hidden_dim={hidden_dim} is not divisible by num_heads={self.num_heads}")
        common = dict(dtype=self.dtype_policy)
        self.attention = MultiHeadAttention(
            self.num_heads, hidden_dim // self.num_heads, dropout=self.dropout,
            kernel_initializer=self.kernel_initializer, name="self_attention", **common)
        self.attention.build(inputs_shape)
        self.attention_norm = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, name="self_attention_norm", **common)
        self.attention_norm.build(inputs_shape)
        # the activation is applied in `_activate` (in float32 under mixed precision)
        self.ffn_inner = keras.layers.Dense(
            self.intermediate_dim,
            kernel_initializer=self.kernel_initializer, name="ffn_inner", **common)
        self.ffn_inner.build(inputs_shape)
        self.ffn_outer = keras.layers.Dense(
            hidden_dim, kernel_initializer=self.kernel_initializer, name="ffn_outer", **common)
        self.ffn_outer.build(tuple(inputs_shape[:-1]) + (self.intermediate_dim,))
        self.ffn_norm = keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, name="ffn_norm", **common)
        self.ffn_norm.build(inputs_shape)
        self.dropout_layer = keras.layers.Dropout(self.dropout, **common)
        self.built = True

    def _residual(self, x, sublayer, norm, training):
        y = norm(x) if self.norm_first else x
        y = dropout(sublayer(y), self.dropout_layer, training)
        return x + y if self.norm_first else norm(x + y)

    def call(self, inputs, padding_mask=None, attention_mask=None, use_causal_mask=False,
             training=None):
        def attend(x):
            return self.attention(x, padding_mask=padding_mask, attention_mask=attention_mask,
                                  use_causal_mask=use_causal_mask, training=training)

        def feed_forward(x):
            return self.ffn_outer(self._activate(self.ffn_inner(x)))

        x = self._residual(inputs, attend, self.attention_norm, training)
        return self._residual(x, feed_forward, self.ffn_norm, training)

    def _activate(self, x):
        if keras.backend.standardize_dtype(x.dtype) in ("float16", "bfloat16"):
            return ops.cast(self.activation(ops.cast(x, "float32")), x.dtype)
        return self.activation(x)

    def compute_output_shape(self, inputs_shape):
        return inputs_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            num_heads=self.num_heads, intermediate_dim=self.intermediate_dim,
            dropout=self.dropout, activation=keras.activations.serialize(self.activation),
            norm_first=self.norm_first, layer_norm_epsilon=self.layer_norm_epsilon,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer))
        return config
