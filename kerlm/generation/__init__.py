"""Decoding shared by causal and seq2seq LMs: samplers, beam search, the cached loop."""

from kerlm.generation.beam_search import BeamSearch
from kerlm.generation.generate import SAMPLERS, GenerationMixin, generated_mask, get_sampler

__all__ = ["BeamSearch", "GenerationMixin", "SAMPLERS", "generated_mask", "get_sampler"]
