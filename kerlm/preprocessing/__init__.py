"""Input formats: strings → model features for any `kerlm.tokenizers.Tokenizer`, in
TensorFlow ops (single texts, text pairs, QA windows with offsets, source/target pairs)."""

from kerlm.preprocessing.seq2seq import Seq2SeqPreprocessor
from kerlm.preprocessing.spans import QAPreprocessor, best_spans, byte_span, span_labels
from kerlm.preprocessing.text import (TextPairPreprocessor, TextPreprocessor, tokenized,
                                     trim_batch)

__all__ = ["Seq2SeqPreprocessor", "QAPreprocessor", "best_spans", "byte_span", "span_labels",
           "TextPairPreprocessor", "TextPreprocessor", "tokenized", "trim_batch"]
