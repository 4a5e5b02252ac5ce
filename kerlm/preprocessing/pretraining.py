"""The corruptions of pretraining objectives, in TensorFlow ops (for `tf.data` maps):
BERT's masking (`mask_tokens`) and T5's span corruption (`span_corrupt`).

Example:
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

    Pieces in `unselectable_ids` (padding, special tokens) are never selected. Of the
    selected pieces, `mask_token_rate` become `mask_id`, `random_token_rate` an id drawn
    uniformly from the vocabulary, the rest stay as they are.

    Without `continuation` this is keras-hub's `MaskedLMMaskGenerator` (its TensorFlow
    path, eager too): ceil(`rate` × selectable pieces) per row, at most `max_predictions`;
    it takes no seed. With `continuation` (bool `[vocabulary_size]`, True for a piece that
    continues a word, WordPiece `##x`) whole words are masked, by hand (keras-hub has
    none): a word is a selectable piece that is not a continuation (or follows no
    selectable piece) and the continuation pieces after it; words are taken in a random
    order while the pieces taken stay within min(`max_predictions`, max(1, round(`rate` ×
    selectable pieces))), a word that would exceed that is skipped (BERT's
    `create_pretraining_data` rule). `seed` (an int) seeds those draws.

    Returns `{"token_ids", "mask_positions", "mask_ids", "mask_weights"}`: the corrupted
    ids, the selected positions int32 `[batch, max_predictions]` (ascending, padded with
    0), the original ids there (0 padding) and float32 weights (1 real, 0 padding).

    Example:
    >>> ids = tf.constant([[2, 10, 11, 12, 13, 3, 0, 0]])  # [CLS] a ##b c ##d [SEP] pad
    >>> continuation = np.arange(20) % 2 == 1  # odd ids continue a word
    >>> out = mask_tokens(ids, vocabulary_size=20, mask_id=4, unselectable_ids=[0, 2, 3],
    ...                   rate=0.5, max_predictions=3, continuation=continuation, seed=1)
    >>> out["mask_positions"].numpy().tolist() in ([[1, 2, 0]], [[3, 4, 0]])  # one word
    True
    >>> out["mask_weights"].numpy().tolist()
    [[1.0, 1.0, 0.0]]
    """
    token_ids = tf.cast(token_ids, tf.int32)
    shape = token_ids.shape[:1] + [max_predictions]
    if continuation is None:
        generator = keras_hub.layers.MaskedLMMaskGenerator(
            vocabulary_size, mask_selection_rate=rate, mask_token_id=mask_id,
            mask_selection_length=max_predictions,
            unselectable_token_ids=list(unselectable_ids), mask_token_rate=mask_token_rate,
            random_token_rate=random_token_rate,
            _allow_python_workflow=False)  # the same TF ops eagerly as in `tf.data`
        out = generator(token_ids)
        return {"token_ids": tf.ensure_shape(tf.cast(out["token_ids"], tf.int32),
                                             token_ids.shape),
                "mask_positions": tf.ensure_shape(tf.cast(out["mask_positions"], tf.int32),
                                                  shape),
                "mask_ids": tf.ensure_shape(tf.cast(out["mask_ids"], tf.int32), shape),
                "mask_weights": tf.ensure_shape(tf.cast(out["mask_weights"], tf.float32),
                                                shape)}
    seeds = [None] * 3 if seed is None else [seed, seed + 1, seed + 2]
    selected = _whole_words(token_ids, tf.constant(continuation, tf.bool), unselectable_ids,
                            rate, max_predictions, seeds[0])
    return _replace(token_ids, selected, vocabulary_size, mask_id, max_predictions,
                    mask_token_rate, random_token_rate, seeds[1:])


def _whole_words(ids, continuation, unselectable_ids, rate, max_predictions, seed):
    """bool `[batch, length]`: the pieces of the words selected (see `mask_tokens`)."""
    batch, length = tf.shape(ids)[0], tf.shape(ids)[1]
    selectable = tf.logical_not(tf.reduce_any(
        ids[..., None] == tf.constant(list(unselectable_ids), tf.int32), -1))
    previous = tf.pad(selectable[:, :-1], [[0, 0], [1, 0]])
    starts = tf.logical_and(selectable, tf.logical_not(
        tf.logical_and(tf.gather(continuation, ids), previous)))
    word = tf.cumsum(tf.cast(starts, tf.int32), axis=1)  # 1-based word of each piece
    key = tf.range(batch)[:, None] * (length + 1) + word * tf.cast(selectable, tf.int32)
    size = tf.gather(tf.math.unsorted_segment_sum(  # pieces in the word of each piece
        tf.cast(selectable, tf.int32), key, batch * (length + 1)), key)
    count = tf.reduce_sum(tf.cast(selectable, tf.int32), 1)
    budget = tf.cast(tf.round(rate * tf.cast(count, tf.float64)), tf.int32)
    budget = tf.minimum(tf.clip_by_value(budget, 1, max_predictions), count)
    priority = tf.gather(tf.random.uniform([batch, length + 1], seed=seed), word,
                         batch_dims=1)  # one random number per word

    # Greedy in priority order, skipping a word that does not fit: each step takes the
    # first word that fits in what is left. A word skipped never fits later (what is left
    # only shrinks), and each step takes a piece or none is left: max_predictions steps.
    def step(i, chosen, left):
        fits = selectable & ~chosen & (size <= left[:, None])
        best = tf.gather(word, tf.argmin(tf.where(fits, priority, 2.0), 1, tf.int32),
                         batch_dims=1)
        new = fits & (word == best[:, None])
        return i + 1, chosen | new, left - tf.reduce_sum(tf.cast(new, tf.int32), 1)

    _, chosen, _ = tf.while_loop(
        lambda i, chosen, left: (i < max_predictions) & tf.reduce_any(left > 0), step,
        (tf.constant(0), tf.zeros_like(selectable), budget))
    return chosen


