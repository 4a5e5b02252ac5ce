"""Generation shared by every head that decodes: prefill, sampler loop, stop tokens, XLA.

A head mixes in `GenerationMixin` and supplies four hooks (keras.ops only):
`_generation_context(inputs)` (constants such as an encoder's keys/values),
`_init_generation_cache(context, batch_size, max_length)`,
`_call_with_cache(token_ids, cache, index, context)` → `(hidden, cache)` and
`_next_token_logits(hidden, context)`. The loop, the samplers (keras-hub's, and kerlm's
`BeamSearch`), stop tokens and compilation are here, so a causal LM and a seq2seq model
decode with the same code.
"""

import functools
import itertools

import keras
import keras_hub
import numpy as np
from keras import ops, tree

from kerlm.generation.beam_search import BeamSearch

SAMPLERS = ("greedy", "beam", "top_k", "top_p", "random")


def get_sampler(sampler="greedy", *, beam_width=4, length_penalty=0.0, early_stopping=False,
                top_k=50, top_p=0.9, temperature=1.0, seed=None):
    """A sampler object from a name in `SAMPLERS` and its options; objects pass through.

    Greedy, top-k, top-p and random sampling are keras-hub's samplers; beam search is
    kerlm's `BeamSearch` (see its module for why).

    Example:
    >>> type(get_sampler("top_p", top_p=0.8, seed=1)).__name__
    'TopPSampler'
    >>> get_sampler("beam", beam_width=3).num_beams
    3
    """
    if not isinstance(sampler, str):
        return sampler
    samplers = keras_hub.samplers
    if sampler == "greedy":
        return samplers.GreedySampler(temperature=temperature)
    if sampler == "beam":
        return BeamSearch(num_beams=beam_width, length_penalty=length_penalty,
                          early_stopping=early_stopping, temperature=temperature)
    if sampler == "top_k":
        return samplers.TopKSampler(k=top_k, seed=seed, temperature=temperature)
    if sampler == "top_p":
        return samplers.TopPSampler(p=top_p, seed=seed, temperature=temperature)
    if sampler == "random":
        return samplers.RandomSampler(seed=seed, temperature=temperature)
    raise ValueError(f"Unknown sampler {sampler!r}; choose from {SAMPLERS}")


def generated_mask(token_ids, prompt_mask, stop_token_ids):
    """True up to and including each sequence's first generated stop token, False after."""
    if not stop_token_ids:
        return ops.ones_like(prompt_mask, dtype="bool")
    generated = ops.logical_not(ops.cast(prompt_mask, "bool"))
    ends = ops.zeros_like(generated)
    for stop in stop_token_ids:
        ends = ops.logical_or(ends, ops.equal(token_ids, stop))
    ends = ops.cast(ops.logical_and(ends, generated), "int32")
    return ops.equal(ops.cumsum(ends, axis=-1) - ends, 0)


