"""Decoding options shared by the tasks that generate text, and the sampler they build."""

import dataclasses

import keras

from kerlm.config import field
from kerlm.generation import get_sampler

SAMPLERS = ["greedy", "beam", "top_k", "top_p", "random"]


@dataclasses.dataclass
class DecodingConfig:
    """Options of a generating task's decoding (a mixin of its `TaskConfig`); changing them
    on a resumed run is allowed: they never change the trained weights."""

    sampler: str = field("greedy", "Decoding in evaluation, prediction and the exported "
                                   "serving_default signature.", choices=SAMPLERS,
                         resumable=True)
    beam_width: int = field(4, "Beam search: number of beams.", resumable=True)
    length_penalty: float = field(0.6, "Beam search: GNMT length penalty exponent (0: none; "
                                       "larger favours longer outputs).", resumable=True)
    top_k: int = field(50, "top_k sampling: sample among the k most likely tokens.",
                       resumable=True)
    top_p: float = field(0.9, "top_p (nucleus) sampling: smallest token set with this "
                              "probability mass.", resumable=True)
    temperature: float = field(1.0, "Sampling temperature (divides the logits).",
                               resumable=True)
    max_decode_length: int = field(0, "Maximum generated tokens; 0: the task's default "
                                      "(e.g. --target_sequence_length).", resumable=True)
    sampling_seed: int = field(0, "Seed of the random samplers (reproducible draws).",
                               resumable=True)


def sampler(options, name=None):
    """The sampler `options` (a DecodingConfig) describe, or the one `name`d with them.

    Example:
    >>> type(sampler(DecodingConfig(sampler="beam", beam_width=2))).__name__
    'BeamSearch'
    """
    return get_sampler(name or options.sampler, beam_width=options.beam_width,
                       length_penalty=options.length_penalty, top_k=options.top_k,
                       top_p=options.top_p, temperature=options.temperature,
                       seed=options.sampling_seed)


def describe(options, max_tokens):
    """One line naming the decoding, e.g. `beam (beam width 4, length penalty 0.6), at most
    63 tokens`."""
    details = {"beam": f"beam width {options.beam_width}, length penalty "
                       f"{options.length_penalty}",
               "top_k": f"k={options.top_k}, temperature {options.temperature}",
               "top_p": f"p={options.top_p}, temperature {options.temperature}",
               "random": f"temperature {options.temperature}"}.get(options.sampler)
    text = options.sampler + (f" ({details})" if details else "")
    return f"{text}, at most {max_tokens} tokens"


def tracked(samplers):
    """A weightless Keras layer holding the samplers' seed variables, for a serving
    function's list of objects to track (so a SavedModel keeps the random samplers' state)."""
    layer = keras.layers.Layer(name="samplers")
    layer.seeds = [v for s in samplers for v in s.variables]
    layer.built = True
    return layer
