"""The corruptions of pretraining objectives, in TensorFlow ops (for `tf.data` maps):
BERT's masking (`mask_tokens`) and T5's span corruption (`span_corrupt`).

Example:
>>> import numpy as np
>>> span_corruption_lengths(128)  # T5: 141 raw tokens → 128 inputs, 29 targets
(141, 29)
>>> tokens = tf.range(10, 151)
>>> inputs, targets = span_corrupt(tokens, sentinel_ids=range(1000, 1032), end_id=1,
...                                seed=tf.constant([1, 2], tf.int64))
>>> tuple(inputs.shape), tuple(targets.shape)
((128,), (29,))
>>> uncorrupt(inputs, targets, range(1000, 1032), 1) == list(range(10, 151))
True
"""

import keras_hub
import numpy as np
import tensorflow as tf


def mask_tokens(token_ids, *, vocabulary_size, mask_id, unselectable_ids, rate=0.15,
                max_predictions=20, mask_token_rate=0.8, random_token_rate=0.1,
                continuation=None, seed=None):
    """BERT's masked-LM corruption of int32 `[batch, length]` `token_ids`.

    `rate` of the selectable pieces (not in `unselectable_ids`: padding and special
    tokens) are selected, at most `max_predictions` per row; of those, `mask_token_rate`
    become `mask_id`, `random_token_rate` a random id, the rest stay. Without
    `continuation` this is keras-hub's `MaskedLMMaskGenerator`. With `continuation` (bool
    per id: a piece that continues a word, e.g. WordPiece `##x`) whole words are selected,
    by hand (keras-hub has no whole-word masking): words in a random order while the
    pieces taken stay within `round(rate × selectable pieces)` (at least 1, at most
    `max_predictions`); it stops at the first word that does not fit (BERT skips it and
    tries the next: the rate is slightly lower here).

    Returns `{"token_ids", "mask_positions", "mask_ids", "mask_weights"}`: the corrupted
    ids, the selected positions `[batch, max_predictions]` (ascending, padded with 0),
    the original ids there and float32 weights (1 real, 0 padding).
    """
    token_ids = tf.cast(token_ids, tf.int32)
    if continuation is None:
        generator = keras_hub.layers.MaskedLMMaskGenerator(
            vocabulary_size, mask_selection_rate=rate, mask_token_id=mask_id,
            mask_selection_length=max_predictions,
            unselectable_token_ids=list(unselectable_ids), mask_token_rate=mask_token_rate,
            random_token_rate=random_token_rate)
        out = generator(token_ids)
        return {"token_ids": tf.cast(out["token_ids"], tf.int32),
                "mask_positions": tf.cast(out["mask_positions"], tf.int32),
                "mask_ids": tf.cast(out["mask_ids"], tf.int32),
                "mask_weights": tf.cast(out["mask_weights"], tf.float32)}
    selected = _whole_words(token_ids, tf.constant(continuation, tf.bool), unselectable_ids,
                            rate, max_predictions, seed)
    return _replace(token_ids, selected, vocabulary_size, mask_id, max_predictions,
                    mask_token_rate, random_token_rate, seed)


def _whole_words(ids, continuation, unselectable_ids, rate, max_predictions, seed):
    """bool `[batch, length]`: the pieces of the words selected (see `mask_tokens`)."""
    batch, length = tf.shape(ids)[0], tf.shape(ids)[1]
    selectable = tf.logical_not(tf.reduce_any(
        ids[..., None] == tf.constant(list(unselectable_ids), tf.int32), -1))
    continues = tf.logical_and(tf.gather(continuation, ids), selectable)
    word = tf.cumsum(tf.cast(tf.logical_and(selectable, tf.logical_not(continues)),
                             tf.int32), axis=1)  # 1-based word of each piece; 0: none
    selectable = tf.logical_and(selectable, word > 0)
    count = tf.reduce_sum(tf.cast(selectable, tf.float32), 1)
    budget = tf.clip_by_value(tf.round(rate * count), 1.0, float(max_predictions))
    # One random priority per word; unselectable pieces sort last. Sorting by priority
    # (stably) keeps the pieces of a word together and in order.
    priority = tf.random.uniform(tf.shape(ids), seed=seed)
    priority = tf.where(selectable, tf.gather(priority, tf.maximum(word - 1, 0),
                                              batch_dims=1), 2.0)
    order = tf.argsort(priority, axis=1, stable=True)
    taken = tf.cumsum(tf.cast(tf.gather(selectable, order, batch_dims=1), tf.float32), 1)
    key = tf.range(batch)[:, None] * (length + 1) + tf.gather(word, order, batch_dims=1)
    word_end = tf.gather(tf.math.unsorted_segment_max(taken, key, batch * (length + 1)), key)
    keep = tf.logical_and(tf.gather(selectable, order, batch_dims=1),
                          word_end <= budget[:, None])
    return tf.gather(keep, tf.argsort(order, axis=1), batch_dims=1)


def _replace(ids, selected, vocabulary_size, mask_id, max_predictions, mask_token_rate,
             random_token_rate, seed):
    """The 80/10/10 replacement of the `selected` pieces, and the prediction targets."""
    draw = tf.random.uniform(tf.shape(ids), seed=seed)
    random_ids = tf.random.uniform(tf.shape(ids), 0, vocabulary_size, tf.int32, seed=seed)
    corrupted = tf.where(tf.logical_and(selected, draw < mask_token_rate), mask_id, ids)
    corrupted = tf.where(tf.logical_and(selected, tf.logical_and(
        draw >= mask_token_rate, draw < mask_token_rate + random_token_rate)),
        random_ids, corrupted)
    positions = tf.ragged.boolean_mask(
        tf.broadcast_to(tf.range(tf.shape(ids)[1]), tf.shape(ids)), selected)
    positions = positions.to_tensor(shape=[None, max_predictions])
    weights = tf.sequence_mask(tf.reduce_sum(tf.cast(selected, tf.int32), 1),
                               max_predictions, tf.float32)
    mask_ids = tf.gather(ids, positions, batch_dims=1) * tf.cast(weights, tf.int32)
    return {"token_ids": corrupted, "mask_positions": positions, "mask_ids": mask_ids,
            "mask_weights": weights}


