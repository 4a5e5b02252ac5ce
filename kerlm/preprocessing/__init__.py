"""Text → features: vocabularies and in-graph tokenization (TensorFlow-based)."""

from kerlm.preprocessing.wordpiece import (RESERVED_TOKENS, VOCABULARY_FILE, WordPiecePreprocessor,
                                           learn_vocabulary, load_vocabulary, save_vocabulary,
                                           trim_batch)

__all__ = ["RESERVED_TOKENS", "VOCABULARY_FILE", "WordPiecePreprocessor", "learn_vocabulary",
           "load_vocabulary", "save_vocabulary", "trim_batch"]
