"""Masking statistics, span corruption and packing: the corruptions of the objectives."""

import numpy as np
import pytest
import tensorflow as tf

from kerlm.preprocessing import packing, pretraining

SPECIAL = [0, 1, 2, 3, 4]  # pad, unk, cls, sep, mask
VOCABULARY = 500


def _rows(n=2000, length=128, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, VOCABULARY, (n, length)).astype("int32")
    ids[:, 0], ids[:, -1] = 2, 3  # [CLS] ... [SEP]
    ids[::2, 100:] = 0  # padding in every other row
    return ids


def _statistics(ids, out):
    selectable = ~np.isin(ids, SPECIAL)
    positions, weights = out["mask_positions"].numpy(), out["mask_weights"].numpy()
    corrupted, originals = out["token_ids"].numpy(), out["mask_ids"].numpy()
    rows = np.repeat(np.arange(len(ids))[:, None], positions.shape[1], 1)
    real = weights > 0
    picked = positions[real], rows[real]
    assert selectable[picked[1], picked[0]].all()  # never a special token or padding
    np.testing.assert_array_equal(originals[real], ids[picked[1], picked[0]])
    assert (originals[~real] == 0).all()
    changed = corrupted[picked[1], picked[0]]
    untouched = np.ones_like(ids, bool)
    untouched[picked[1], picked[0]] = False
    np.testing.assert_array_equal(corrupted[untouched], ids[untouched])
    return {"selected": real.sum() / selectable.sum(),
            "mask": np.mean(changed == 4),
            "same": np.mean(changed == originals[real]),
            "per_row": real.sum(1)}


def test_bert_masking_rates_on_a_large_sample():
    ids = _rows()
    out = pretraining.mask_tokens(tf.constant(ids), vocabulary_size=VOCABULARY, mask_id=4,
                                  unselectable_ids=SPECIAL, rate=0.15, max_predictions=20)
    stats = _statistics(ids, out)
    assert abs(stats["selected"] - 0.15) < 0.01, stats
    assert abs(stats["mask"] - 0.8) < 0.02 and abs(stats["same"] - 0.1) < 0.02, stats
    assert stats["per_row"].max() <= 20


def test_whole_word_masking_takes_words_whole_at_the_rate():
    ids = _rows(seed=1)
    continuation = np.zeros(VOCABULARY, bool)
    continuation[300:] = True  # ids 300+ are "##" pieces: words of 1-3 pieces
    out = pretraining.mask_tokens(tf.constant(ids), vocabulary_size=VOCABULARY, mask_id=4,
                                  unselectable_ids=SPECIAL, rate=0.15, max_predictions=40,
                                  continuation=continuation, seed=3)
    stats = _statistics(ids, out)
    assert abs(stats["selected"] - 0.15) < 0.02, stats
    assert abs(stats["mask"] - 0.8) < 0.02 and abs(stats["same"] - 0.1) < 0.02, stats
    selected = np.zeros_like(ids, bool)
    for row, (positions, weights) in enumerate(zip(out["mask_positions"].numpy(),
                                                   out["mask_weights"].numpy())):
        selected[row, positions[weights > 0]] = True
    selectable = ~np.isin(ids, SPECIAL)
    word = np.cumsum(selectable & ~continuation[ids], 1)
    for row in range(200):  # every word is selected whole or not at all
        for w in np.unique(word[row][selectable[row] & (word[row] > 0)]):
            pieces = selected[row][(word[row] == w) & selectable[row]]
            assert pieces.all() or not pieces.any(), (row, w)


@pytest.mark.parametrize("inputs_length, raw, targets", [(128, 141, 29), (512, 568, 114)])
def test_span_corruption_lengths_are_t5s(inputs_length, raw, targets):
    assert pretraining.span_corruption_lengths(inputs_length) == (raw, targets)


def test_span_corruption_reconstructs_the_text_and_has_t5s_statistics():
    sentinels = list(range(1000, 1032))
    noise, spans = [], []
    for seed in range(300):
        tokens = tf.constant(np.random.default_rng(seed).integers(3, 900, 141), tf.int32)
        tokens = tf.tensor_scatter_nd_update(tokens, [[40]], [1])  # a document separator
        inputs, targets = pretraining.span_corrupt(tokens, sentinel_ids=sentinels, end_id=1,
                                                   seed=tf.constant([7, seed], tf.int64))
        assert inputs.shape == (128,) and targets.shape == (29,)
        assert pretraining.uncorrupt(inputs, targets, sentinels, 1) == tokens.numpy().tolist()
        mask = pretraining.noise_mask(141, 0.15, 3.0, tf.constant([7, seed], tf.int64)).numpy()
        assert not mask[0]  # spans start with kept text
        noise.append(mask.mean())
        spans.append(int(np.sum(mask[1:] & ~mask[:-1])))
    assert abs(np.mean(noise) - 21 / 141) < 1e-9  # round(141 × 0.15) noise tokens, always
    assert set(spans) == {7}  # round(21 / 3) spans of mean length 3


def test_span_corruption_refuses_too_few_sentinels():
    with pytest.raises(ValueError, match="7 noise spans but only 3 sentinel ids"):
        pretraining.span_corrupt(tf.range(141), sentinel_ids=[7, 8, 9], end_id=1,
                                 seed=tf.constant([0, 0], tf.int64))


def test_packing_fills_blocks_across_document_boundaries():
    class Tokenizer:
        def tokenize(self, texts):
            return tf.strings.to_number(tf.strings.split(texts), tf.int32)

    docs = packing.documents(lambda _: iter(["5 6 7", "8", "9 10 11 12 13 14"]), ["all"])
    tokens = packing.token_stream(docs, Tokenizer(), separator_id=3)
    assert [b.tolist() for b in packing.blocks(tokens, 4).as_numpy_iterator()] == [
        [5, 6, 7, 3], [8, 3, 9, 10], [11, 12, 13, 14]]  # the last [3] dropped in training
    last = list(packing.blocks(tokens, 4, drop_remainder=False).as_numpy_iterator())[-1]
    assert last.tolist() == [3, 0, 0, 0]
    shifted = list(packing.shifted_blocks(tokens, 4, start_id=3).as_numpy_iterator())
    inputs = np.concatenate([x[w > 0] for x, _, w in shifted]).tolist()
    targets = np.concatenate([y[w > 0] for _, y, w in shifted]).tolist()
    stream = [5, 6, 7, 3, 8, 3, 9, 10, 11, 12, 13, 14, 3]
    assert targets == stream and inputs == [3] + stream[:-1]  # each token predicted once


def test_documents_stream_in_order_and_shuffled_by_source():
    read = lambda source: iter(f"{source}-{i}" for i in range(3))  # noqa: E731
    ordered = [d.decode() for d in packing.documents(read, ["a", "b", "c"]).as_numpy_iterator()]
    assert ordered == ["a-0", "a-1", "a-2", "b-0", "b-1", "b-2", "c-0", "c-1", "c-2"]
    shuffled = packing.documents(read, ["a", "b", "c"], shuffle=True, seed=1, shuffle_buffer=4)
    first, second = ([d.decode() for d in shuffled.as_numpy_iterator()] for _ in range(2))
    assert sorted(first) == sorted(ordered) and first != ordered and first != second