# Span corruption (T5, t5/data/preprocessors.py) ---------------------------------------------
def _lengths(raw_length, noise_density, mean_noise_span_length):
    noise = int(round(raw_length * noise_density))
    spans = int(round(noise / mean_noise_span_length))
    return raw_length - noise + spans + 1, noise + spans + 1


def span_corruption_lengths(inputs_length, noise_density=0.15, mean_noise_span_length=3.0):
    """`(raw_length, targets_length)`: T5's `random_spans_helper`: the most raw tokens
    whose corrupted input (kept tokens + a sentinel per span + end) fits `inputs_length`,
    and the length of its target (a sentinel per span + the spans' tokens + end)."""
    raw = inputs_length - 1
    while _lengths(raw + 1, noise_density, mean_noise_span_length)[0] <= inputs_length:
        raw += 1
    return raw, _lengths(raw, noise_density, mean_noise_span_length)[1]


def _shape(length, noise_density, mean_noise_span_length):
    noise = min(max(int(round(length * noise_density)), 1), length - 1)
    return noise, max(int(round(noise / mean_noise_span_length)), 1)


def noise_mask(length, noise_density, mean_noise_span_length, seed):
    """T5's `random_spans_noise_mask`, with stateless random ops (`seed`: shape [2]):
    bool `[length]`, alternating kept / noise spans starting with a kept one; round(length
    × density) noise tokens (at least 1) in max(1, round(noise / mean)) spans."""
    noise, spans = _shape(length, noise_density, mean_noise_span_length)
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 2)

    def segment_lengths(items, seed):  # items split at random into `spans` non-empty parts
        first = tf.cast(tf.range(items - 1) < spans - 1, tf.int32)
        first = tf.gather(first, tf.argsort(tf.random.stateless_uniform([items - 1], seed)))
        segment = tf.cumsum(tf.pad(first, [[1, 0]]))
        return tf.math.segment_sum(tf.ones_like(segment), segment)

    interleaved = tf.reshape(tf.stack([segment_lengths(length - noise, seeds[1]),
                                       segment_lengths(noise, seeds[0])], 1), [2 * spans])
    starts = tf.cumsum(interleaved)[:-1]
    span_number = tf.cumsum(tf.math.unsorted_segment_sum(tf.ones_like(starts), starts, length))
    return tf.equal(span_number % 2, 1)


def span_corrupt(tokens, *, sentinel_ids, end_id, noise_density=0.15,
                 mean_noise_span_length=3.0, seed):
    """`(inputs, targets)` of one int32 `[raw_length]` block (static length): inputs are
    the kept tokens with the i-th noise span replaced by `sentinel_ids[i]`, then
    `end_id`; targets each span's sentinel followed by its tokens, then `end_id`. Their
    lengths are static (those of `span_corruption_lengths` for its raw length). A
    ValueError if a block has more spans than sentinel ids."""
    length = int(tokens.shape[0])
    noise, spans = _shape(length, noise_density, mean_noise_span_length)
    if spans > len(sentinel_ids):
        raise ValueError(f"a block of {length} tokens has {spans} noise spans but only "
                         f"{len(sentinel_ids)} sentinel ids are given")
    mask = noise_mask(length, noise_density, mean_noise_span_length, seed)
    sentinels = tf.constant(list(sentinel_ids), tf.int32)
    tokens = tf.cast(tokens, tf.int32)
    end = tf.constant([end_id], tf.int32)

    def replaced(mask):  # T5's noise_span_to_unique_sentinel
        previous = tf.pad(mask[:-1], [[1, 0]])
        first = tf.logical_and(mask, tf.logical_not(previous))
        sentinel = tf.gather(sentinels, tf.maximum(tf.cumsum(tf.cast(first, tf.int32)) - 1, 0))
        out = tf.boolean_mask(tf.where(first, sentinel, tokens),
                              tf.logical_not(tf.logical_and(mask, previous)))
        return tf.concat([out, end], 0)

    inputs = tf.ensure_shape(replaced(mask), [length - noise + spans + 1])
    targets = tf.ensure_shape(replaced(tf.logical_not(mask)), [noise + spans + 1])
    return inputs, targets


def uncorrupt(inputs, targets, sentinel_ids, end_id):
    """The original tokens (a list) of a `span_corrupt` pair: each sentinel of `inputs`
    replaced by the tokens after the same sentinel in `targets` (the final `end_id` of
    both dropped; the text may hold `end_id` too, as a document separator)."""
    sentinels = set(int(s) for s in sentinel_ids)
    inputs, targets = np.asarray(inputs).tolist(), np.asarray(targets).tolist()
    if inputs[-1:] != [end_id] or targets[-1:] != [end_id]:
        raise ValueError("inputs and targets must end with end_id")
    spans, current = {}, None
    for token in targets[:-1]:
        if token in sentinels:
            current = spans.setdefault(token, [])
        elif current is not None:
            current.append(token)
    out = []
    for token in inputs[:-1]:
        out += spans.get(token, []) if token in sentinels else [token]
    return out
