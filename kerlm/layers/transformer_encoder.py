"""The Transformer encoder block: self-attention and feed-forward, pre-LN or post-LN."""

import keras

from kerlm.layers.attention import MultiHeadAttention, dropout
from kerlm.layers.feed_forward import FeedForward
from kerlm.layers.normalization import normalization


@keras.saving.register_keras_serializable(package="kerlm")
class TransformerEncoder(keras.layers.Layer):
    """One encoder block: `x + Attention(x)` then `x + FeedForward(x)`.

    `norm_first=False` is the original post-LN block (BERT, BART); `norm_first=True` puts
    the normalization before each sub-layer (GPT-2, T5, LLaMA), which trains more stably
    when deep. `norm` is `"layer_norm"` or `"rms_norm"`; `activation` and `gated` pick the
    feed-forward (`"gelu"` + `gated=True` is GeGLU, `"silu"` + `gated=True` SwiGLU);
    `num_key_value_heads`, `head_dim`, `use_bias`, `scale_scores` and
    `rotary_max_wavelength` configure the attention (see `MultiHeadAttention`). Padded
    positions never influence real ones.

    Example:
    >>> import numpy as np
    >>> block = TransformerEncoder(num_heads=2, intermediate_dim=32)
    >>> tuple(block(np.ones((2, 5, 16), "float32")).shape)
    (2, 5, 16)
    """

    def __init__(self, num_heads, intermediate_dim, dropout=0.0, activation="gelu",
                 gated=False, norm="layer_norm", norm_first=False, layer_norm_epsilon=1e-12,
                 num_key_value_heads=None, head_dim=None, use_bias=True, scale_scores=True,
                 rotary_max_wavelength=None, kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.dropout = dropout
        self.activation = activation
        self.gated = gated
        self.norm = norm
        self.norm_first = norm_first
        self.layer_norm_epsilon = layer_norm_epsilon
        self.num_key_value_heads = num_key_value_heads
        self.head_dim = head_dim
        self.use_bias = use_bias
        self.scale_scores = scale_scores
        self.rotary_max_wavelength = rotary_max_wavelength
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def _attention(self, name, rotary):
        return MultiHeadAttention(
            self.num_heads, self.head_dim or self._hidden_dim // self.num_heads,
            num_key_value_heads=self.num_key_value_heads, dropout=self.dropout,
            use_bias=self.use_bias, scale_scores=self.scale_scores,
            rotary_max_wavelength=self.rotary_max_wavelength if rotary else None,
            kernel_initializer=self.kernel_initializer, dtype=self.dtype_policy, name=name)

    def _norm(self, name, shape):
        layer = normalization(self.norm, self.layer_norm_epsilon, self.dtype_policy, name)
        layer.build(shape)
        return layer

    def build(self, inputs_shape):
        self._hidden_dim = hidden_dim = inputs_shape[-1]
        if self.head_dim is None and hidden_dim % self.num_heads:
            raise ValueError(f"hidden_dim={hidden_dim} is not divisible by num_heads={self.num_heads}")
        self.attention = self._attention("self_attention", rotary=True)
        self.attention.build(inputs_shape)
        self.attention_norm = self._norm("self_attention_norm", inputs_shape)
        self.ffn = FeedForward(self.intermediate_dim, self.activation, gated=self.gated,
                               use_bias=self.use_bias, kernel_initializer=self.kernel_initializer,
                               dtype=self.dtype_policy, name="ffn")
        self.ffn.build(inputs_shape)
        self.ffn_norm = self._norm("ffn_norm", inputs_shape)
        self.dropout_layer = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy)
        self.built = True

    def _residual(self, x, sublayer, norm, training):
        y = norm(x) if self.norm_first else x
        y = dropout(sublayer(y), self.dropout_layer, training)
        return x + y if self.norm_first else norm(x + y)

    def call(self, inputs, padding_mask=None, attention_mask=None, attention_bias=None,
             training=None):
        def attend(x):
            return self.attention(x, padding_mask=padding_mask, attention_mask=attention_mask,
                                  attention_bias=attention_bias, training=training)

        x = self._residual(inputs, attend, self.attention_norm, training)
        return self._residual(x, self.ffn, self.ffn_norm, training)

    def compute_output_shape(self, inputs_shape):
        return inputs_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            num_heads=self.num_heads, intermediate_dim=self.intermediate_dim,
            dropout=self.dropout, activation=self.activation, gated=self.gated,
            norm=self.norm, norm_first=self.norm_first,
            layer_norm_epsilon=self.layer_norm_epsilon,
            num_key_value_heads=self.num_key_value_heads, head_dim=self.head_dim,
            use_bias=self.use_bias, scale_scores=self.scale_scores,
            rotary_max_wavelength=self.rotary_max_wavelength,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer))
        return config
