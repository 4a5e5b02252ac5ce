"""A shared SentencePiece vocabulary for source and target text, and seq2seq features.

Tokenization runs tensorflow-text's `SentencepieceTokenizer` (what keras-hub's
`SentencePieceTokenizer` wraps; used directly because keras-hub's layer returns Python
lists when called eagerly), so the same layer works in `tf.data`, eagerly and inside
exported SavedModels, and detokenization restores the original spacing (WordPiece would
print "word ,").
"""

import io

import keras
import tensorflow as tf
import tensorflow_text

PAD_ID, UNK_ID, START_ID, END_ID = 0, 1, 2, 3
MODEL_FILE = "sentencepiece.model"


def learn_sentencepiece(texts, vocabulary_size, seed_sentences=200_000):
    """Train a unigram SentencePiece model on `texts`; returns the serialized proto.

    Ids 0-3 are `<pad>`, `<unk>`, `<s>` (decoder start), `</s>` (end). The sentencepiece
    trainer is called directly: keras-hub's `compute_sentence_piece_proto` cannot set
    those ids. A vocabulary larger than the text supports is reduced to what it supports.

    Example:
    >>> proto = learn_sentencepiece(["a good film", "a bad film", "good and bad"] * 30, 30)
    >>> pre = Seq2SeqPreprocessor(proto, source_length=8, target_length=8)
    >>> pre.detokenize(pre.tokenizer.tokenize(tf.constant(["a good film"]))).numpy().tolist()
    [b'a good film']
    """
    import sentencepiece  # noqa: PLC0415 (training only)

    model = io.BytesIO()
    texts = [t for t in texts if t.strip()]
    while True:
        try:
            sentencepiece.SentencePieceTrainer.train(
                sentence_iterator=iter(texts), model_writer=model, vocab_size=vocabulary_size,
                model_type="unigram", character_coverage=1.0, pad_id=PAD_ID, unk_id=UNK_ID,
                bos_id=START_ID, eos_id=END_ID, input_sentence_size=seed_sentences,
                shuffle_input_sentence=True, minloglevel=2)
            return model.getvalue()
        except RuntimeError as e:  # "Vocabulary size too high (N). Please set it to a value <= M."
            message = str(e)
            if "<=" not in message:
                raise
            vocabulary_size = int(message.rsplit("<=", 1)[1].strip(" ."))


class Seq2SeqPreprocessor(keras.layers.Layer):
    """Source strings → encoder features; target strings → teacher-forcing features.

    Sources become `tokens… </s>` (truncated to `source_length`); targets become decoder
    inputs `<s> tokens…` and labels `tokens… </s>` (both truncated to `target_length`).
    Outputs are right-padded with 0 to the longest sequence in the batch. The task saves
    the proto beside the model (`MODEL_FILE`) and rebuilds this layer from it.

    Example:
    >>> proto = learn_sentencepiece(["the cat sat", "the dog ran", "a cat ran"] * 30, 25)
    >>> pre = Seq2SeqPreprocessor(proto, source_length=8, target_length=8)
    >>> texts = tf.constant(["the cat", "a dog ran"])
    >>> source = pre(texts)
    >>> lengths = pre.tokenizer.tokenize(texts).row_lengths().numpy()
    >>> bool((source["encoder_padding_mask"].numpy().sum(axis=1) == lengths + 1).all())  # + end
    True
    >>> x, labels = pre.targets(tf.constant(["the cat"]))
    >>> int(x["decoder_token_ids"][0, 0]) == START_ID, int(labels[0, -1]) == END_ID
    (True, True)
    """

    def __init__(self, proto, source_length, target_length, **kwargs):
        super().__init__(**kwargs)
        self.proto = proto
        self.source_length = source_length
        self.target_length = target_length
        self.tokenizer = tensorflow_text.SentencepieceTokenizer(model=proto, out_type=tf.int32)
        self.built = True  # no weights: the vocabulary lives in the tokenizer's op

    @property
    def vocabulary_size(self):
        return int(self.tokenizer.vocab_size())

    def _pad(self, ragged):
        return ragged.to_tensor(PAD_ID), tf.cast(tf.sequence_mask(ragged.row_lengths()), "int32")

    def call(self, sources):
        """`{"encoder_token_ids", "encoder_padding_mask"}` for a batch of strings."""
        ids = self.tokenizer.tokenize(sources)[:, :self.source_length - 1]
        ids, mask = self._pad(tf.concat([ids, tf.fill([ids.nrows(), 1], END_ID)], axis=1))
        return {"encoder_token_ids": ids, "encoder_padding_mask": mask}

    def targets(self, targets):
        """`({"decoder_token_ids", "decoder_padding_mask"}, labels)` for a batch of strings."""
        ids = self.tokenizer.tokenize(targets)[:, :self.target_length - 1]
        ones = tf.ones([ids.nrows(), 1], "int32")
        decoder_ids, mask = self._pad(tf.concat([ones * START_ID, ids], axis=1))
        labels, _ = self._pad(tf.concat([ids, ones * END_ID], axis=1))
        return {"decoder_token_ids": decoder_ids, "decoder_padding_mask": mask}, labels

    def detokenize(self, token_ids):
        """Strings from `[batch, length]` ids; `<pad>`, `<s>` and `</s>` print as nothing."""
        return self.tokenizer.detokenize(token_ids)


class SentencePiecePreprocessor(keras.layers.Layer):
    """Strings `[batch]` → `{"token_ids", "padding_mask"}` int32 `[batch, sequence_length]`
    with a SentencePiece model: `<s> tokens… </s>`, truncated and padded to
    `sequence_length`. The classifier's features when it shares a SentencePiece vocabulary
    with text-to-text tasks (a multi-task model), as `WordPiecePreprocessor`'s otherwise.

    Example:
    >>> proto = learn_sentencepiece(["a good film", "a bad film", "good and bad"] * 30, 30)
    >>> pre = SentencePiecePreprocessor(proto, sequence_length=6)
    >>> out = pre(tf.constant(["a good film", "bad"]))
    >>> ids = out["token_ids"].numpy()
    >>> ids.shape, int(ids[0, 0]) == START_ID, out["padding_mask"].numpy().sum(axis=1).tolist()
    ((2, 6), True, [6, 3])
    """

    def __init__(self, proto, sequence_length, **kwargs):
        super().__init__(**kwargs)
        self.proto = proto
        self.sequence_length = sequence_length
        self.tokenizer = tensorflow_text.SentencepieceTokenizer(model=proto, out_type=tf.int32)
        self.built = True

    @property
    def vocabulary_size(self):
        return int(self.tokenizer.vocab_size())

    def call(self, texts):
        ids = self.tokenizer.tokenize(texts)[:, :self.sequence_length - 2]
        ones = tf.ones([ids.nrows(), 1], tf.int32)
        ids = tf.concat([ones * START_ID, ids, ones * END_ID], axis=1)
        shape = [None, self.sequence_length]
        return {"token_ids": ids.to_tensor(PAD_ID, shape=shape),
                "padding_mask": tf.ones_like(ids).to_tensor(0, shape=shape)}
