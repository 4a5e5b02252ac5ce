"""SentencePiece: a unigram model learned on raw text, in-graph tokenization with offsets,
detokenization that restores the spacing, and extra ids (mask, span sentinels).

Tokenization runs tensorflow-text's `SentencepieceTokenizer` (what keras-hub's
`SentencePieceTokenizer` wraps; used directly because keras-hub's layer returns Python
lists when called eagerly), so it works in `tf.data`, eagerly and inside exported
SavedModels, and detokenization restores the original spacing (WordPiece would print
"word ,").

Extra ids: a SentencePiece model reserves no mask token, and adding one to the model would
change the ids of existing vocabularies. So, as T5 does, `extra_ids` ids are appended after
the model's pieces: id `pieces + i` is `<extra_id_i>`. They never come out of `tokenize`
(the ids of text stay the model's), `mask_id` is `<extra_id_0>` and `sentinel_ids` are all
of them (T5's span corruption numbers its sentinels from `<extra_id_0>` too; an objective
uses either the mask or the sentinels). `detokenize` drops them, as it drops `<pad>`, `<s>`
and `</s>`. Their number is saved beside the model in `sentencepiece.json`; a directory
without it (every vocabulary saved before extra ids existed) has none, and `mask_id` None.
"""

import base64
import io
import json
import os

import sentencepiece
import tensorflow as tf
import tensorflow_text

from kerlm.tokenizers.base import Tokenizer, register, select_ids

PAD_ID, UNK_ID, START_ID, END_ID = 0, 1, 2, 3  # the ids `learn` gives the special pieces
MODEL_FILE = "sentencepiece.model"
EXTRA_IDS_FILE = "sentencepiece.json"
# Characters SentencePiece folds into a piece's leading "▁" (its normalizer maps them to a
# space or drops them); tensorflow-text's offsets include them.
_SPACE = r"[\s\p{Z}\p{Cc}\p{Cf}]"


