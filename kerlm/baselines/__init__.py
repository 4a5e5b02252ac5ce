"""Simple baselines that the tasks report beside their models: pure functions of texts and
labels (no task, config or model objects), so any task, bench script or notebook can use
them.

- `classification`: `bag_of_words` (TF-IDF logistic regression), `bag_of_words_classifier`.
- `qa`: `sentence_overlap`, `cloze_gap` (extractive answers from `(question, context)`).
- `seq2seq`: `copy_source`, `WordByWord` (translation), `lead_words`, `choose_lead_n`
  (summarization), and the `tokenize`/`detokenize` they share.
- `bm25`: `BM25` (Okapi) and `TfIdf` (cosine) lexical retrieval over a pool of texts.
- `ngram`: `KneserNeyBigram`, `AddKBigram` (word bigram LMs) and `count_words` (the
  denominator of per-word perplexity).
"""

from kerlm.baselines.bm25 import BM25, TfIdf
from kerlm.baselines.classification import bag_of_words, bag_of_words_classifier
from kerlm.baselines.ngram import AddKBigram, KneserNeyBigram, count_words
from kerlm.baselines.qa import cloze_gap, sentence_overlap
from kerlm.baselines.seq2seq import (WordByWord, choose_lead_n, copy_source, detokenize,
                                     lead_words, tokenize)

__all__ = ["AddKBigram", "BM25", "KneserNeyBigram", "TfIdf", "WordByWord", "bag_of_words",
           "bag_of_words_classifier", "choose_lead_n", "cloze_gap", "copy_source", "count_words",
           "detokenize", "lead_words", "sentence_overlap", "tokenize"]
