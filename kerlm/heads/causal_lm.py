"""Causal language model head on a decoder backbone, with KV-cached generation."""

import functools
import itertools

import keras
import numpy as np
from keras import ops


class TokenLogits(keras.layers.Layer):
    """Float32 logits over the vocabulary from hidden states: `backbone.token_logits`.

    The projection is the backbone's tied token embedding; this layer owns no weights (it
    keeps a reference to the backbone's method, so the embedding is tracked once). The matmul
    runs in the hidden states' dtype (bfloat16 under `mixed_bfloat16`), then casts to
    float32. Not serializable on its own: heads rebuild it from their backbone.
    """

    def __init__(self, backbone, **kwargs):
        super().__init__(**kwargs)
        self._token_logits = backbone.token_logits

    def call(self, hidden):
        return ops.cast(self._token_logits(hidden), "float32")


@keras.saving.register_keras_serializable(package="kerlm")
class CausalLM(keras.Model):
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

    def __init__(self, backbone, **kwargs):
        inputs = backbone.input
        logits = TokenLogits(backbone, dtype=backbone.dtype_policy, name="token_logits")(
            backbone(inputs))
        super().__init__(inputs=inputs, outputs=logits, **kwargs)
        self.backbone = backbone
        self._generate_functions = {}

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable,
                "backbone": keras.layers.serialize(self.backbone)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["backbone"] = keras.layers.deserialize(config["backbone"])
        return cls(**config)

    # --- generation -------------------------------------------------------------------------

    def generate(self, inputs, max_length=None, stop_token_ids=None, sampler="greedy",
                 jit_compile=True, pad_token_id=0):
        """Continue each prompt to `max_length` tokens with a key/value cache.

        `inputs` is `{"token_ids", "padding_mask"}` (`[batch, prompt_length]`, prompts
        right-padded, at least one token each) or a token-id array of full-length prompts.
        `max_length` (default: `prompt_length`, as in keras-hub) is the total length of the
        output. The prompts go through the backbone in one call that fills the cache; then
        one token per step. `sampler` is a `keras_hub.samplers` name or instance (`"greedy"`,
        `"top_k"`, ...). With `stop_token_ids`, a sequence ends at its first generated stop
        token (kept); the loop ends when every sequence has ended, and later positions get
        `pad_token_id` and padding mask 0. `jit_compile` compiles the loop with XLA
        (TensorFlow, JAX); without it the TensorFlow loop is still one graph.

        Returns numpy `{"token_ids", "padding_mask"}`, both `[batch, max_length]`: the prompt
        followed by its continuation.
        """
        if isinstance(inputs, dict):
            token_ids, padding_mask = inputs["token_ids"], inputs.get("padding_mask")
        else:
            token_ids, padding_mask = inputs, None
        token_ids = np.asarray(ops.convert_to_numpy(token_ids), dtype="int32")
        padding_mask = (np.ones_like(token_ids, dtype=bool) if padding_mask is None
                        else np.asarray(ops.convert_to_numpy(padding_mask)).astype(bool))
        batch_size, prompt_length = token_ids.shape
        max_length = prompt_length if max_length is None else int(max_length)
        if max_length < prompt_length:
            raise ValueError(f"max_length={max_length} < prompt length {prompt_length}")
        if not padding_mask[:, 0].all():
            raise ValueError("every prompt needs at least one token, right-padded")
        if (self.backbone.position == "learned"
                and max_length > self.backbone.max_sequence_length):
            raise ValueError(f"max_length={max_length} exceeds the backbone's "
                             f"max_sequence_length={self.backbone.max_sequence_length}")
        pad = ((0, 0), (0, max_length - prompt_length))
        token_ids = np.pad(token_ids * padding_mask, pad)
        padding_mask = np.pad(padding_mask, pad)
        if stop_token_ids is not None:
            stop_token_ids = tuple(int(t) for t in np.ravel(stop_token_ids))
        function = self._generate_function(sampler, jit_compile)
        token_ids, output_mask = function(token_ids, padding_mask, prompt_length, stop_token_ids)
        token_ids = np.asarray(ops.convert_to_numpy(token_ids))
        output_mask = np.asarray(ops.convert_to_numpy(output_mask))
        return {"token_ids": np.where(output_mask, token_ids, pad_token_id).astype("int32"),
                "padding_mask": output_mask}

    def _generate_step(self, token_ids, padding_mask, prompt_length, stop_token_ids, sampler):
        """Prefill + sampling loop on padded `[batch, max_length]` arrays (keras.ops only)."""
        batch_size, max_length = ops.shape(token_ids)[0], ops.shape(token_ids)[1]
        backbone = self.backbone
        # Prefill: the whole (padded) prompt block in one call. Padding after a short prompt
        # lands in the cache too, but each decoding step first rewrites the position it reads
        # from (`index - 1`), so a query never sees a padded key.
        cache = backbone.init_cache(batch_size, max_length)
        hidden, cache = backbone.call_with_cache(token_ids[:, :prompt_length], cache, 0)
        hidden = ops.pad(hidden, ((0, 0), (0, max_length - prompt_length), (0, 0)))
        # Decoding starts after the shortest prompt; longer prompts keep their own tokens
        # there (the sampler never overwrites a position where `mask` is True).
        index = ops.min(ops.sum(ops.cast(padding_mask, "int32"), axis=-1))

        def next(prompt, cache, index):  # keras_hub.samplers' protocol
            previous = index - 1
            token = ops.slice(prompt, [0, previous], [batch_size, 1])
            hidden, cache = backbone.call_with_cache(token, cache, previous)
            logits = ops.cast(backbone.token_logits(hidden), "float32")
            return logits[:, 0], hidden[:, 0], cache

        token_ids = sampler(next=next, prompt=token_ids, cache=cache, index=index,
                            mask=padding_mask, stop_token_ids=stop_token_ids,
                            hidden_states=hidden, model=self)
        if stop_token_ids is None:
            return token_ids, ops.ones_like(padding_mask, dtype="bool")
        generated = ops.logical_not(ops.cast(padding_mask, "bool"))
        ends = ops.zeros_like(generated)
        for stop in stop_token_ids:
            ends = ops.logical_or(ends, ops.equal(token_ids, stop))
        ends = ops.cast(ops.logical_and(ends, generated), "int32")
        # positions after a sequence's first generated stop token are padding
        after_end = ops.cumsum(ends, axis=-1) - ends
        return token_ids, ops.equal(after_end, 0)

    def _generate_function(self, sampler, jit_compile):
        """The (cached) compiled generation function for this sampler and `jit_compile`."""
        import keras_hub  # noqa: PLC0415 (only generation needs it)
        key = (sampler if isinstance(sampler, str) else id(sampler), bool(jit_compile))
        if key in self._generate_functions:
            return self._generate_functions[key][0]
        sampler_object = keras_hub.samplers.get(sampler)
        step = functools.partial(self._generate_step, sampler=sampler_object)
        backend = keras.backend.backend()
        if backend == "tensorflow":
            import tensorflow as tf  # noqa: PLC0415
            function = tf.function(step, jit_compile=bool(jit_compile), reduce_retracing=False)
        elif backend == "jax":
            function = self._jax_function(step, sampler_object, jit_compile)
        else:  # eager loop (torch, numpy)
            function = step
        # keep the sampler alive with its function, so `id(sampler)` stays unique
        self._generate_functions[key] = (function, sampler)
        return function

    def _jax_function(self, step, sampler, jit_compile):
        """`step` as a pure JAX function of the variables (keras-hub's pattern): weights are
        arguments, not constants baked into the compiled loop, so it stays valid after
        training; the sampler's seed state is written back after each call."""
        import jax  # noqa: PLC0415

        def pure(state, token_ids, padding_mask, prompt_length, stop_token_ids):
            variables = itertools.chain(sampler.variables, self.trainable_variables,
                                        self.non_trainable_variables)
            with keras.StatelessScope(state_mapping=zip(variables, state)) as scope:
                outputs = step(token_ids, padding_mask, prompt_length, stop_token_ids)
            seeds = [scope.get_current_value(v) for v in sampler.variables]
            return outputs, [s if s is not None else v.value
                             for s, v in zip(seeds, sampler.variables)]

        if jit_compile:
            pure = jax.jit(pure, static_argnames=("prompt_length", "stop_token_ids"))

        def function(token_ids, padding_mask, prompt_length, stop_token_ids):
            state = [v.value for v in itertools.chain(
                sampler.variables, self.trainable_variables, self.non_trainable_variables)]
            outputs, seeds = pure(state, token_ids, padding_mask, prompt_length,
                                  stop_token_ids)
            for variable, value in zip(sampler.variables, seeds):
                variable.assign(value)
            return outputs

        return function
