"""Masking statistics, span corruption and packing: the corruptions of the objectives."""

import numpy as np
import pytest
import tensorflow as tf

from kerlm.preprocessing import packing, pretraining

SPECIAL = [0, 1, 2, 3, 4]  # pad, unk, cls, sep, mask
MASK, VOCABULARY = 4, 500
SENTINELS = list(range(1000, 1032))


def _rows(n=2000, length=128, seed=0):
    """[CLS] text [SEP]: 126 selectable pieces, every other row 98 then padding, and one
    row of padding only."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, VOCABULARY, (n, length)).astype("int32")
    ids[:, 0], ids[:, -1] = 2, 3
    ids[::2, 99], ids[::2, 100:] = 3, 0
    ids[-1] = 0
    return ids


def _mask(ids, through_dataset, **kwargs):
    """`mask_tokens` eagerly, or in a `tf.data` map over batches of 250 (graph mode)."""
    kwargs = dict(vocabulary_size=VOCABULARY, mask_id=MASK, unselectable_ids=SPECIAL,
                  **kwargs)
    if not through_dataset:
        return pretraining.mask_tokens(tf.constant(ids), **kwargs)
    ds = tf.data.Dataset.from_tensor_slices(ids).batch(250).map(
        lambda batch: pretraining.mask_tokens(batch, **kwargs))
    batches = list(ds)
    return {key: tf.concat([b[key] for b in batches], 0) for key in batches[0]}


def _check(ids, out, max_predictions):
    """Asserts the outputs are consistent with the input; returns the selection (bool
    [n, length]) and the rates."""
    positions, weights = out["mask_positions"].numpy(), out["mask_weights"].numpy()
    corrupted, originals = out["token_ids"].numpy(), out["mask_ids"].numpy()
    assert positions.shape == weights.shape == originals.shape == (len(ids), max_predictions)
    assert positions.dtype == originals.dtype == corrupted.dtype == np.int32
    assert weights.dtype == np.float32 and corrupted.shape == ids.shape
    real = weights > 0
    counts = real.sum(1)
    np.testing.assert_array_equal(real, np.arange(max_predictions) < counts[:, None])
    assert set(np.unique(weights)) <= {0.0, 1.0}
    assert (positions[~real] == 0).all() and (originals[~real] == 0).all()
    for row in range(len(ids)):  # ascending, distinct
        assert (np.diff(positions[row, :counts[row]]) > 0).all(), row
    rows = np.repeat(np.arange(len(ids))[:, None], max_predictions, 1)[real]
    columns = positions[real]
    selected = np.zeros(ids.shape, bool)
    selected[rows, columns] = True
    selectable = ~np.isin(ids, SPECIAL)
    assert not (selected & ~selectable).any()  # never a special token or padding
    np.testing.assert_array_equal(originals[real], ids[rows, columns])
    np.testing.assert_array_equal(corrupted[~selected], ids[~selected])
    changed = corrupted[rows, columns]
    return selected, {"selected": selected.sum() / selectable.sum(),
                      "mask": np.mean(changed == MASK),
                      "random": np.mean((changed != MASK) & (changed != originals[real])),
                      "same": np.mean(changed == originals[real])}


def _assert_rates(rates):
    assert abs(rates["selected"] - 0.15) < 0.01, rates
    assert abs(rates["mask"] - 0.8) < 0.02, rates
    assert abs(rates["random"] - 0.1) < 0.02 and abs(rates["same"] - 0.1) < 0.02, rates


@pytest.mark.parametrize("through_dataset", [False, True])
def test_bert_masking_rates_on_a_large_sample(through_dataset):
    ids = _rows()
    out = _mask(ids, through_dataset, rate=0.15, max_predictions=20)
    selected, rates = _check(ids, out, 20)
    _assert_rates(rates)
    # keras-hub's rule, eagerly as in tf.data: ceil(0.15 × 126) = 19, ceil(0.15 × 98) = 15
    expected = np.where(np.arange(len(ids)) % 2 == 0, 15, 19)
    expected[-1] = 0
    np.testing.assert_array_equal(selected.sum(1), expected)


def test_bert_masking_caps_the_predictions():
    ids = _rows(200)
    out = _mask(ids, False, rate=0.5, max_predictions=5)
    selected, _ = _check(ids, out, 5)
    assert selected[:-1].sum(1).tolist() == [5] * 199 and not selected[-1].any()


def _words(ids, continuation):
    """Reference segmentation, one piece at a time: lists of positions per row."""
    selectable = ~np.isin(ids, SPECIAL)
    rows = []
    for row, pieces in enumerate(ids):
        words = []
        for i, piece in enumerate(pieces):
            if not selectable[row, i]:
                continue
            if continuation[piece] and i > 0 and selectable[row, i - 1]:
                words[-1].append(i)
            else:
                words.append([i])
        rows.append(words)
    return rows


@pytest.mark.parametrize("through_dataset", [False, True])
def test_whole_word_masking_takes_words_whole_at_the_rate(through_dataset):
    ids = _rows(seed=1)
    continuation = np.zeros(VOCABULARY, bool)
    continuation[300:] = True  # ids 300+ are "##" pieces: words of 1.7 pieces on average
    out = _mask(ids, through_dataset, rate=0.15, max_predictions=20,
                continuation=continuation, seed=3)
    selected, rates = _check(ids, out, 20)
    _assert_rates(rates)
    words = _words(ids, continuation)
    assert max(len(w) for row in words for w in row) >= 5  # long words occur
    full = 0
    for row, row_words in enumerate(words):
        pieces = sum(len(w) for w in row_words)
        budget = min(20, max(1, round(0.15 * pieces))) if pieces else 0
        taken = selected[row].sum()
        assert taken <= budget, row
        full += taken == budget
        for word in row_words:
            chosen = selected[row, word]
            assert chosen.all() or not chosen.any(), (row, word)  # whole or not at all
            # BERT skips a word that does not fit and goes on: none left out would fit
            assert chosen.all() or len(word) > budget - taken, (row, word)
    assert full / len(ids) > 0.99


def test_whole_word_masking_of_rows_without_words():
    ids = np.array([[2, 3, 0, 0], [0, 0, 0, 0]], np.int32)
    out = pretraining.mask_tokens(tf.constant(ids), vocabulary_size=VOCABULARY, mask_id=MASK,
                                  unselectable_ids=SPECIAL, max_predictions=3,
                                  continuation=np.zeros(VOCABULARY, bool))
    assert out["mask_weights"].numpy().sum() == 0
    np.testing.assert_array_equal(out["token_ids"].numpy(), ids)


# Span corruption ------------------------------------------------------------------------
def _counts(length, density=0.15, mean=3.0):
    """T5's noise and span counts, written out."""
    noise = min(max(round(length * density), 1), length - 1)
    return noise, max(round(noise / mean), 1)


