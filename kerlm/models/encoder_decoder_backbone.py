"""Encoder-decoder backbone (original Transformer, BART, T5) with cached decoding, and its
presets (generic `encoder_decoder_*` sizes, `bart_base`, `t5_small`)."""

import keras
from keras import ops

from kerlm.layers import TransformerDecoder, TransformerEncoder
from kerlm.models import registry
from kerlm.models.backbone import (Backbone, EmbeddingStack, apply_blocks, block_options,
                                   constructor_config, final_norm, token_embedding)


@keras.saving.register_keras_serializable(package="kerlm")
@registry.register_backbone
class EncoderDecoderBackbone(Backbone):
    """An encoder stack and a decoder stack sharing one token embedding; defaults are BART's.

    Inputs are a dict with keras-hub's keys `encoder_token_ids`, `encoder_padding_mask`,
    `decoder_token_ids`, `decoder_padding_mask`; outputs are `encoder_sequence_output` and
    `decoder_sequence_output`. `num_decoder_layers` defaults to `num_layers`. T5 is
    `norm="rms_norm", norm_first=True, use_bias=False, scale_scores=False,
    position="relative", activation="relu"`; the original Transformer is
    `norm_first=False, position="sinusoidal", scale_embeddings=True, activation="relu"`.

    Incremental decoding: `encode(token_ids, padding_mask)` runs the encoder once,
    `init_cache(encoder_output, max_length)` gives an empty self-attention cache and the
    projected cross-attention keys/values, and `call_decoder_with_cache(...)` runs new
    decoder tokens; the result equals the full forward pass over the same prefix.

    Example:
    >>> import numpy as np
    >>> backbone = EncoderDecoderBackbone(vocabulary_size=50, num_layers=1, hidden_dim=8,
    ...                                   num_heads=2, intermediate_dim=16)
    >>> out = backbone({"encoder_token_ids": np.array([[5, 6, 7]]),
    ...                 "encoder_padding_mask": np.ones((1, 3)),
    ...                 "decoder_token_ids": np.array([[2, 9]]),
    ...                 "decoder_padding_mask": np.ones((1, 2))})
    >>> tuple(out["encoder_sequence_output"].shape), tuple(out["decoder_sequence_output"].shape)
    ((1, 3, 8), (1, 2, 8))
    """

    capabilities = frozenset({"encode", "seq2seq"})

    def __init__(self, vocabulary_size, num_layers, hidden_dim, num_heads, intermediate_dim,
                 num_decoder_layers=None, max_sequence_length=1024, dropout=0.1,
                 activation="gelu", gated_ffn=False, norm="layer_norm", norm_first=False,
                 layer_norm_epsilon=1e-5, num_key_value_heads=None, head_dim=None,
                 use_bias=True, scale_scores=True, position="learned",
                 rotary_max_wavelength=10000.0, embedding_norm=None, scale_embeddings=False,
                 dtype=None, **kwargs):
        if embedding_norm is None:  # post-LN stacks normalize their embeddings (BART)
            embedding_norm = not norm_first
        config = constructor_config(locals())
        inputs = {name: keras.Input(shape=(None,), dtype="int32", name=name)
                  for name in ("encoder_token_ids", "encoder_padding_mask",
                               "decoder_token_ids", "decoder_padding_mask")}
        shared = token_embedding(config, dtype)
        options = block_options(config)

        encoder_embeddings = EmbeddingStack(config, shared, "encoder_", dtype)
        x = encoder_embeddings(inputs["encoder_token_ids"])
        bias = encoder_embeddings.attention_bias(x)
        encoder_blocks = [TransformerEncoder(**options, dtype=dtype, name=f"encoder_layer_{i}")
                          for i in range(num_layers)]
        encoder_norm = final_norm(config, dtype, "encoder_final_norm")
        encoder_output = apply_blocks(encoder_blocks, x, encoder_norm, attention_bias=bias,
                                      padding_mask=inputs["encoder_padding_mask"])

        decoder_embeddings = EmbeddingStack(config, shared, "decoder_", dtype, bidirectional=False)
        x = decoder_embeddings(inputs["decoder_token_ids"])
        bias = decoder_embeddings.attention_bias(x)
        decoder_blocks = [TransformerDecoder(**options, cross_attention=True, dtype=dtype,
                                             name=f"decoder_layer_{i}")
                          for i in range(num_decoder_layers or num_layers)]
        decoder_norm = final_norm(config, dtype, "decoder_final_norm")
        x = apply_blocks(decoder_blocks, x, decoder_norm, encoder_output=encoder_output,
                         padding_mask=inputs["decoder_padding_mask"],
                         encoder_padding_mask=inputs["encoder_padding_mask"], attention_bias=bias)
        super().__init__(inputs=inputs, outputs={"encoder_sequence_output": encoder_output,
                                                 "decoder_sequence_output": x},
                         dtype=dtype, **kwargs)
        self._remember(config)
        self.token_embedding = shared
        self.encoder_embeddings, self.decoder_embeddings = encoder_embeddings, decoder_embeddings
        self.encoder_layers, self.decoder_layers = encoder_blocks, decoder_blocks
        self.encoder_final_norm, self.decoder_final_norm = encoder_norm, decoder_norm

    def encode(self, token_ids, padding_mask, training=None):
        """The encoder's `[batch, length, hidden_dim]` output."""
        x = self.encoder_embeddings(token_ids, training=training)
        bias = self.encoder_embeddings.attention_bias(x)
        return apply_blocks(self.encoder_layers, x, self.encoder_final_norm,
                            padding_mask=padding_mask, attention_bias=bias, training=training)

    def features(self, token_ids, padding_mask, segment_ids=None):
        """`{"sequence_output"}`: the encoder's output (`encode`; no segments, so
        `segment_ids` is ignored). The decoder is unused; its weights stay in the model."""
        return {"sequence_output": self.encode(token_ids, padding_mask)}

    def init_cache(self, encoder_output, max_length):
        """`(self_cache, cross_cache)` for decoding up to `max_length` tokens.

        Both are tuples of one tensor per decoder layer: `self_cache` empty,
        `[batch, 2, max_length, kv_heads, head_dim]`; `cross_cache` the layer's projected
        encoder keys and values.
        """
        return (self.init_self_cache(ops.shape(encoder_output)[0], max_length),
                self.cross_cache(encoder_output))

    def init_self_cache(self, batch_size, max_length):
        """An empty decoder self-attention cache: per layer `[batch, 2, max_length, kv, hd]`."""
        attention = self.decoder_layers[0].attention
        shape = (batch_size, 2, max_length, attention.num_key_value_heads, attention.key_dim)
        return tuple(ops.zeros(shape, dtype=self.compute_dtype) for _ in self.decoder_layers)

    def cross_cache(self, encoder_output):
        """Each decoder layer's cross-attention keys/values `[batch, 2, length, kv, hd]`."""
        return tuple(block.cross_attention_cache(encoder_output) for block in self.decoder_layers)

    def call_decoder_with_cache(self, token_ids, self_cache, cross_cache, cache_index,
                                encoder_padding_mask=None):
        """Run decoder `token_ids` at positions `cache_index ..`; returns `(hidden, self_cache)`."""
        x = self.decoder_embeddings(token_ids, start_index=cache_index)
        bias = self.decoder_embeddings.attention_bias(x, ops.shape(self_cache[0])[2], cache_index)
        caches = []
        for block, layer_cache, layer_cross in zip(self.decoder_layers, self_cache, cross_cache):
            x, layer_cache = block(x, encoder_padding_mask=encoder_padding_mask,
                                   attention_bias=bias, self_cache=layer_cache,
                                   cross_cache=layer_cross, cache_index=cache_index)
            caches.append(layer_cache)
        if self.decoder_final_norm is not None:
            x = self.decoder_final_norm(x)
        return x, tuple(caches)


registry.register_presets(EncoderDecoderBackbone, {
    **registry.sized_presets("encoder_decoder", sizes={"base": (6, 768, 12, 3072)},
                             side=" each side"),
    "bart_base": {
        "description": "BART-base: 6 + 6 layers, 768 d, 12 heads, post-LN, 1024 positions.",
        "config": dict(vocabulary_size=50265, num_layers=6, hidden_dim=768, num_heads=12,
                       intermediate_dim=3072, max_sequence_length=1024, dropout=0.1,
                       activation="gelu", layer_norm_epsilon=1e-5),
    },
    "t5_small": {
        "description": "T5-small (60 M): 6 + 6 layers, 512 d, 8 heads, RMSNorm pre-LN, "
                       "relative position bias, no biases, ReLU.",
        "config": dict(vocabulary_size=32128, num_layers=6, hidden_dim=512, num_heads=8,
                       intermediate_dim=2048, dropout=0.1, activation="relu", norm="rms_norm",
                       norm_first=True, layer_norm_epsilon=1e-6, use_bias=False,
                       scale_scores=False, position="relative"),
    },
})