def _replace(ids, selected, vocabulary_size, mask_id, max_predictions, mask_token_rate,
             random_token_rate, seeds):
    """The 80/10/10 replacement of the `selected` pieces, and the prediction targets."""
    draw = tf.random.uniform(tf.shape(ids), seed=seeds[0])
    random_ids = tf.random.uniform(tf.shape(ids), 0, vocabulary_size, tf.int32,
                                   seed=seeds[1])
    corrupted = tf.where(selected & (draw < mask_token_rate), mask_id, ids)
    corrupted = tf.where(selected & (draw >= mask_token_rate)
                         & (draw < mask_token_rate + random_token_rate), random_ids,
                         corrupted)
    positions = tf.ragged.boolean_mask(
        tf.broadcast_to(tf.range(tf.shape(ids)[1]), tf.shape(ids)), selected)
    positions = positions.to_tensor(shape=[None, max_predictions])
    weights = tf.sequence_mask(tf.reduce_sum(tf.cast(selected, tf.int32), 1),
                               max_predictions, tf.float32)
    mask_ids = tf.gather(ids, positions, batch_dims=1) * tf.cast(weights, tf.int32)
    return {"token_ids": corrupted, "mask_positions": positions, "mask_ids": mask_ids,
            "mask_weights": weights}


# Span corruption (T5, t5/data/preprocessors.py) ---------------------------------------------
def span_corruption_lengths(inputs_length, noise_density=0.15, mean_noise_span_length=3.0):
    """`(raw_length, targets_length)`, T5's `random_spans_helper`: the most raw tokens
    whose corrupted input (kept tokens + a sentinel per noise span + end) fits
    `inputs_length`, and the length of its target (a sentinel per span + the noise tokens
    + end).

    Example:
    >>> span_corruption_lengths(512)
    (568, 114)
    """
    def lengths(raw):
        noise = int(round(raw * noise_density))
        spans = int(round(noise / mean_noise_span_length))
        return raw - noise + spans + 1, noise + spans + 1

    raw = inputs_length - 1
    while lengths(raw + 1)[0] <= inputs_length:
        raw += 1
    targets_length = lengths(raw)[1]
    if noise_density == 0.5 and targets_length > inputs_length:  # T5's own adjustment
        raw, targets_length = raw - 1, targets_length - 1
    return raw, targets_length


def _counts(length, noise_density, mean_noise_span_length):
    """(noise tokens, noise spans) of a block of `length` tokens: Python ints for an int
    `length`, int32 tensors otherwise (in float64, so both agree with the helper)."""
    if isinstance(length, (int, np.integer)):
        length = max(int(length), 2)
        noise = min(max(int(round(length * noise_density)), 1), length - 1)
        return noise, max(int(round(noise / mean_noise_span_length)), 1)
    length = tf.maximum(tf.cast(length, tf.int32), 2)
    noise = tf.cast(tf.round(tf.cast(length, tf.float64) * noise_density), tf.int32)
    noise = tf.minimum(tf.maximum(noise, 1), length - 1)
    spans = tf.cast(tf.round(tf.cast(noise, tf.float64) / mean_noise_span_length), tf.int32)
    return noise, tf.maximum(spans, 1)


