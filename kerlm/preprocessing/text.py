"""Single-text and text-pair features for any tokenizer, and batch trimming."""

import keras
import keras_hub
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

    special_tokens = 2  # start, end

    def __init__(self, tokenizer, sequence_length, **kwargs):
        super().__init__(**kwargs)
        self.tokenizer = tokenizer_with(tokenizer, "pad_id", "start_id", "end_id")
        if sequence_length < self.special_tokens:
            raise ValueError(f"sequence_length={sequence_length} cannot hold the "
                             f"{self.special_tokens} start and end tokens")
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


@keras.saving.register_keras_serializable(package="kerlm")
class TextPairPreprocessor(TextPreprocessor):
    """Pairs of strings `([batch], [batch])` → `{"token_ids", "padding_mask",
    "segment_ids"}` int32 `[batch, sequence_length]`: `start first… end second… end` with
    segment 0 then 1 (BERT's sentence pairs), with any `kerlm.tokenizers.Tokenizer`. A pair
    too long for `sequence_length` is cut by keras-hub's `MultiSegmentPacker` round-robin
    truncation (the room left is shared out a token at a time between the texts).

    Example:
    >>> from kerlm.tokenizers import WordPieceTokenizer
    >>> tokenizer = WordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "good", "film"])
    >>> pre = TextPairPreprocessor(tokenizer, sequence_length=7)
    >>> out = pre(tf.constant(["good film"]), tf.constant(["film"]))
    >>> out["token_ids"].numpy().tolist(), out["segment_ids"].numpy().tolist()
    ([[2, 4, 5, 3, 5, 3, 0]], [[0, 0, 0, 0, 1, 1, 0]])
    >>> out["padding_mask"].numpy().tolist()
    [[1, 1, 1, 1, 1, 1, 0]]
    """

    special_tokens = 3  # start, end, end

    def __init__(self, tokenizer, sequence_length, **kwargs):
        super().__init__(tokenizer, sequence_length, **kwargs)
        self.packer = keras_hub.layers.MultiSegmentPacker(
            sequence_length, start_value=self.tokenizer.start_id,
            end_value=self.tokenizer.end_id, pad_value=self.tokenizer.pad_id,
            truncate="round_robin")

    def call(self, first, second):
        token_ids, segment_ids = self.packer((self.tokenizer.tokenize(first),
                                              self.tokenizer.tokenize(second)))
        lengths = tf.reduce_sum(tf.cast(token_ids != self.tokenizer.pad_id, tf.int32), 1)
        mask = tf.sequence_mask(lengths, tf.shape(token_ids)[1], tf.int32)
        return {"token_ids": tf.cast(token_ids, tf.int32), "padding_mask": mask,
                "segment_ids": tf.cast(segment_ids, tf.int32) * mask}


def tokenized(preprocessor, texts, batch_size=512):
    """A dataset of each text's features (`preprocessor` run on `batch_size` texts at a
    time), of known cardinality.

    >>> from kerlm.tokenizers import WordPieceTokenizer
    >>> pre = TextPreprocessor(WordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "film"]), 4)
    >>> ds = tokenized(pre, ["film", "film film"])
    >>> int(ds.cardinality()), next(iter(ds))["token_ids"].numpy().tolist()
    (2, [2, 4, 3, 0])
    """
    ds = (tf.data.Dataset.from_tensor_slices(texts).batch(batch_size)
          .map(preprocessor, num_parallel_calls=tf.data.AUTOTUNE).unbatch())
    return ds.apply(tf.data.experimental.assert_cardinality(len(texts)))  # lost by unbatch


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
