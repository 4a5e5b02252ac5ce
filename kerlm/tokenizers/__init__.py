"""Tokenizers: strings ↔ token ids in TensorFlow ops, one class per kind of vocabulary.

Every tokenizer has the `Tokenizer` interface (learn, save / `load`, special token ids,
in-graph `tokenize`, `tokenize_with_offsets` and `detokenize`); the input formats of
`kerlm.preprocessing` take any of them. Every module in this package is imported here and
each tokenizer module registers its class (`register`), so adding a kind of tokenizer is
adding a module.

Example:
>>> sorted(cls.__name__ for cls in registered())
['SentencePieceTokenizer', 'WordPieceTokenizer']
>>> files()
['sentencepiece.model', 'sentencepiece.json', 'vocab.txt', 'tokenizer_config.json']
"""

import importlib
import pkgutil

from kerlm.tokenizers.base import Tokenizer, files, load, register, registered, select_ids
from kerlm.tokenizers.sentence_piece import SentencePieceTokenizer
from kerlm.tokenizers.word_piece import WordPieceTokenizer

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["Tokenizer", "files", "load", "register", "registered", "select_ids",
           "SentencePieceTokenizer", "WordPieceTokenizer"]
