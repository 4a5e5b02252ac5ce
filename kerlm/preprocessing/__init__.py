"""Text → features: vocabularies and in-graph tokenization (TensorFlow-based)."""

from kerlm.preprocessing.sentencepiece import Seq2SeqPreprocessor, learn_sentencepiece
from kerlm.preprocessing.wordpiece import (RESERVED_TOKENS, VOCABULARY_FILE, WordPiecePreprocessor,
                                           learn_vocabulary, load_vocabulary, save_vocabulary,
                                           trim_batch)

__all__ = ["Seq2SeqPreprocessor", "learn_sentencepiece", "RESERVED_TOKENS", "VOCABULARY_FILE", "WordPiecePreprocessor", "learn_vocabulary",
           "load_vocabulary", "save_vocabulary", "trim_batch"]
