"""WordPiece (BERT's tokenizer): vocabulary learning, in-graph tokenization with offsets.

Tokenization is keras-hub's `WordPieceTokenizer`'s: its pre-tokenization (`pretokenize`:
accents stripped, split on whitespace, punctuation and CJK characters, case folded) and
tensorflow-text's `FastWordpieceTokenizer`, called directly (keras-hub's layer runs a pure
Python implementation when called eagerly and returns Python lists), so the ids are the
same eagerly, in `tf.data` and in SavedModels.

Offsets: tensorflow-text's offsets point into the normalized (case-folded, accent-stripped)
text, which drifts from the original on accented letters. So for offsets the original text
is split into words (with offsets), each word is normalized and cut into pieces on its own,
and a piece's offsets are mapped back into its word: a word's first piece starts where the
word starts and its last piece ends where the word ends.

That split is the one kerlm's QA features have always used, kept so that they (and the QA
results measured with them) stay the same: it also splits on non-ASCII symbols (`\p{S}`:
"°", "½"), but not on CJK ideographs or control characters, and case-folds before it strips
accents. So `tokenize_with_offsets` gives `tokenize`'s ids except on text with such
characters (about 0.5% of the texts of the embedded QA and sentiment data).
"""

import os

import keras_hub
import tensorflow as tf
import tensorflow_text
from keras_hub.src.tokenizers.word_piece_tokenizer import pretokenize

from kerlm.tokenizers.base import Tokenizer, register, select_ids

RESERVED_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
VOCABULARY_FILE = "vocab.txt"
# Where a keras-hub preset keeps its WordPiece vocabulary (a Hugging Face checkpoint has
# VOCABULARY_FILE).
KERAS_HUB_VOCABULARY_FILE = os.path.join("assets", "tokenizer", "vocabulary.txt")
# The word split of `tokenize_with_offsets`: whitespace, and punctuation and symbols kept as
# words (keras-hub's ASCII ranges plus Unicode punctuation and symbols).
_PUNCTUATION = r"[!-/]|[:-@]|[\[-`]|[{-~]|\p{P}|\p{S}"
_DELIMITERS = r"\s|" + _PUNCTUATION


def is_cased(vocabulary):
    """True if the vocabulary has upper-case pieces (a cased checkpoint's): its input is then
    used as it is; otherwise (learned here, or uncased) input is lower-cased.

    >>> is_cased(RESERVED_TOKENS + ["film"]), is_cased(RESERVED_TOKENS + ["Film"])
    (False, True)
    """
    return any(token != token.lower() for token in vocabulary
               if not (token.startswith("[") and token.endswith("]")))