@register(MODEL_FILE, EXTRA_IDS_FILE)
class SentencePieceTokenizer(Tokenizer):
    """A SentencePiece model (`proto`: the serialized model, or as `get_config` stores it,
    base64 text) and `extra_ids` ids appended after its pieces.

    The special ids are the model's own (`learn` makes them `<pad>` 0, `<unk>` 1, `<s>` 2
    = `start_id`, `</s>` 3 = `end_id`); `mask_id` is the first extra id, None without any.

    Offsets: tensorflow-text's offsets of a `"▁word"` piece include the whitespace before
    the word, and a lone `"▁"` covers only whitespace; so a piece's offsets skip leading
    (and trailing) whitespace, and pieces with no text left (a lone `"▁"`) get -1.

    Example:
    >>> texts = ["the cat sat", "the dog ran", "a cat ran"] * 30
    >>> tokenizer = SentencePieceTokenizer.learn(texts, 18, extra_ids=2)
    >>> tokenizer.vocabulary_size, tokenizer.mask_id, tokenizer.sentinel_ids
    (20, 18, (18, 19))
    >>> tokenizer.vocabulary[-2:], tokenizer.special_ids
    (['<extra_id_0>', '<extra_id_1>'], [0, 1, 2, 3, 18, 19])
    >>> ids = tokenizer.tokenize(tf.constant(["the  cat ran"]))
    >>> bool(tf.reduce_max(ids) < 18)  # text never gives extra ids
    True
    >>> _, start, end = tokenizer.tokenize_with_offsets(tf.constant(["the  cat ran"]))
    >>> [b"the  cat ran"[s:e] for s, e in zip(start[0].numpy(), end[0].numpy()) if s >= 0]
    [b't', b'h', b'e', b'c', b'at', b'ran']
    >>> tokenizer.detokenize(tf.concat([ids, [[18, 3]]], axis=1)).numpy().tolist()
    [b'the cat ran']
    """

    reversible = True

    def __init__(self, proto, extra_ids=0, **kwargs):
        super().__init__(**kwargs)
        self.proto = base64.b64decode(proto) if isinstance(proto, str) else bytes(proto)
        if extra_ids < 0:
            raise ValueError(f"extra_ids must be 0 or more, got {extra_ids}")
        self.extra_ids = int(extra_ids)
        model = sentencepiece.SentencePieceProcessor(model_proto=self.proto)
        self.pieces = model.get_piece_size()
        self._pieces = [model.id_to_piece(i) for i in range(self.pieces)]
        self.pad_id, self.unk_id, self.start_id, self.end_id = (
            None if i < 0 else i
            for i in (model.pad_id(), model.unk_id(), model.bos_id(), model.eos_id()))
        self.sentinel_ids = tuple(range(self.pieces, self.pieces + self.extra_ids))
        self.mask_id = self.sentinel_ids[0] if self.extra_ids else None
        self._tokenizer = tensorflow_text.SentencepieceTokenizer(model=self.proto,
                                                                 out_type=tf.int32)

    @classmethod
    def learn(cls, texts, vocabulary_size, extra_ids=0, seed_sentences=200_000):
        """Train a unigram model of `vocabulary_size` pieces on `texts`, plus `extra_ids`.

        Ids 0-3 are `<pad>`, `<unk>`, `<s>` (decoder start), `</s>` (end). The sentencepiece
        trainer is called directly: keras-hub's `compute_sentence_piece_proto` cannot set
        those ids. A vocabulary larger than the text supports is reduced to what it supports.
        """
        model = io.BytesIO()
        texts = [t for t in texts if t.strip()]
        while True:
            try:
                sentencepiece.SentencePieceTrainer.train(
                    sentence_iterator=iter(texts), model_writer=model,
                    vocab_size=vocabulary_size, model_type="unigram", character_coverage=1.0,
                    pad_id=PAD_ID, unk_id=UNK_ID, bos_id=START_ID, eos_id=END_ID,
                    input_sentence_size=seed_sentences, shuffle_input_sentence=True,
                    minloglevel=2)
                return cls(model.getvalue(), extra_ids=extra_ids)
            except RuntimeError as e:  # "Vocabulary size too high (N). Please set it to a value <= M."
                message = str(e)
                if "<=" not in message:
                    raise
                vocabulary_size = int(message.rsplit("<=", 1)[1].strip(" ."))

    @classmethod
    def from_directory(cls, directory):
        with open(os.path.join(directory, MODEL_FILE), "rb") as f:
            proto = f.read()
        path = os.path.join(directory, EXTRA_IDS_FILE)
        extra_ids = 0
        if os.path.exists(path):
            with open(path) as f:
                extra_ids = json.load(f)["extra_ids"]
        return cls(proto, extra_ids=extra_ids)

    def save(self, directory):
        """`sentencepiece.model`, and `sentencepiece.json` (`{"extra_ids": N}`) if N > 0 (a
        stale one is removed otherwise, so the directory reads back as this tokenizer)."""
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, MODEL_FILE), "wb") as f:
            f.write(self.proto)
        path = os.path.join(directory, EXTRA_IDS_FILE)
        if self.extra_ids:
            with open(path, "w") as f:
                json.dump({"extra_ids": self.extra_ids}, f)
        elif os.path.exists(path):
            os.remove(path)

    @property
    def vocabulary(self):
        return self._pieces + [f"<extra_id_{i}>" for i in range(self.extra_ids)]

    def tokenize(self, texts):
        return self._tokenizer.tokenize(texts)

    def tokenize_with_offsets(self, texts):
        """As `Tokenizer.tokenize_with_offsets`, without the whitespace of a leading `"▁"`;
        -1 for whitespace-only pieces."""
        texts = tf.convert_to_tensor(texts)
        ids, starts, ends = self._tokenizer.tokenize_with_offsets(texts)
        start, end = starts.flat_values, ends.flat_values
        piece = tf.strings.substr(tf.gather(texts, ids.value_rowids()), start, end - start)
        left = tf.strings.regex_replace(piece, "^" + _SPACE + "+", "")
        text = tf.strings.regex_replace(left, _SPACE + "+$", "")
        start = end - tf.cast(tf.strings.length(left), end.dtype)
        end = start + tf.cast(tf.strings.length(text), end.dtype)
        empty = tf.equal(start, end)
        start = tf.where(empty, tf.constant(-1, end.dtype), start)
        end = tf.where(empty, tf.constant(-1, end.dtype), end)
        return ids, ids.with_flat_values(start), ids.with_flat_values(end)

    def detokenize(self, ids):
        """The text, spacing restored; `<pad>`, `<s>`, `</s>` and the extra ids print as
        nothing, `<unk>` as " ⁇ "."""
        if self.extra_ids:
            ids = select_ids(ids, lambda v: v < self.pieces)
        return self._tokenizer.detokenize(ids)

    def get_config(self):
        config = super().get_config()
        config.update(proto=base64.b64encode(self.proto).decode("ascii"),
                      extra_ids=self.extra_ids)
        return config
