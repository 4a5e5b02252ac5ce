"""BERT-like encoder-only backbone and its presets (generic `encoder_*` sizes, `bert_base`)."""

import keras
from keras import ops

from kerlm.layers import TransformerEncoder
from kerlm.models import registry
from kerlm.models.backbone import (Backbone, EmbeddingStack, apply_blocks, block_options,
                                   constructor_config, final_norm, initializer,
                                   token_embedding)


@keras.saving.register_keras_serializable(package="kerlm")
@registry.register_backbone
class EncoderBackbone(Backbone):
    """A stack of Transformer encoder blocks over token + position (+ segment) embeddings.

    Inputs are a dict with keras-hub's keys: `token_ids` and `padding_mask` (int
    `[batch, length]`) and, when `num_segments > 0`, `segment_ids`. Outputs are a dict with
    `sequence_output` (`[batch, length, hidden_dim]`) and `pooled_output` (the first token's
    state through a tanh dense layer, as in BERT). The defaults are BERT's architecture;
    every option of `TransformerEncoder` (pre-LN, RMSNorm, gated FFN, grouped-query
    attention, rotary or T5 relative positions) is a config entry.

    Example:
    >>> import numpy as np
    >>> backbone = EncoderBackbone(vocabulary_size=50, num_layers=1, hidden_dim=8,
    ...                            num_heads=2, intermediate_dim=16)
    >>> out = backbone({"token_ids": np.array([[2, 7, 3, 0]]),
    ...                 "padding_mask": np.array([[1, 1, 1, 0]])})
    >>> tuple(out["sequence_output"].shape), tuple(out["pooled_output"].shape)
    ((1, 4, 8), (1, 8))
    """

    capabilities = frozenset({"encode"})

    def __init__(self, vocabulary_size, num_layers, hidden_dim, num_heads, intermediate_dim,
                 max_sequence_length=512, num_segments=0, dropout=0.1, activation="gelu",
                 gated_ffn=False, norm="layer_norm", norm_first=False, layer_norm_epsilon=1e-12,
                 num_key_value_heads=None, head_dim=None, use_bias=True, scale_scores=True,
                 position="learned", rotary_max_wavelength=10000.0, embedding_norm=None,
                 scale_embeddings=False, dtype=None, **kwargs):
        if embedding_norm is None:  # post-LN stacks normalize their embeddings (BERT)
            embedding_norm = not norm_first
        config = constructor_config(locals())
        token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        padding_mask = keras.Input(shape=(None,), dtype="int32", name="padding_mask")
        inputs = {"token_ids": token_ids, "padding_mask": padding_mask}
        segment_ids = None
        if num_segments:
            segment_ids = keras.Input(shape=(None,), dtype="int32", name="segment_ids")
            inputs["segment_ids"] = segment_ids

        embeddings = EmbeddingStack(config, token_embedding(config, dtype), "", dtype)
        x = embeddings(token_ids, segment_ids)
        bias = embeddings.attention_bias(x)
        blocks = [TransformerEncoder(**block_options(config), dtype=dtype,
                                     name=f"transformer_layer_{i}") for i in range(num_layers)]
        norm = final_norm(config, dtype)
        x = apply_blocks(blocks, x, norm, padding_mask=padding_mask, attention_bias=bias)
        pooled = keras.layers.Dense(hidden_dim, activation="tanh", kernel_initializer=initializer(),
                                    dtype=dtype, name="pooled_dense")(x[:, 0, :])
        super().__init__(inputs=inputs, outputs={"sequence_output": x, "pooled_output": pooled},
                         dtype=dtype, **kwargs)
        self._remember(config)
        self.embeddings = embeddings
        self.token_embedding = embeddings.token_embedding
        self.transformer_layers = blocks
        self.final_norm = norm

    def features(self, token_ids, padding_mask, segment_ids=None):
        """`{"sequence_output", "pooled_output"}` of the text; `segment_ids` (zeros if None)
        are fed when the backbone embeds segments, and ignored otherwise."""
        inputs = {"token_ids": token_ids, "padding_mask": padding_mask}
        if self.num_segments:
            if segment_ids is None:
                if not keras.backend.is_keras_tensor(token_ids):  # eager: no numpy/tensor mix
                    inputs = {k: ops.convert_to_tensor(v) for k, v in inputs.items()}
                segment_ids = ops.zeros_like(inputs["token_ids"])
            inputs["segment_ids"] = segment_ids
        outputs = self(inputs)
        return {"sequence_output": outputs["sequence_output"],
                "pooled_output": outputs["pooled_output"]}


registry.register_presets(EncoderBackbone, {
    **registry.sized_presets("encoder"),
    "bert_base": {
        "description": "BERT-base (uncased vocabulary): 12 layers, 768 d, 12 heads, post-LN.",
        "config": dict(vocabulary_size=30522, num_layers=12, hidden_dim=768, num_heads=12,
                       intermediate_dim=3072, max_sequence_length=512, num_segments=2,
                       dropout=0.1, activation="gelu", layer_norm_epsilon=1e-12),
    },
})
