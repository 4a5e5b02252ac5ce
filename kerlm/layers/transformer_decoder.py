"""The Transformer decoder block: causal self-attention, cross-attention, feed-forward."""

import keras

from kerlm.layers.transformer_encoder import TransformerEncoder


@keras.saving.register_keras_serializable(package="kerlm")
class TransformerDecoder(TransformerEncoder):
    """One decoder block: causal self-attention, optional cross-attention, feed-forward.

    With `cross_attention=False` it is a GPT block; with `True` it also attends to an
    encoder's output (original Transformer, BART, T5). Takes every option of
    `TransformerEncoder`. Rotary embeddings, if configured, apply to self-attention only.

    Incremental decoding: pass `self_cache` (`[batch, 2, max_length, kv_heads, head_dim]`)
    and `cache_index`, plus `cross_cache` from `cross_attention_cache(encoder_output)` so the
    encoder's keys and values are projected once; the block then returns `(x, self_cache)`.

    Example:
    >>> import numpy as np
    >>> block = TransformerDecoder(num_heads=2, intermediate_dim=32, cross_attention=True)
    >>> x, memory = np.ones((2, 4, 16), "float32"), np.ones((2, 6, 16), "float32")
    >>> tuple(block(x, encoder_output=memory).shape)
    (2, 4, 16)
    """

    def __init__(self, num_heads, intermediate_dim, cross_attention=False, norm_first=True,
                 **kwargs):
        super().__init__(num_heads, intermediate_dim, norm_first=norm_first, **kwargs)
        self.cross_attention = cross_attention

    def build(self, inputs_shape, encoder_output_shape=None):
        super().build(inputs_shape)
        if self.cross_attention:
            shape = encoder_output_shape or inputs_shape
            self.encoder_attention = self._attention("cross_attention", rotary=False)
            self.encoder_attention.build(inputs_shape, shape)
            self.encoder_attention_norm = self._norm("cross_attention_norm", inputs_shape)

    def cross_attention_cache(self, encoder_output):
        """The encoder's projected keys and values, `[batch, 2, length, kv_heads, head_dim]`."""
        return self.encoder_attention.key_value_cache(encoder_output)

    def call(self, inputs, encoder_output=None, padding_mask=None, encoder_padding_mask=None,
             attention_bias=None, self_cache=None, cross_cache=None, cache_index=None,
             training=None):
        new_cache = []

        def attend(x):
            out = self.attention(x, padding_mask=padding_mask, use_causal_mask=True,
                                 attention_bias=attention_bias, cache=self_cache,
                                 cache_index=cache_index, training=training)
            if self_cache is None:
                return out
            new_cache.append(out[1])
            return out[0]

        def cross_attend(x):
            return self.encoder_attention(x, key_value=encoder_output, padding_mask=encoder_padding_mask,
                                          cache=cross_cache, training=training)

        x = self._residual(inputs, attend, self.attention_norm, training)
        if self.cross_attention:
            x = self._residual(x, cross_attend, self.encoder_attention_norm, training)
        x = self._residual(x, self.ffn, self.ffn_norm, training)
        return x if self_cache is None else (x, new_cache[0])

    def get_config(self):
        return {**super().get_config(), "cross_attention": self.cross_attention}
