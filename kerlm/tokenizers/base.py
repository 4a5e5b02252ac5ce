"""The `Tokenizer` interface, the registry of tokenizer classes, and `load`.

A tokenizer turns strings into token ids and back, in TensorFlow ops (tensorflow-text
kernels), so it runs eagerly, in `tf.data` and inside exported SavedModels, which then load
with TensorFlow + tensorflow-text alone. It is a Keras layer without weights: a layer (a
preprocessor, a serving function's owner) that holds it tracks it, and its vocabulary
travels with the SavedModel. What it does not do is pack ids into model inputs: that is the
job of the input formats in `kerlm.preprocessing`, which take any tokenizer.

A tokenizer class registers the file it saves (`@register("vocab.txt")`), so `load(d)` picks
the class from the files in `d`, and a new kind of tokenizer is one new module in this
package.
"""

import os

import keras
import tensorflow as tf

_TOKENIZERS = {}  # the file a tokenizer class saves → the class


def register(file, *extra_files):
    """Class decorator: register a `Tokenizer` subclass as the one that saves `file` (its
    vocabulary; `load` recognizes a directory by it) and may save `extra_files` beside it.
    The class is also made Keras-serializable (package "kerlm")."""
    def decorate(cls):
        if file in _TOKENIZERS:
            raise ValueError(f"{file!r} is already the file of {_TOKENIZERS[file].__name__}")
        cls.file, cls.extra_files = file, tuple(extra_files)
        _TOKENIZERS[file] = keras.saving.register_keras_serializable(package="kerlm")(cls)
        return cls
    return decorate


def registered():
    """The registered tokenizer classes, in the order of their files' names."""
    return [_TOKENIZERS[name] for name in sorted(_TOKENIZERS)]


def files():
    """Every file name a registered tokenizer may save in a directory (e.g. to copy a
    run's tokenizer along with its backbone)."""
    return [name for cls in registered() for name in (cls.file, *cls.extra_files)]


def load(directory):
    """The tokenizer saved in `directory`: the registered class whose file is there (a
    class may also read other layouts, e.g. a Hugging Face or keras-hub checkpoint's
    WordPiece vocabulary). A ValueError names the directory and the files looked for.

    Example:
    >>> import tempfile
    >>> from kerlm.tokenizers import WordPieceTokenizer
    >>> directory = tempfile.mkdtemp()
    >>> WordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "film"]).save(directory)
    >>> type(load(directory)).__name__, load(directory).vocabulary_size
    ('WordPieceTokenizer', 6)
    >>> load(tempfile.mkdtemp())  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ValueError: ... has no tokenizer vocabulary (looked for sentencepiece.model, vocab.txt, ...)
    """
    found = [cls for cls in registered()
             if any(os.path.isfile(os.path.join(directory, name)) for name in cls.reads())]
    if not found:
        looked = [name for cls in registered() for name in cls.reads()]
        raise ValueError(f"{directory} has no tokenizer vocabulary (looked for "
                         f"{', '.join(looked)})")
    if len(found) > 1:
        raise ValueError(f"{directory} holds the vocabularies of several tokenizers "
                         f"({', '.join(cls.file for cls in found)}); keep one")
    return found[0].from_directory(directory)


def select_ids(ids, keep):
    """The ids of `[batch, length]` `ids` (dense or ragged) for which `keep(flat int32
    ids)` is true, as an int32 RaggedTensor (e.g. without the special tokens)."""
    if not isinstance(ids, tf.RaggedTensor):
        ids = tf.RaggedTensor.from_tensor(tf.convert_to_tensor(ids))
    ids = tf.cast(ids, tf.int32)
    return tf.ragged.boolean_mask(ids, ids.with_flat_values(keep(ids.flat_values)))


class Tokenizer(keras.layers.Layer):
    """Strings ↔ token ids, in TensorFlow ops; a Keras layer without weights.

    Subclasses set the special token ids (`pad_id`, `unk_id`, `start_id` (`[CLS]`, `<s>`),
    `end_id` (`[SEP]`, `</s>`), `mask_id`; None where the vocabulary has none) and
    `sentinel_ids` (span-corruption sentinels, T5's `<extra_id_N>`; empty where none), and
    implement `learn`, `from_directory`, `save`, `vocabulary`, `tokenize`,
    `tokenize_with_offsets` and `detokenize`. Calling the layer tokenizes.

    `reversible`: `detokenize(tokenize(text))` gives the text back, spacing included (up
    to the tokenizer's normalization), so generated ids can be shown as text.
    `max_length`: the most tokens (special ones included) a sequence may have for the
    checkpoint the tokenizer came with (Hugging Face's `model_max_length`); None: unknown.
    """

    file = None  # set by `register`
    extra_files = ()
    reversible = False
    max_length = None
    pad_id = unk_id = start_id = end_id = mask_id = None
    sentinel_ids = ()

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.built = True  # no weights: the vocabulary lives in the tokenizer's op

    # Vocabulary -------------------------------------------------------------------------
    @classmethod
    def learn(cls, texts, vocabulary_size, **options):
        """A tokenizer with a vocabulary of (at most) `vocabulary_size` ids learned from
        the strings `texts`."""
        raise NotImplementedError

    @classmethod
    def reads(cls):
        """The files (relative to a directory) that `from_directory` can read, in order of
        preference: by default the one `save` writes."""
        return (cls.file,)

    @classmethod
    def from_directory(cls, directory):
        """The tokenizer `save` wrote in `directory` (or one of the `reads()` files)."""
        raise NotImplementedError

    def save(self, directory):
        """Write the vocabulary into `directory` (created if needed) as `file` (and
        `extra_files` where needed), which `kerlm.tokenizers.load` reads back."""
        raise NotImplementedError

    @property
    def vocabulary(self):
        """The tokens, as a list of strings indexed by id."""
        raise NotImplementedError

    @property
    def vocabulary_size(self):
        """How many ids the tokenizer can give (the size of a model's token embedding)."""
        return len(self.vocabulary)

    @property
    def special_ids(self):
        """The ids of the special tokens (pad, unknown, start, end, mask, sentinels), sorted."""
        ids = {self.pad_id, self.unk_id, self.start_id, self.end_id, self.mask_id,
               *self.sentinel_ids}
        return sorted(i for i in ids if i is not None)

    # In-graph ---------------------------------------------------------------------------
    def tokenize(self, texts):
        """Strings `[batch]` → int32 `tf.RaggedTensor` `[batch, None]` of ids (no special
        tokens added)."""
        raise NotImplementedError

    def tokenize_with_offsets(self, texts):
        """`(ids, start, end)`: the ids of `tokenize` and, per token, int64 byte offsets
        into its text such that `text[start:end]` (UTF-8 bytes) is the text it stands
        for; -1 for both where a token stands for no text (e.g. whitespace only)."""
        raise NotImplementedError

    def detokenize(self, ids):
        """Token ids `[batch, length]` (dense or ragged) → strings `[batch]`; special
        tokens print as nothing."""
        raise NotImplementedError

    def call(self, texts):
        return self.tokenize(texts)
