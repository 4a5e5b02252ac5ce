"""Task heads that take an already built backbone."""

from kerlm.heads.causal_lm import CausalLM
from kerlm.heads.classifier import Classifier
from kerlm.heads.masked_lm import MaskedLM
from kerlm.heads.losses import InBatchNegativesLoss, SmoothedSparseCrossentropy
from kerlm.heads.multitask import MultiTaskModel
from kerlm.heads.sentence_encoder import SentenceEncoder
from kerlm.heads.seq2seq_lm import Seq2SeqLM
from kerlm.heads.span_labeler import SpanLabeler

__all__ = ["CausalLM", "Classifier", "InBatchNegativesLoss", "MaskedLM", "MultiTaskModel",
           "SentenceEncoder", "Seq2SeqLM", "SmoothedSparseCrossentropy", "SpanLabeler"]
