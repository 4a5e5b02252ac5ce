"""Task heads that take an already built backbone."""

from kerlm.heads.causal_lm import CausalLM
from kerlm.heads.classifier import Classifier

__all__ = ["CausalLM", "Classifier"]