class GenerationMixin:
    """`generate` and the compiled decoding loop for a head with the four hooks above."""

    def generate_ids(self, prompt_ids, prompt_mask, sampler="greedy", stop_token_ids=None,
                     inputs=None, prompt_length=None):
        """Decode in the caller's graph: the public step under every `generate`.

        `prompt_ids` and `prompt_mask` are `[batch, max_length]`: each row's prompt
        (right-padded, at least one token) followed by the positions to fill, mask False
        there; the output has the same width. `sampler` is a name in `SAMPLERS` (default
        options) or a sampler object; `stop_token_ids` a sequence of ints (or None);
        `inputs` what the head decodes from besides the prompt (a seq2seq model's
        `encoder_token_ids` and `encoder_padding_mask`); `prompt_length` (a Python int,
        default the whole width) how many leading positions the first call runs at once;
        it must cover every prompt but the shortest's last token.

        keras.ops only and nothing converted to numpy, so it runs eagerly, inside a
        `tf.function` (what the exported SavedModels trace) or under `jax.jit`; unlike
        `generate` it neither pads the prompts nor compiles. Returns `(token_ids, mask)`,
        `[batch, max_length]`: `mask` is False after each sequence's first stop token.

        Example:
        >>> from kerlm import heads, models
        >>> backbone = models.DecoderBackbone(vocabulary_size=20, num_layers=1, hidden_dim=8,
        ...                                   num_heads=2, intermediate_dim=16)
        >>> lm = heads.CausalLM(backbone)
        >>> prompt = np.array([[5, 6, 0, 0, 0], [7, 0, 0, 0, 0]], "int32")
        >>> token_ids, mask = lm.generate_ids(prompt, prompt != 0, "greedy", prompt_length=2)
        >>> tuple(token_ids.shape), ops.convert_to_numpy(token_ids)[:, :1].tolist()
        ((2, 5), [[5], [7]])
        >>> expected = lm.generate({"token_ids": prompt[:, :2], "padding_mask": prompt[:, :2] != 0},
        ...                        max_length=5, jit_compile=False)["token_ids"]
        >>> bool((ops.convert_to_numpy(token_ids) == expected).all())
        True
        """
        if prompt_length is None:
            prompt_length = ops.shape(prompt_ids)[1]
        if stop_token_ids is not None:
            stop_token_ids = tuple(int(t) for t in stop_token_ids)
        return self._generate_step(prompt_ids, prompt_mask, prompt_length, stop_token_ids,
                                   self._sampler(sampler, {}), inputs=inputs)

    def _generate_step(self, token_ids, padding_mask, prompt_length, stop_token_ids, sampler,
                       inputs=None):
        """Prefill + sampler loop on padded `[batch, max_length]` tensors (keras.ops only);
        `generate_ids` with its arguments checked, as the compiled functions call it.

        Returns `(token_ids, mask)`; `mask` is False after each sequence's end token.
        """
        batch_size, max_length = ops.shape(token_ids)[0], ops.shape(token_ids)[1]
        context = self._generation_context(inputs)
        cache = self._init_generation_cache(context, batch_size, max_length)
        # Prefill: the whole (padded) prompt block in one call. Padding after a short prompt
        # lands in the cache too, but each decoding step first rewrites the position it reads
        # from (`index - 1`), so a query never sees a padded key.
        hidden, cache = self._call_with_cache(token_ids[:, :prompt_length], cache, 0, context)
        hidden = ops.pad(hidden, ((0, 0), (0, max_length - prompt_length), (0, 0)))
        num_beams = getattr(sampler, "num_beams", 1)
        if num_beams > 1:  # the beam sampler expands prompt and cache; constants are ours
            context = tree.map_structure(lambda x: ops.repeat(x, num_beams, axis=0), context)
        # Decoding starts after the shortest prompt; longer prompts keep their own tokens
        # there (the sampler never overwrites a position where `mask` is True).
        index = ops.min(ops.sum(ops.cast(padding_mask, "int32"), axis=-1))

        def next(prompt, cache, index):  # keras_hub.samplers' protocol
            previous = index - 1
            token = ops.slice(prompt, [0, previous], [ops.shape(prompt)[0], 1])
            hidden, cache = self._call_with_cache(token, cache, previous, context)
            logits = self._next_token_logits(hidden, context)
            return logits[:, 0], hidden[:, 0], cache

        token_ids = sampler(next=next, prompt=token_ids, cache=cache, index=index,
                            mask=padding_mask, stop_token_ids=stop_token_ids,
                            hidden_states=hidden, model=self)
        return token_ids, generated_mask(token_ids, padding_mask, stop_token_ids)

    def _run_generation(self, token_ids, padding_mask, max_length, stop_token_ids, sampler,
                        sampler_options, jit_compile, pad_token_id, inputs=None):
        """Pad prompts to `max_length`, run the compiled loop; the `generate` result.

        Returns numpy `{"token_ids", "padding_mask"}` `[batch, max_length]`: positions after
        a sequence's end hold `pad_token_id` and mask 0.
        """
        backbone = self.backbone
        if backbone.position == "learned" and max_length > backbone.max_sequence_length:
            raise ValueError(f"max_length={max_length} exceeds the backbone's "
                             f"max_sequence_length={backbone.max_sequence_length}")
        token_ids = np.asarray(ops.convert_to_numpy(token_ids), dtype="int32")
        padding_mask = np.asarray(ops.convert_to_numpy(padding_mask)).astype(bool)
        prompt_length = token_ids.shape[1]
        if max_length < prompt_length:
            raise ValueError(f"max_length={max_length} < prompt length {prompt_length}")
        if not padding_mask[:, 0].all():
            raise ValueError("every prompt needs at least one token, right-padded")
        pad = ((0, 0), (0, max_length - prompt_length))
        token_ids = np.pad(token_ids * padding_mask, pad)
        padding_mask = np.pad(padding_mask, pad)
        if stop_token_ids is not None:
            stop_token_ids = tuple(int(t) for t in np.ravel(stop_token_ids))
        sampler = self._sampler(sampler, sampler_options)
        function = self._generate_function(sampler, jit_compile)
        if getattr(sampler, "seed", None) is not None:  # a seeded sampler repeats its draws
            for variable in sampler.variables:
                variable.assign(ops.convert_to_tensor([sampler.seed, 0], variable.dtype))
        token_ids, mask = function(token_ids, padding_mask, prompt_length, stop_token_ids,
                                   inputs=inputs)
        mask = np.asarray(ops.convert_to_numpy(mask))
        token_ids = np.where(mask, np.asarray(ops.convert_to_numpy(token_ids)), pad_token_id)
        return {"token_ids": token_ids.astype("int32"), "padding_mask": mask}

    def _sampler(self, sampler, options):
        """The sampler object for a name + options (made once, so its compiled loop is
        reused) or the object given."""
        if not isinstance(sampler, str):
            return sampler
        if not hasattr(self, "_samplers"):
            self._samplers = {}
        key = (sampler, tuple(sorted(options.items())))
        if key not in self._samplers:
            self._samplers[key] = get_sampler(sampler, **options)
        return self._samplers[key]

    def _generate_function(self, sampler, jit_compile):
        """The (cached) compiled generation function for this sampler and `jit_compile`."""
        if not hasattr(self, "_generate_functions"):
            self._generate_functions = {}
        key = (id(sampler), bool(jit_compile))
        if key in self._generate_functions:
            return self._generate_functions[key][0]
        step = functools.partial(self._generate_step, sampler=sampler)
        backend = keras.backend.backend()
        if backend == "tensorflow":
            import tensorflow as tf  # noqa: PLC0415
            function = tf.function(step, jit_compile=bool(jit_compile), reduce_retracing=False)
        elif backend == "jax":
            function = self._jax_function(step, sampler, jit_compile)
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

        def pure(state, token_ids, padding_mask, prompt_length, stop_token_ids, inputs):
            variables = itertools.chain(sampler.variables, self.trainable_variables,
                                        self.non_trainable_variables)
            with keras.StatelessScope(state_mapping=zip(variables, state)) as scope:
                outputs = step(token_ids, padding_mask, prompt_length, stop_token_ids,
                               inputs=inputs)
            seeds = [scope.get_current_value(v) for v in sampler.variables]
            return outputs, [s if s is not None else v.value
                             for s, v in zip(seeds, sampler.variables)]

        if jit_compile:
            pure = jax.jit(pure, static_argnames=("prompt_length", "stop_token_ids"))

        def function(token_ids, padding_mask, prompt_length, stop_token_ids, inputs=None):
            state = [v.value for v in itertools.chain(
                sampler.variables, self.trainable_variables, self.non_trainable_variables)]
            outputs, seeds = pure(state, token_ids, padding_mask, prompt_length,
                                  stop_token_ids, inputs)
            for variable, value in zip(sampler.variables, seeds):
                variable.assign(value)
            return outputs

        return function
