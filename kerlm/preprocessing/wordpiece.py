"""WordPiece vocabulary learning and the in-graph text → token-ids preprocessor.

Tokenization uses keras-hub's `WordPieceTokenizer` (tensorflow-text ops), so the same layer
runs in `tf.data` pipelines and inside exported SavedModels.
"""

import keras
import keras_hub
import tensorflow as tf

RESERVED_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
VOCABULARY_FILE = "vocab.txt"


def learn_vocabulary(texts, vocabulary_size, lowercase=True):
    """Learn a WordPiece vocabulary (reserved tokens first) from a list of strings.

    Example:
    >>> vocab = learn_vocabulary(["a good film", "a bad film"] * 10, 50)
    >>> vocab[:3], "film" in vocab
    (['[PAD]', '[UNK]', '[CLS]'], True)
    """
    data = tf.data.Dataset.from_tensor_slices(list(texts)).batch(1024)
    return keras_hub.tokenizers.compute_word_piece_vocabulary(
        data, vocabulary_size, lowercase=lowercase, strip_accents=lowercase,
        reserved_tokens=RESERVED_TOKENS)


def is_cased(vocabulary):
    """True if the vocabulary has upper-case pieces (a cased checkpoint's): its input is then
    used as it is; otherwise (learned here, or uncased) input is lower-cased.

    >>> is_cased(RESERVED_TOKENS + ["film"]), is_cased(RESERVED_TOKENS + ["Film"])
    (False, True)
    """
    return any(token != token.lower() for token in vocabulary
               if not (token.startswith("[") and token.endswith("]")))


def checkpoint_vocabulary(path):
    """The WordPiece vocabulary a checkpoint directory carries, or a one-line ConfigError."""
    from kerlm.config import ConfigError  # noqa: PLC0415
    from kerlm.models import checkpoints  # noqa: PLC0415 (only needed for directories)

    vocabulary_file = checkpoints.wordpiece_vocabulary(path)
    if vocabulary_file is None:
        raise ConfigError(f"--model={path} has no WordPiece vocabulary (looked for "
                          f"{', '.join(checkpoints.VOCABULARY_FILES)}), which the task "
                          "needs to tokenize text for its backbone")
    vocabulary = load_vocabulary(vocabulary_file)
    missing = [t for t in RESERVED_TOKENS[:4] if t not in vocabulary]
    if missing:
        raise ConfigError(f"{vocabulary_file} lacks the special tokens {missing} that the "
                          "task's [CLS] text [SEP] packing needs")
    return vocabulary


def save_vocabulary(vocabulary, path):
    with open(path, "w", encoding="utf-8") as f:
        f.write("".join(token + "\n" for token in vocabulary))


def load_vocabulary(path):
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f]


@keras.saving.register_keras_serializable(package="kerlm")
class WordPiecePreprocessor(keras.layers.Layer):
    """Strings `[batch]` → `{"token_ids", "padding_mask"}` int32 `[batch, sequence_length]`.

    Each text becomes `[CLS] tokens… [SEP]`, truncated and padded to `sequence_length`.

    Example:
    >>> pre = WordPiecePreprocessor(RESERVED_TOKENS + ["good", "film"], sequence_length=6)
    >>> out = pre(tf.constant(["Good film", "film"]))
    >>> out["token_ids"].numpy().tolist()
    [[2, 5, 6, 3, 0, 0], [2, 6, 3, 0, 0, 0]]
    >>> out["padding_mask"].numpy().tolist()
    [[1, 1, 1, 1, 0, 0], [1, 1, 1, 0, 0, 0]]
    """

    def __init__(self, vocabulary, sequence_length, lowercase=True, **kwargs):
        super().__init__(**kwargs)
        self.vocabulary = list(vocabulary)
        self.sequence_length = sequence_length
        self.lowercase = lowercase
        missing = [t for t in RESERVED_TOKENS[:4] if t not in self.vocabulary]
        if missing:
            raise ValueError(f"Vocabulary lacks the reserved tokens {missing}")
        self.tokenizer = keras_hub.tokenizers.WordPieceTokenizer(
            vocabulary=self.vocabulary, lowercase=lowercase, strip_accents=lowercase,
            oov_token="[UNK]", dtype="int32")
        index = {token: i for i, token in enumerate(self.vocabulary)}
        self.pad_id = index["[PAD]"]
        self.packer = keras_hub.layers.StartEndPacker(
            sequence_length, start_value=index["[CLS]"], end_value=index["[SEP]"],
            pad_value=self.pad_id, return_padding_mask=True)
        self.built = True  # no weights: the vocabulary lives in the tokenizer's op

    @property
    def vocabulary_size(self):
        return len(self.vocabulary)

    def call(self, texts):
        token_ids, padding_mask = self.packer(self.tokenizer(texts))
        return {"token_ids": token_ids, "padding_mask": tf.cast(padding_mask, "int32")}

    def get_config(self):
        config = super().get_config()
        config.update(vocabulary=self.vocabulary, sequence_length=self.sequence_length,
                      lowercase=self.lowercase)
        return config


def trim_batch(features, multiple=16):
    """Cut a padded batch to its longest real sequence (rounded up to `multiple`).

    Short texts padded to a long `sequence_length` waste most attention and feed-forward
    compute; trimming each batch keeps results identical (padding is masked) while the
    rounding bounds how many input shapes `tf.function` sees.
    """
    mask = features["padding_mask"]
    longest = tf.reduce_max(tf.reduce_sum(mask, axis=1))
    length = tf.minimum(tf.shape(mask)[1], (longest + multiple - 1) // multiple * multiple)
    return {key: value[:, :length] for key, value in features.items()}
