"""Input formats on any tokenizer: single-text and text-pair features, batch trimming."""

import numpy as np
import pytest
import tensorflow as tf

from kerlm import preprocessing, tokenizers
from kerlm.tokenizers.word_piece import RESERVED_TOKENS

TEXTS = ["The battery is great", "The battery died", "Great value, great sound!",
         "Sound quality is poor"] * 20


def test_vocabulary_learns_words_and_keeps_reserved_tokens_first(tmp_path):
    tokenizer = tokenizers.WordPieceTokenizer.learn(TEXTS, 200)
    vocabulary = tokenizer.vocabulary
    assert vocabulary[:len(RESERVED_TOKENS)] == RESERVED_TOKENS
    assert {"battery", "great", "sound"} <= set(vocabulary)
    tokenizer.save(str(tmp_path))
    assert tokenizers.load(str(tmp_path)).vocabulary == vocabulary


def test_tokenizer_round_trip():
    tokenizer = tokenizers.WordPieceTokenizer.learn(TEXTS, 200)
    pre = preprocessing.TextPreprocessor(tokenizer, sequence_length=16)
    ids = pre.tokenizer(tf.constant(["The battery is great", "Great sound!"]))
    text = pre.tokenizer.detokenize(ids)
    assert [t.decode() for t in text.numpy()] == ["the battery is great", "great sound !"]


def test_packing_truncates_pads_and_keeps_the_end_token():
    vocabulary = RESERVED_TOKENS + ["a", "b"]
    pre = preprocessing.TextPreprocessor(tokenizers.WordPieceTokenizer(vocabulary),
                                         sequence_length=4)
    out = pre(tf.constant(["a b a b a", "b", "zzz"]))
    cls, sep, unk = 2, 3, 1
    assert out["token_ids"].numpy().tolist() == [[cls, 5, 6, sep], [cls, 6, sep, 0],
                                                 [cls, unk, sep, 0]]
    assert out["padding_mask"].numpy().tolist() == [[1, 1, 1, 1], [1, 1, 1, 0], [1, 1, 1, 0]]


def test_sentencepiece_packing_is_start_pieces_end_then_padding():
    tokenizer = tokenizers.SentencePieceTokenizer.learn(TEXTS, 40)
    pre = preprocessing.TextPreprocessor(tokenizer, sequence_length=8)
    texts = ["The battery is great", "poor", ""]
    out = pre(tf.constant(texts))
    for text, ids, mask in zip(texts, out["token_ids"].numpy(), out["padding_mask"].numpy()):
        pieces = tokenizer.tokenize(tf.constant([text]))[0].numpy().tolist()[:6]
        row = [tokenizer.start_id, *pieces, tokenizer.end_id]
        assert ids.tolist() == row + [tokenizer.pad_id] * (8 - len(row))
        assert mask.tolist() == [1] * len(row) + [0] * (8 - len(row))
    assert len(tokenizer.tokenize(tf.constant(texts[:1]))[0]) > 6  # the first is truncated


def test_config_round_trip_and_tf_data():
    pre = preprocessing.TextPreprocessor(tokenizers.WordPieceTokenizer.learn(TEXTS, 200), 12)
    again = preprocessing.TextPreprocessor.from_config(pre.get_config())
    assert again.tokenizer.vocabulary == pre.tokenizer.vocabulary
    assert again.vocabulary_size == pre.vocabulary_size == len(pre.tokenizer.vocabulary)
    batch = next(iter(tf.data.Dataset.from_tensor_slices(TEXTS[:4]).batch(4).map(again)))
    expected = pre(tf.constant(TEXTS[:4]))
    for key in expected:
        np.testing.assert_array_equal(batch[key].numpy(), expected[key].numpy())


def test_trim_batch_cuts_to_the_longest_real_sequence():
    mask = np.zeros((2, 64), "int32")
    mask[0, :20] = 1
    mask[1, :5] = 1
    trimmed = preprocessing.trim_batch({"token_ids": tf.constant(mask * 7),
                                        "padding_mask": tf.constant(mask)})
    assert trimmed["padding_mask"].shape == (2, 32)  # 20 rounded up to a multiple of 16
    assert int(tf.reduce_sum(trimmed["padding_mask"])) == 25  # no real token lost


def test_missing_reserved_tokens_are_an_error():
    with pytest.raises(ValueError, match=r"\[CLS\]"):
        preprocessing.TextPreprocessor(tokenizers.WordPieceTokenizer(["[PAD]", "[UNK]", "a"]),
                                       sequence_length=8)
    with pytest.raises(ValueError, match="expected a kerlm.tokenizers.Tokenizer"):
        preprocessing.TextPreprocessor(RESERVED_TOKENS, sequence_length=8)


@pytest.mark.parametrize("kind", ["word_piece", "sentence_piece"])
def test_text_pairs_pack_both_texts_with_segments_on_any_tokenizer(kind):
    tokenizer = (tokenizers.WordPieceTokenizer if kind == "word_piece"
                 else tokenizers.SentencePieceTokenizer).learn(TEXTS, 60)
    first, second = ["The battery is great", "Sound"], ["Great value", "The battery died"]
    lengths = [[len(ids) for ids in tokenizer.tokenize(tf.constant(texts)).to_list()]
               for texts in (first, second)]
    pre = preprocessing.TextPairPreprocessor(tokenizer, sequence_length=32)
    out = {k: v.numpy() for k, v in pre(tf.constant(first), tf.constant(second)).items()}
    start, end = tokenizer.start_id, tokenizer.end_id
    for row in range(2):
        a, b = lengths[0][row], lengths[1][row]
        ids = out["token_ids"][row]
        assert ids[0] == start and ids[a + 1] == end and ids[a + b + 2] == end
        assert out["segment_ids"][row].tolist() == [0] * (a + 2) + [1] * (b + 1) + \
            [0] * (32 - a - b - 3)
        assert out["padding_mask"][row].sum() == a + b + 3
    # too long: cut to the length, the 3 free places shared round-robin (2 + 1), both end
    # tokens kept
    short = preprocessing.TextPairPreprocessor(tokenizer, sequence_length=6)
    cut = {k: v.numpy()
           for k, v in short(tf.constant(first[:1]), tf.constant(second[:1])).items()}
    assert cut["padding_mask"].tolist() == [[1] * 6]
    assert cut["segment_ids"].tolist() == [[0, 0, 0, 0, 1, 1]]
    assert cut["token_ids"][0, 3] == end and cut["token_ids"][0, 5] == end
    # in tf.data, and rebuilt from its config
    ds = tf.data.Dataset.from_tensor_slices((first, second)).batch(2).map(pre)
    np.testing.assert_array_equal(next(iter(ds))["token_ids"].numpy(), out["token_ids"])
    again = preprocessing.TextPairPreprocessor.from_config(pre.get_config())
    np.testing.assert_array_equal(again(tf.constant(first), tf.constant(second))[
        "token_ids"].numpy(), out["token_ids"])
