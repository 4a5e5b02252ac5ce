"""WordPiece vocabulary learning and the in-graph preprocessor."""

import numpy as np
import tensorflow as tf

from kerlm import preprocessing

TEXTS = ["The battery is great", "The battery died", "Great value, great sound!",
         "Sound quality is poor"] * 20


def test_vocabulary_learns_words_and_keeps_reserved_tokens_first(tmp_path):
    vocabulary = preprocessing.learn_vocabulary(TEXTS, 200)
    assert vocabulary[:len(preprocessing.RESERVED_TOKENS)] == preprocessing.RESERVED_TOKENS
    assert {"battery", "great", "sound"} <= set(vocabulary)
    path = str(tmp_path / "vocab.txt")
    preprocessing.save_vocabulary(vocabulary, path)
    assert preprocessing.load_vocabulary(path) == vocabulary


def test_tokenizer_round_trip():
    vocabulary = preprocessing.learn_vocabulary(TEXTS, 200)
    pre = preprocessing.WordPiecePreprocessor(vocabulary, sequence_length=16)
    ids = pre.tokenizer(tf.constant(["The battery is great", "Great sound!"]))
    text = pre.tokenizer.detokenize(ids)
    assert [t if isinstance(t, str) else t.decode() for t in list(text)] == \
        ["the battery is great", "great sound !"]


def test_packing_truncates_pads_and_keeps_the_end_token():
    vocabulary = preprocessing.RESERVED_TOKENS + ["a", "b"]
    pre = preprocessing.WordPiecePreprocessor(vocabulary, sequence_length=4)
    out = pre(tf.constant(["a b a b a", "b", "zzz"]))
    cls, sep, unk = 2, 3, 1
    assert out["token_ids"].numpy().tolist() == [[cls, 5, 6, sep], [cls, 6, sep, 0],
                                                 [cls, unk, sep, 0]]
    assert out["padding_mask"].numpy().tolist() == [[1, 1, 1, 1], [1, 1, 1, 0], [1, 1, 1, 0]]


def test_trim_batch_cuts_to_the_longest_real_sequence():
    mask = np.zeros((2, 64), "int32")
    mask[0, :20] = 1
    mask[1, :5] = 1
    trimmed = preprocessing.trim_batch({"token_ids": tf.constant(mask * 7),
                                        "padding_mask": tf.constant(mask)})
    assert trimmed["padding_mask"].shape == (2, 32)  # 20 rounded up to a multiple of 16
    assert int(tf.reduce_sum(trimmed["padding_mask"])) == 25  # no real token lost


def test_missing_reserved_tokens_are_an_error():
    import pytest
    with pytest.raises(ValueError, match=r"\[CLS\]"):
        preprocessing.WordPiecePreprocessor(["[PAD]", "[UNK]", "a"], sequence_length=8)
