"""Length-bucketed batches of token-id lists, for any task that pads per batch.

`sequence_ids` tokenizes texts once into per-example id lists; `bucketed_batches` groups
examples of similar length (little padding, every example once per epoch); `pad_batch`
right-pads a batch to a multiple of 8; `batch_features` makes teacher-forcing batches
(encoder ids, decoder inputs `<s> y[:-1]`, labels `y`) for a seq2seq model. numpy only,
except `sequence_ids`, which runs a preprocessor.
"""

import numpy as np

START_ID = 2  # `<s>`, the decoder start token of kerlm's SentencePiece vocabularies


def sequence_ids(preprocessor, texts, target=False, chunk_size=4096):
    """Per text, the list of its token ids (special tokens included, padding cut off).

    `preprocessor` is a seq2seq preprocessor (`kerlm.preprocessing.Seq2SeqPreprocessor`):
    sources are `preprocessor(texts)`'s `encoder_token_ids` (`tokens </s>`), targets
    (`target=True`) the labels of `preprocessor.targets(texts)` (`tokens </s>`), both
    truncated by the preprocessor. Texts are tokenized `chunk_size` at a time.
    """
    import tensorflow as tf  # noqa: PLC0415 (heavy: kerlm.data imports no TensorFlow)

    out = []
    for i in range(0, len(texts), chunk_size):
        chunk = tf.constant(texts[i:i + chunk_size])
        if target:
            features, labels = preprocessor.targets(chunk)
            ids, mask = labels.numpy(), features["decoder_padding_mask"].numpy()
        else:
            features = preprocessor(chunk)
            ids, mask = (features["encoder_token_ids"].numpy(),
                         features["encoder_padding_mask"].numpy())
        out += [row[:n] for row, n in zip(ids, mask.sum(axis=1))]
    return out


def bucketed_batches(lengths, batch_size, rng, pool_batches=64):
    """Index batches of similar length: shuffle, sort pools of `pool_batches` batches by
    length, cut them into batches, shuffle the batches. Padding per batch stays small and
    there are exactly `ceil(len(lengths) / batch_size)` batches (pools are whole batches).

    Example:
    >>> batches = bucketed_batches([5, 1, 9, 2, 8, 3], 2, np.random.default_rng(0))
    >>> sorted(sorted(int(i) for i in b) for b in batches)  # neighbours in length together
    [[0, 5], [1, 3], [2, 4]]
    """
    order = rng.permutation(len(lengths))
    lengths = np.asarray(lengths)
    pool = batch_size * pool_batches
    batches = []
    for start in range(0, len(order), pool):
        chunk = order[start:start + pool]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches += [chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def pad_batch(sequences, indices, multiple=8):
    """`[len(indices), longest]` int32 array of `sequences[i]`, right-padded with 0 to a
    multiple of `multiple` (fewer distinct shapes for the kernels to specialize on).

    Example:
    >>> pad_batch([[5, 6, 7], [8], [9, 9]], [0, 1], multiple=4).tolist()
    [[5, 6, 7, 0], [8, 0, 0, 0]]
    """
    rows = [sequences[i] for i in indices]
    longest = max(len(r) for r in rows)
    out = np.zeros((len(rows), -(-longest // multiple) * multiple), "int32")
    for row, ids in zip(out, rows):
        row[:len(ids)] = ids
    return out


def batch_features(source_ids, label_ids, indices, multiples=(8, 8), start_token_id=START_ID):
    """`(features, labels, label_mask)` for teacher forcing on examples `indices`: encoder
    ids, decoder inputs `<s> y[:-1]`, labels `y` (ending in `</s>`); each side padded to a
    multiple of `multiples` (a multiple ≥ every length gives a fixed width).

    Example:
    >>> x, labels, mask = batch_features([[7, 3]], [[5, 6, 3]], [0], multiples=(4, 4))
    >>> x["encoder_token_ids"].tolist(), x["decoder_token_ids"].tolist(), labels.tolist()
    ([[7, 3, 0, 0]], [[2, 5, 6, 0]], [[5, 6, 3, 0]])
    """
    encoder_ids = pad_batch(source_ids, indices, multiples[0])
    labels = pad_batch(label_ids, indices, multiples[1])
    label_mask = (labels != 0).astype("int32")
    decoder_ids = np.concatenate(
        [np.full((len(indices), 1), start_token_id, "int32"), labels[:, :-1]], axis=1)
    decoder_ids *= label_mask  # the end token is never a decoder input
    return ({"encoder_token_ids": encoder_ids,
             "encoder_padding_mask": (encoder_ids != 0).astype("int32"),
             "decoder_token_ids": decoder_ids, "decoder_padding_mask": label_mask},
            labels, label_mask)