@register(VOCABULARY_FILE)
class WordPieceTokenizer(Tokenizer):
    """WordPiece over a vocabulary list with BERT's special tokens `[PAD]`, `[UNK]`, `[CLS]`
    (`start_id`), `[SEP]` (`end_id`) and, if present, `[MASK]` (`mask_id`).

    `lowercase` (default: unless the vocabulary `is_cased`) also strips accents, as BERT's
    uncased models do. `save` writes `vocab.txt` (one token a line), which Hugging Face
    checkpoints carry too; `from_directory` also reads a keras-hub preset's
    `assets/tokenizer/vocabulary.txt`.

    Example:
    >>> WordPieceTokenizer.learn(["a good film", "a bad film"] * 10, 50).vocabulary[:6]
    ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', 'a']
    >>> tokenizer = WordPieceTokenizer(RESERVED_TOKENS + ["caf", "##e", "film", "!"])
    >>> tokenizer.mask_id, tokenizer.lowercase
    (4, True)
    >>> ids = tokenizer.tokenize(tf.constant(["Café  film!", "Tea"]))
    >>> ids.to_list()
    [[5, 6, 7, 8], [1]]
    >>> _, start, end = tokenizer.tokenize_with_offsets(tf.constant(["Café  film!"]))
    >>> start.to_list(), end.to_list()  # bytes of the original text: "é" is two
    ([[0, 3, 7, 11]], [[3, 5, 11, 12]])
    >>> tokenizer.detokenize(tf.constant([[2, 5, 6, 7, 3, 0]])).numpy().tolist()
    [b'cafe film']
    """

    def __init__(self, vocabulary, lowercase=None, **kwargs):
        super().__init__(**kwargs)
        self._vocabulary = list(vocabulary)
        index = {token: i for i, token in enumerate(self._vocabulary)}
        missing = [t for t in RESERVED_TOKENS[:4] if t not in index]
        if missing:
            raise ValueError(f"the vocabulary lacks the special tokens {missing}")
        self.lowercase = not is_cased(self._vocabulary) if lowercase is None else lowercase
        self.pad_id, self.unk_id = index["[PAD]"], index["[UNK]"]
        self.start_id, self.end_id = index["[CLS]"], index["[SEP]"]
        self.mask_id = index.get("[MASK]")
        self._wordpiece = tensorflow_text.FastWordpieceTokenizer(
            self._vocabulary, suffix_indicator="##", unknown_token="[UNK]",
            token_out_type=tf.int32, no_pretokenization=True, support_detokenization=True)

    @classmethod
    def learn(cls, texts, vocabulary_size, lowercase=True):
        """Learn a vocabulary (the special tokens first) from strings with keras-hub's
        `compute_word_piece_vocabulary`. The tokenizer's casing is then the vocabulary's
        (`is_cased`), as `load` decides it."""
        data = tf.data.Dataset.from_tensor_slices(list(texts)).batch(1024)
        return cls(keras_hub.tokenizers.compute_word_piece_vocabulary(
            data, vocabulary_size, lowercase=lowercase, strip_accents=lowercase,
            reserved_tokens=RESERVED_TOKENS))

    @classmethod
    def reads(cls):
        return (VOCABULARY_FILE, KERAS_HUB_VOCABULARY_FILE)

    @classmethod
    def from_directory(cls, directory):
        path = next(os.path.join(directory, name) for name in cls.reads()
                    if os.path.isfile(os.path.join(directory, name)))
        with open(path, encoding="utf-8") as f:
            vocabulary = [line.rstrip("\n") for line in f]
        try:
            return cls(vocabulary)
        except ValueError as e:
            raise ValueError(f"{path}: {e}, which [CLS] text [SEP] packing needs") from e

    def save(self, directory):
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, VOCABULARY_FILE), "w", encoding="utf-8") as f:
            f.write("".join(token + "\n" for token in self._vocabulary))

    @property
    def vocabulary(self):
        return list(self._vocabulary)

    def tokenize(self, texts):
        words = pretokenize(tf.convert_to_tensor(texts), lowercase=self.lowercase,
                            strip_accents=self.lowercase, split=True, split_on_cjk=True)
        return self._wordpiece.tokenize(words).merge_dims(-2, -1)

    def tokenize_with_offsets(self, texts):
        texts = tf.convert_to_tensor(texts)
        words, starts, ends = tensorflow_text.regex_split_with_offsets(
            texts, _DELIMITERS, _PUNCTUATION)
        normalized = words
        if self.lowercase:  # case folded, accents stripped (see the module's docstring)
            normalized = tensorflow_text.case_fold_utf8(normalized)
            normalized = tensorflow_text.normalize_utf8(normalized, "NFD")
            normalized = tf.strings.regex_replace(normalized, r"\p{Mn}", "")
        pieces, piece_starts, piece_ends = self._wordpiece.tokenize_with_offsets(normalized)
        word_of_piece = pieces.values.value_rowids()  # index into the flat words
        word_start = tf.gather(starts.flat_values, word_of_piece)
        word_end = tf.gather(ends.flat_values, word_of_piece)
        word_length = word_end - word_start
        start = word_start + tf.minimum(piece_starts.flat_values, word_length)
        end = word_start + tf.minimum(piece_ends.flat_values, word_length)
        last = tf.equal(tf.range(tf.size(pieces.flat_values, tf.int64)),
                        tf.gather(pieces.values.row_limits() - 1, word_of_piece))
        end = tf.where(last, word_end, end)
        splits = pieces.merge_dims(1, 2).row_splits
        return (tf.RaggedTensor.from_row_splits(pieces.flat_values, splits),
                tf.RaggedTensor.from_row_splits(start, splits),
                tf.RaggedTensor.from_row_splits(end, splits))

    def detokenize(self, ids):
        """Words joined by spaces (`##` pieces glued to their word; WordPiece does not keep
        the spacing: "great sound !"); `[PAD]`, `[CLS]`, `[SEP]` and `[MASK]` print as
        nothing, `[UNK]` as itself."""
        drop = tf.constant([i for i in self.special_ids if i != self.unk_id], tf.int32)
        ids = select_ids(ids, lambda v: tf.reduce_all(v[:, None] != drop, axis=1))
        return self._wordpiece.detokenize(ids)

    def get_config(self):
        config = super().get_config()
        config.update(vocabulary=self._vocabulary, lowercase=self.lowercase)
        return config