def noise_mask(length, noise_density, mean_noise_span_length, seed):
    """T5's `random_spans_noise_mask`, with stateless random ops (`seed`: shape [2]):
    bool `[length]` (an int or a scalar tensor), alternating kept / noise spans starting
    with a kept one and ending with noise; round(length × density) noise tokens (at least
    1) in max(1, round(noise / mean)) spans.

    Example:
    >>> mask = noise_mask(20, 0.15, 3.0, tf.constant([0, 1], tf.int64)).numpy()
    >>> int(mask.sum()), bool(mask[0]), bool(mask[-1])
    (3, False, True)
    """
    noise, spans = _counts(length, noise_density, mean_noise_span_length)
    padded = max(int(length), 2) if isinstance(length, (int, np.integer)) else \
        tf.maximum(tf.cast(length, tf.int32), 2)
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 2)

    def segment_lengths(items, seed):  # `items` split at random into `spans` non-empty parts
        first = tf.cast(tf.range(items - 1) < spans - 1, tf.int32)
        first = tf.gather(first, tf.argsort(tf.random.stateless_uniform([items - 1], seed)))
        segment = tf.cumsum(tf.pad(first, [[1, 0]]))
        return tf.math.segment_sum(tf.ones_like(segment), segment)

    interleaved = tf.reshape(tf.stack([segment_lengths(padded - noise, seeds[1]),
                                       segment_lengths(noise, seeds[0])], 1), [2 * spans])
    starts = tf.cumsum(interleaved)[:-1]
    span_number = tf.cumsum(tf.math.unsorted_segment_sum(tf.ones_like(starts), starts, padded))
    return tf.equal(span_number % 2, 1)[:length]


def span_corrupt(tokens, *, sentinel_ids, end_id, noise_density=0.15,
                 mean_noise_span_length=3.0, seed):
    """`(inputs, targets)` of one int32 `[raw_length]` block (T5's span corruption):
    inputs are the tokens with the i-th noise span replaced by `sentinel_ids[i]`, then
    `end_id`; targets each span's sentinel followed by its tokens, then `end_id`. `seed`:
    a shape-[2] stateless seed (see `noise_mask`).

    With a static `raw_length` (from `span_corruption_lengths`) the outputs have static
    shapes, `[inputs_length]` and `[targets_length]`; with a dynamic one, `[None]`. More
    spans than `sentinel_ids` is a ValueError when the block's length is static, an
    `InvalidArgumentError` from a `tf.debugging` assertion otherwise.
    """
    tokens = tf.convert_to_tensor(tokens, tf.int32)
    length = tokens.shape[0]
    sentinels = tf.constant(list(sentinel_ids), tf.int32)
    count = int(sentinels.shape[0])
    checks = []
    if length is not None:
        if length < 2:
            raise ValueError(f"a block of {length} tokens cannot be corrupted (at least 2)")
        noise, spans = _counts(length, noise_density, mean_noise_span_length)
        if spans > count:
            raise ValueError(f"a block of {length} tokens has {spans} noise spans but only "
                             f"{count} sentinel ids are given")
    else:
        noise, spans = _counts(tf.shape(tokens)[0], noise_density, mean_noise_span_length)
        checks.append(tf.debugging.assert_less_equal(
            spans, count, message=f"a block has more noise spans than the {count} "
                                  "sentinel ids given"))
    with tf.control_dependencies(checks):
        mask = noise_mask(length or tf.shape(tokens)[0], noise_density,
                          mean_noise_span_length, seed)
    end = tf.constant([end_id], tf.int32)

    def replaced(mask):  # T5's noise_span_to_unique_sentinel, then the end token
        previous = tf.pad(mask[:-1], [[1, 0]])
        first = mask & ~previous
        sentinel = tf.gather(sentinels, tf.maximum(tf.cumsum(tf.cast(first, tf.int32)) - 1, 0))
        kept = tf.boolean_mask(tf.where(first, sentinel, tokens), ~(mask & previous))
        return tf.concat([kept, end], 0)

    inputs, targets = replaced(mask), replaced(~mask)
    if length is not None:
        inputs = tf.ensure_shape(inputs, [length - noise + spans + 1])
        targets = tf.ensure_shape(targets, [noise + spans + 1])
    return inputs, targets


def uncorrupt(inputs, targets, sentinel_ids, end_id):
    """The original tokens (a list) of a `span_corrupt` pair, in numpy: each sentinel of
    `inputs` replaced by the tokens after the same sentinel in `targets` (the final
    `end_id` of both dropped; the text may hold `end_id` too, as a document separator).

    Example:
    >>> uncorrupt([5, 100, 8, 1], [100, 6, 7, 1], sentinel_ids=[100, 99], end_id=1)
    [5, 6, 7, 8]
    """
    sentinels = set(int(s) for s in sentinel_ids)
    inputs, targets = np.asarray(inputs).tolist(), np.asarray(targets).tolist()
    if inputs[-1:] != [end_id] or targets[-1:] != [end_id]:
        raise ValueError("inputs and targets must end with end_id")
    spans, current = {}, None
    for token in targets[:-1]:
        if token in sentinels:
            current = spans.setdefault(token, [])
        elif current is None:
            raise ValueError("targets must start with a sentinel id")
        else:
            current.append(token)
    out = []
    for token in inputs[:-1]:
        if token in sentinels and token not in spans:
            raise ValueError(f"sentinel {token} of the inputs is not in the targets")
        out += spans[token] if token in sentinels else [token]
    return out
