"""Source/target features for text-to-text models, with any tokenizer."""

import keras
import tensorflow as tf

from kerlm.preprocessing.text import tokenizer_with


@keras.saving.register_keras_serializable(package="kerlm")
class Seq2SeqPreprocessor(keras.layers.Layer):
    """Source strings → encoder features; target strings → teacher-forcing features.

    Sources become `tokens… end` (truncated to `source_length`); targets become decoder
    inputs `start tokens…` and labels `tokens… end` (both truncated to `target_length`).
    Outputs are right-padded with `pad_id` to the longest sequence in the batch. The
    text-to-text tasks use a SentencePiece tokenizer, whose `detokenize` restores the
    spacing.

    Example:
    >>> from kerlm.tokenizers import SentencePieceTokenizer
    >>> tokenizer = SentencePieceTokenizer.learn(["the cat sat", "the dog ran", "a cat ran"]
    ...                                          * 30, 25)
    >>> pre = Seq2SeqPreprocessor(tokenizer, source_length=8, target_length=8)
    >>> texts = tf.constant(["the cat", "a dog ran"])
    >>> source = pre(texts)
    >>> lengths = tokenizer.tokenize(texts).row_lengths().numpy()
    >>> bool((source["encoder_padding_mask"].numpy().sum(axis=1) == lengths + 1).all())  # + end
    True
    >>> x, labels = pre.targets(tf.constant(["the cat"]))
    >>> int(x["decoder_token_ids"][0, 0]) == tokenizer.start_id, int(labels[0, -1]) == 3
    (True, True)
    >>> pre.detokenize(labels).numpy().tolist()
    [b'the cat']
    """

    def __init__(self, tokenizer, source_length, target_length, **kwargs):
        super().__init__(**kwargs)
        self.tokenizer = tokenizer_with(tokenizer, "pad_id", "start_id", "end_id")
        self.source_length = source_length
        self.target_length = target_length
        self.built = True  # no weights

    @property
    def vocabulary_size(self):
        return self.tokenizer.vocabulary_size

    def _pad(self, ragged):
        return (ragged.to_tensor(self.tokenizer.pad_id),
                tf.cast(tf.sequence_mask(ragged.row_lengths()), "int32"))

    def call(self, sources):
        """`{"encoder_token_ids", "encoder_padding_mask"}` for a batch of strings."""
        ids = self.tokenizer.tokenize(sources)[:, :self.source_length - 1]
        end = tf.fill([ids.nrows(), 1], self.tokenizer.end_id)
        ids, mask = self._pad(tf.concat([ids, end], axis=1))
        return {"encoder_token_ids": ids, "encoder_padding_mask": mask}

    def targets(self, targets):
        """`({"decoder_token_ids", "decoder_padding_mask"}, labels)` for a batch of strings."""
        ids = self.tokenizer.tokenize(targets)[:, :self.target_length - 1]
        ones = tf.ones([ids.nrows(), 1], "int32")
        decoder_ids, mask = self._pad(tf.concat([ones * self.tokenizer.start_id, ids], axis=1))
        labels, _ = self._pad(tf.concat([ids, ones * self.tokenizer.end_id], axis=1))
        return {"decoder_token_ids": decoder_ids, "decoder_padding_mask": mask}, labels

    def detokenize(self, token_ids):
        """Strings from `[batch, length]` ids (`Tokenizer.detokenize`: special tokens print
        as nothing)."""
        return self.tokenizer.detokenize(token_ids)

    def get_config(self):
        config = super().get_config()
        config.update(tokenizer=keras.layers.serialize(self.tokenizer),
                      source_length=self.source_length, target_length=self.target_length)
        return config
