"""GPT-like decoder-only backbone with a key/value cache for incremental decoding, and its
presets (generic `decoder_*` sizes, `gpt2_small`)."""

import keras
from keras import ops

from kerlm.layers import TransformerDecoder
from kerlm.models import registry
from kerlm.models.backbone import (Backbone, EmbeddingStack, apply_blocks, block_options,
                                   constructor_config, final_norm, token_embedding)


@keras.saving.register_keras_serializable(package="kerlm")
@registry.register_backbone
class DecoderBackbone(Backbone):
    """A stack of causal Transformer blocks; the defaults are GPT-2's architecture.

    Inputs are a dict with keras-hub's keys `token_ids` and `padding_mask`; the output is one
    `[batch, length, hidden_dim]` tensor. Every option of `TransformerEncoder` is a config
    entry, so the same class builds LLaMA-style models (`norm="rms_norm"`,
    `position="rotary"`, `gated_ffn=True, activation="silu"`, `num_key_value_heads`).

    Incremental decoding: `init_cache(batch, max_length)` gives an empty cache and
    `call_with_cache(token_ids, cache, cache_index)` runs new tokens (written at
    `cache_index`), returning `(hidden_states, cache)`; the result equals a full forward pass
    over the same prefix. `token_logits(hidden)` gives tied-embedding logits.

    Example:
    >>> import numpy as np
    >>> backbone = DecoderBackbone(vocabulary_size=50, num_layers=1, hidden_dim=8,
    ...                            num_heads=2, intermediate_dim=16)
    >>> tokens = np.array([[5, 6, 7]])
    >>> full = backbone({"token_ids": tokens, "padding_mask": np.ones((1, 3))})
    >>> cache = backbone.init_cache(1, 4)
    >>> hidden, cache = backbone.call_with_cache(tokens, cache, 0)
    >>> bool(np.allclose(full, hidden, atol=1e-6)), len(cache), tuple(cache[0].shape)
    (True, 1, (1, 2, 4, 2, 4))
    """

    capabilities = frozenset({"causal"})

    def __init__(self, vocabulary_size, num_layers, hidden_dim, num_heads, intermediate_dim,
                 max_sequence_length=1024, dropout=0.1, activation="gelu_approximate",
                 gated_ffn=False, norm="layer_norm", norm_first=True, layer_norm_epsilon=1e-5,
                 num_key_value_heads=None, head_dim=None, use_bias=True, scale_scores=True,
                 position="learned", rotary_max_wavelength=10000.0, embedding_norm=False,
                 scale_embeddings=False, dtype=None, **kwargs):
        config = constructor_config(locals())
        token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        padding_mask = keras.Input(shape=(None,), dtype="int32", name="padding_mask")

        embeddings = EmbeddingStack(config, token_embedding(config, dtype), "", dtype,
                                    bidirectional=False)
        x = embeddings(token_ids)
        bias = embeddings.attention_bias(x)
        blocks = [TransformerDecoder(**block_options(config), dtype=dtype,
                                     name=f"transformer_layer_{i}") for i in range(num_layers)]
        norm = final_norm(config, dtype)
        x = apply_blocks(blocks, x, norm, padding_mask=padding_mask, attention_bias=bias)
        super().__init__(inputs={"token_ids": token_ids, "padding_mask": padding_mask},
                         outputs=x, dtype=dtype, **kwargs)
        self._remember(config)
        self.embeddings = embeddings
        self.token_embedding = embeddings.token_embedding
        self.transformer_layers = blocks
        self.final_norm = norm

    def features(self, token_ids, padding_mask, segment_ids=None):
        """`{"sequence_output"}`: the causal hidden states (each token sees those before
        it; a decoder has no segments, so `segment_ids` is ignored)."""
        return {"sequence_output": self({"token_ids": token_ids, "padding_mask": padding_mask})}

    def init_cache(self, batch_size, max_length):
        """An empty key/value cache: a tuple of one `[batch, 2, max_length, kv_heads,
        head_dim]` tensor per layer (separate tensors, so a decoding step writes one token
        per layer instead of copying a stacked cache)."""
        attention = self.transformer_layers[0].attention
        shape = (batch_size, 2, max_length, attention.num_key_value_heads, attention.key_dim)
        return tuple(ops.zeros(shape, dtype=self.compute_dtype) for _ in range(self.num_layers))

    def call_with_cache(self, token_ids, cache, cache_index):
        """Run `token_ids` at positions `cache_index ..`; returns `(hidden_states, cache)`."""
        x = self.embeddings(token_ids, start_index=cache_index)
        bias = self.embeddings.attention_bias(x, ops.shape(cache[0])[2], cache_index)
        caches = []
        for block, layer_cache in zip(self.transformer_layers, cache):
            x, layer_cache = block(x, attention_bias=bias, self_cache=layer_cache,
                                   cache_index=cache_index)
            caches.append(layer_cache)
        if self.final_norm is not None:
            x = self.final_norm(x)
        return x, tuple(caches)


registry.register_presets(DecoderBackbone, {
    **registry.sized_presets("decoder"),
    "gpt2_small": {
        "description": "GPT-2 small (124 M): 12 layers, 768 d, 12 heads, pre-LN, 1024 positions.",
        "config": dict(vocabulary_size=50257, num_layers=12, hidden_dim=768, num_heads=12,
                       intermediate_dim=3072, max_sequence_length=1024, dropout=0.1,
                       activation="gelu_approximate", layer_norm_epsilon=1e-5),
    },
})
