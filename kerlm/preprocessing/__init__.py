"""Text → features: vocabularies and in-graph tokenization (TensorFlow-based)."""

from kerlm.preprocessing.sentencepiece import (SentencePiecePreprocessor, Seq2SeqPreprocessor,
                                               learn_sentencepiece)
from kerlm.preprocessing.spans import (QAPreprocessor, SentencePieceQAPreprocessor, best_spans,
                                       byte_span, span_labels)
from kerlm.preprocessing.wordpiece import (RESERVED_TOKENS, VOCABULARY_FILE, WordPiecePreprocessor,
                                           checkpoint_vocabulary, is_cased, learn_vocabulary,
                                           load_vocabulary, save_vocabulary, trim_batch)

__all__ = ["SentencePiecePreprocessor", "Seq2SeqPreprocessor", "learn_sentencepiece",
           "QAPreprocessor", "SentencePieceQAPreprocessor", "best_spans", "byte_span",
           "span_labels", "RESERVED_TOKENS", "VOCABULARY_FILE", "WordPiecePreprocessor",
           "checkpoint_vocabulary", "is_cased", "learn_vocabulary", "load_vocabulary",
           "save_vocabulary", "trim_batch"]
