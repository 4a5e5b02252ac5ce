"""Sequence-to-sequence LM head on an encoder-decoder backbone, with cached generation."""

import keras
import numpy as np
from keras import ops

from kerlm.heads.language_model import LanguageModel
from kerlm.layers import CopyDistribution


@keras.saving.register_keras_serializable(package="kerlm")
class Seq2SeqLM(LanguageModel):
    """Next-target-token logits from an `EncoderDecoderBackbone`, and generation.

    A functional model on the backbone's four inputs (`encoder_token_ids`,
    `encoder_padding_mask`, `decoder_token_ids`, `decoder_padding_mask`) whose output is
    float32 `[batch, target_length, vocabulary_size]` logits through the tied token
    embedding. Train with teacher forcing: decoder inputs `[start] y[:-1]`, targets `y`,
    a loss masked by the targets' padding (see `kerlm.heads.losses`).

    `generate` encodes the sources once, precomputes every decoder layer's cross-attention
    keys/values, then decodes with the self-attention cache and any sampler in
    `kerlm.generation` (the same loop as `CausalLM.generate`).

    `copy_attention=True` makes it a pointer-generator (`kerlm.layers.CopyDistribution`):
    the output is then float32 log-probabilities that mix the vocabulary with copies of
    source tokens, used everywhere logits are (losses, metrics, samplers).

    Example:
    >>> from kerlm.models import EncoderDecoderBackbone
    >>> backbone = EncoderDecoderBackbone(vocabulary_size=40, num_layers=1, hidden_dim=8,
    ...                                   num_heads=2, intermediate_dim=16)
    >>> model = Seq2SeqLM(backbone)
    >>> source = {"encoder_token_ids": np.array([[5, 6, 7, 3]]),
    ...           "encoder_padding_mask": np.ones((1, 4))}
    >>> out = model.generate(source, max_length=5, start_token_id=2, jit_compile=False)
    >>> out["token_ids"].shape, int(out["token_ids"][0, 0])
    ((1, 5), 2)
    """

    hidden_output = "decoder_sequence_output"
    capability = "seq2seq"

    def __init__(self, backbone, copy_attention=False, **kwargs):
        self.copy_attention = copy_attention
        super().__init__(backbone, **kwargs)

    def _output_layers(self, backbone, inputs, outputs, hidden, logits):
        if not self.copy_attention:
            return logits, {}
        copy = CopyDistribution(backbone.hidden_dim, dtype=backbone.dtype_policy,
                                name="copy_distribution")
        keys = copy.keys(outputs["encoder_sequence_output"])
        log_probs = copy(logits, hidden, keys, inputs["encoder_token_ids"],
                         inputs["encoder_padding_mask"])
        return log_probs, {"copy": copy}

    def get_config(self):
        return {**super().get_config(), "copy_attention": self.copy_attention}

    def generate(self, inputs, max_length, start_token_id, stop_token_ids=None,
                 sampler="greedy", jit_compile=True, pad_token_id=0, **sampler_options):
        """Decode a target for each source, up to `max_length` tokens (start token included).

        `inputs` holds `encoder_token_ids` and `encoder_padding_mask` `[batch, source_length]`
        and optionally a right-padded decoder prompt (`decoder_token_ids`,
        `decoder_padding_mask`); without one every target starts with `start_token_id`.
        Samplers, stop tokens and `jit_compile` work as in `CausalLM.generate`.

        Returns numpy `{"token_ids", "padding_mask"}` `[batch, max_length]`, prompt included.
        """
        encoder = {"encoder_token_ids": ops.convert_to_tensor(inputs["encoder_token_ids"], "int32"),
                   "encoder_padding_mask": ops.convert_to_tensor(inputs["encoder_padding_mask"],
                                                                  "int32")}
        batch_size = ops.shape(encoder["encoder_token_ids"])[0]
        prompt = inputs.get("decoder_token_ids")
        if prompt is None:
            prompt = np.full((batch_size, 1), start_token_id, "int32")
            prompt_mask = np.ones((batch_size, 1), bool)
        else:
            prompt_mask = inputs.get("decoder_padding_mask", ops.ones_like(prompt))
        return self._run_generation(prompt, prompt_mask, int(max_length), stop_token_ids,
                                    sampler, sampler_options, jit_compile, pad_token_id,
                                    inputs=encoder)

    # GenerationMixin hooks ------------------------------------------------------------------
    def _generation_context(self, inputs):
        """The encoder output's cross-attention keys/values (every layer) and its mask; with
        copy attention also its copy keys and the source ids."""
        encoder_mask = inputs["encoder_padding_mask"]
        encoded = self.backbone.encode(inputs["encoder_token_ids"], encoder_mask)
        context = (self.backbone.cross_cache(encoded), encoder_mask)
        if self.copy_attention:
            context += (self.copy.keys(encoded), inputs["encoder_token_ids"])
        return context

    def _init_generation_cache(self, context, batch_size, max_length):
        return self.backbone.init_self_cache(batch_size, max_length)

    def _call_with_cache(self, token_ids, cache, index, context):
        cross_cache, encoder_mask = context[:2]
        return self.backbone.call_decoder_with_cache(token_ids, cache, cross_cache, index,
                                                     encoder_padding_mask=encoder_mask)

    def _next_token_logits(self, hidden, context):
        logits = super()._next_token_logits(hidden, context)
        if not self.copy_attention:
            return logits
        _, encoder_mask, keys, source_ids = context
        return self.copy(logits, hidden, keys, source_ids, encoder_mask)