@pytest.mark.parametrize("inputs_length, raw, targets", [(128, 141, 29), (512, 568, 114)])
def test_span_corruption_lengths_are_t5s(inputs_length, raw, targets):
    assert pretraining.span_corruption_lengths(inputs_length) == (raw, targets)
    seed = tf.constant([0, 0], tf.int64)
    inputs, out = pretraining.span_corrupt(tf.range(raw), sentinel_ids=SENTINELS, end_id=1,
                                           seed=seed)
    assert (inputs.shape, out.shape) == ((inputs_length,), (targets,))
    longer, _ = pretraining.span_corrupt(tf.range(raw + 1), sentinel_ids=SENTINELS,
                                         end_id=1, seed=seed)
    assert longer.shape[0] > inputs_length  # the most raw tokens that fit


def test_span_corruption_reconstructs_the_text_and_has_t5s_statistics():
    noise, spans, first_spans = [], [], []
    masks = set()
    for seed in range(300):
        tokens = tf.constant(np.random.default_rng(seed).integers(3, 900, 141), tf.int32)
        tokens = tf.tensor_scatter_nd_update(tokens, [[40]], [1])  # a document separator
        inputs, targets = pretraining.span_corrupt(tokens, sentinel_ids=SENTINELS, end_id=1,
                                                   seed=tf.constant([7, seed], tf.int64))
        assert inputs.shape == (128,) and targets.shape == (29,)
        assert pretraining.uncorrupt(inputs, targets, SENTINELS, 1) == tokens.numpy().tolist()
        assert targets.numpy()[0] == SENTINELS[0]
        assert [t for t in inputs.numpy() if t in SENTINELS] == SENTINELS[:7]  # in order
        mask = pretraining.noise_mask(141, 0.15, 3.0, tf.constant([7, seed], tf.int64)).numpy()
        assert not mask[0] and mask[-1]  # kept text first, noise last
        starts = np.flatnonzero(mask & ~np.pad(mask[:-1], (1, 0)))
        ends = np.flatnonzero(mask & ~np.pad(mask[1:], (0, 1)))
        noise.append(mask.sum())
        spans += (ends - starts + 1).tolist()
        first_spans.append(ends[0] - starts[0] + 1)
        masks.add(mask.tobytes())
    assert set(noise) == {21} and abs(21 / 141 - 0.15) < 0.005  # round(141 × 0.15)
    assert len(spans) == 300 * 7 and np.mean(spans) == 3.0  # round(21 / 3) spans
    # T5 splits 21 noise tokens into 7 spans uniformly: P(a span of 1) = 6 / 20
    assert abs(np.mean(np.array(spans) == 1) - 0.3) < 0.04 and max(spans) >= 8
    assert len(masks) > 290  # the seed matters


