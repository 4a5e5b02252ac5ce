"""Causal language model head on a decoder backbone, with KV-cached generation."""

import keras
from keras import ops

from kerlm.heads.language_model import LanguageModel


@keras.saving.register_keras_serializable(package="kerlm")
class CausalLM(LanguageModel):
    """Next-token logits from a `DecoderBackbone`, and KV-cached generation.

    A functional model: the inputs are the backbone's dict (`token_ids`, `padding_mask`), the
    output is float32 `[batch, length, vocabulary_size]` logits from the tied token embedding
    (even under mixed precision). Train it on `x = ids[:, :-1]`, `y = ids[:, 1:]` with a
    from-logits sparse cross-entropy (`sample_weight` = the targets' padding mask).

    `generate(inputs, max_length)` continues right-padded prompts (see its docstring).

    Example:
    >>> import numpy as np
    >>> from kerlm.models import DecoderBackbone
    >>> backbone = DecoderBackbone(vocabulary_size=50, num_layers=1, hidden_dim=8,
    ...                            num_heads=2, intermediate_dim=16)
    >>> lm = CausalLM(backbone)
    >>> prompt = {"token_ids": np.array([[5, 6, 7]]), "padding_mask": np.ones((1, 3))}
    >>> logits = lm(prompt)
    >>> tuple(logits.shape), keras.backend.standardize_dtype(logits.dtype)
    ((1, 3, 50), 'float32')
    >>> out = lm.generate(prompt, max_length=6, jit_compile=False)
    >>> out["token_ids"].shape, out["token_ids"][0, :3].tolist()
    ((1, 6), [5, 6, 7])
    """

    capability = "causal"

    # --- generation -------------------------------------------------------------------------

    def generate(self, inputs, max_length=None, stop_token_ids=None, sampler="greedy",
                 jit_compile=True, pad_token_id=0, **sampler_options):
        """Continue each prompt to `max_length` tokens with a key/value cache.

        `inputs` is `{"token_ids", "padding_mask"}` (`[batch, prompt_length]`, prompts
        right-padded, at least one token each) or a token-id array of full-length prompts.
        `max_length` (default: `prompt_length`, as in keras-hub) is the total length of the
        output. The prompts go through the backbone in one call that fills the cache; then
        one token per step. `sampler` is a name in `kerlm.generation.SAMPLERS` with its
        options (`beam_width`, `length_penalty`, `top_k`, `top_p`, `temperature`, `seed`) or
        a sampler object; a seeded sampler gives the same draws on every call. With
        `stop_token_ids`, a sequence ends at its first generated stop token (kept); the loop
        ends when every sequence has ended, and later positions get `pad_token_id` and
        padding mask 0. `jit_compile` compiles the loop with XLA (TensorFlow, JAX); without
        it the TensorFlow loop is still one graph.

        Returns numpy `{"token_ids", "padding_mask"}`, both `[batch, max_length]`: the prompt
        followed by its continuation.
        """
        if isinstance(inputs, dict):
            token_ids, padding_mask = inputs["token_ids"], inputs.get("padding_mask")
        else:
            token_ids, padding_mask = inputs, None
        if padding_mask is None:
            padding_mask = ops.ones_like(token_ids, dtype="bool")
        max_length = ops.shape(token_ids)[1] if max_length is None else int(max_length)
        return self._run_generation(token_ids, padding_mask, max_length, stop_token_ids,
                                    sampler, sampler_options, jit_compile, pad_token_id)

    # GenerationMixin hooks: a decoder-only model has no context besides its cache.
    def _generation_context(self, inputs):
        return ()

    def _init_generation_cache(self, context, batch_size, max_length):
        return self.backbone.init_cache(batch_size, max_length)

    def _call_with_cache(self, token_ids, cache, index, context):
        return self.backbone.call_with_cache(token_ids, cache, index)
