"""Single-text features for any tokenizer: `start tokens… end`, and batch trimming."""

import keras
import tensorflow as tf

from kerlm import tokenizers


def tokenizer_with(tokenizer, *names):
    """`tokenizer` (or its `keras.layers.serialize` config, as `get_config` stores it), or a
    ValueError if it lacks one of the special ids `names` (e.g. "pad_id")."""
    if isinstance(tokenizer, dict):
        tokenizer = keras.layers.deserialize(tokenizer)
    if not isinstance(tokenizer, tokenizers.Tokenizer):
        raise ValueError(f"expected a kerlm.tokenizers.Tokenizer, got {type(tokenizer).__name__}")
    missing = [name for name in names if getattr(tokenizer, name) is None]
    if missing:
        raise ValueError(f"{type(tokenizer).__name__} has no {', '.join(missing)}, which "
                         "these features need")
    return tokenizer


@keras.saving.register_keras_serializable(package="kerlm")
class TextPreprocessor(keras.layers.Layer):
    """Strings `[batch]` → `{"token_ids", "padding_mask"}` int32 `[batch, sequence_length]`.

    Each text becomes `start tokens… end` (`[CLS] … [SEP]`, `<s> … </s>`), truncated and
    padded (`pad_id`) to `sequence_length`, with any `kerlm.tokenizers.Tokenizer`.

    Example:
    >>> from kerlm.tokenizers import WordPieceTokenizer
    >>> tokenizer = WordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "good", "film"])
    >>> pre = TextPreprocessor(tokenizer, sequence_length=6)
    >>> out = pre(tf.constant(["Good film", "film"]))
    >>> out["token_ids"].numpy().tolist()
    [[2, 4, 5, 3, 0, 0], [2, 5, 3, 0, 0, 0]]
    >>> out["padding_mask"].numpy().tolist()
    [[1, 1, 1, 1, 0, 0], [1, 1, 1, 0, 0, 0]]
    """

    def __init__(self, tokenizer, sequence_length, **kwargs):
        super().__init__(**kwargs)
        self.tokenizer = tokenizer_with(tokenizer, "pad_id", "start_id", "end_id")
        if sequence_length < 2:
            raise ValueError(f"sequence_length={sequence_length} leaves no room for text "
                             "between the start and end tokens")
        self.sequence_length = sequence_length
        self.built = True  # no weights

    @property
    def vocabulary_size(self):
        return self.tokenizer.vocabulary_size

    def call(self, texts):
        tokenizer = self.tokenizer
        ids = tokenizer.tokenize(texts)[:, :self.sequence_length - 2]
        ones = tf.ones([ids.nrows(), 1], tf.int32)
        ids = tf.concat([ones * tokenizer.start_id, ids, ones * tokenizer.end_id], axis=1)
        shape = [None, self.sequence_length]
        return {"token_ids": ids.to_tensor(tokenizer.pad_id, shape=shape),
                "padding_mask": tf.ones_like(ids).to_tensor(0, shape=shape)}

    def get_config(self):
        config = super().get_config()
        config.update(tokenizer=keras.layers.serialize(self.tokenizer),
                      sequence_length=self.sequence_length)
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