def test_span_corruption_of_blocks_of_any_length_static_and_dynamic():
    rng = np.random.default_rng(5)
    blocks = [rng.integers(3, 900, n).astype("int32") for n in rng.integers(2, 600, 40)]
    dynamic = tf.data.Dataset.from_generator(
        lambda: iter(blocks), output_signature=tf.TensorSpec([None], tf.int32)).map(
        lambda block: pretraining.span_corrupt(block, sentinel_ids=SENTINELS, end_id=1,
                                               seed=tf.constant([3, 4], tf.int64)))
    assert dynamic.element_spec[0].shape.as_list() == [None]
    for block, (inputs, targets) in zip(blocks, dynamic):
        noise, spans = _counts(len(block))
        static = pretraining.span_corrupt(tf.constant(block), sentinel_ids=SENTINELS,
                                          end_id=1, seed=tf.constant([3, 4], tf.int64))
        assert static[0].shape == (len(block) - noise + spans + 1,)
        assert static[1].shape == (noise + spans + 1,)
        np.testing.assert_array_equal(static[0], inputs)  # same seed, same corruption
        np.testing.assert_array_equal(static[1], targets)
        assert pretraining.uncorrupt(inputs, targets, SENTINELS, 1) == block.tolist()


def test_span_corruption_refuses_too_few_sentinels():
    with pytest.raises(ValueError, match="7 noise spans but only 3 sentinel ids"):
        pretraining.span_corrupt(tf.range(141), sentinel_ids=[7, 8, 9], end_id=1,
                                 seed=tf.constant([0, 0], tf.int64))
    dynamic = tf.data.Dataset.from_generator(
        lambda: iter([np.arange(141, dtype="int32")]),
        output_signature=tf.TensorSpec([None], tf.int32)).map(
        lambda block: pretraining.span_corrupt(block, sentinel_ids=[7, 8, 9], end_id=1,
                                               seed=tf.constant([0, 0], tf.int64)))
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match="more noise spans than the 3 sentinel ids"):
        list(dynamic)


def test_uncorrupt_refuses_pairs_that_do_not_match():
    with pytest.raises(ValueError, match="sentinel 100 of the inputs is not in the targets"):
        pretraining.uncorrupt([5, 100, 1], [99, 6, 1], [100, 99], 1)


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
