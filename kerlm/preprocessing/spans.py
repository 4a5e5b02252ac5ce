"""Extractive QA features in TensorFlow ops: question/context windows with a document
stride for any tokenizer, with byte offsets, and span decoding back to the exact context
text.

Everything here runs inside `tf.data`, eagerly and in exported SavedModels (tensorflow-text
ops only), so the served model takes raw question/context strings and returns the answer.
"""

import keras
import numpy as np
import tensorflow as tf

from kerlm.preprocessing.text import tokenizer_with

NO_OFFSET = -1  # token_start / token_end of positions outside the context
_NO_SPAN = -1e30  # the score of an invalid (start, end) pair


@keras.saving.register_keras_serializable(package="kerlm")
class QAPreprocessor(keras.layers.Layer):
    """`(question, context)` strings → windows `start question end context part end`
    (`[CLS] … [SEP] … [SEP]` with WordPiece, `<s> … </s> … </s>` with SentencePiece).

    The question is cut to `max_query_length` pieces; a context that does not fit is split
    into overlapping windows that start every `doc_stride` pieces, so one example gives one
    or more rows. Each row also carries `example_index` (its row in the input batch) and the
    byte offsets `token_start`/`token_end` of its context pieces in the context string
    (the tokenizer's `tokenize_with_offsets`; `NO_OFFSET` elsewhere, and for pieces that
    stand for no text), which `best_spans` turns back into answer text.

    Example:
    >>> from kerlm.tokenizers import WordPieceTokenizer
    >>> vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "who", "wrote", "it", "?",
    ...          "tolstoy", "war", "and", "peace", "."]
    >>> pre = QAPreprocessor(WordPieceTokenizer(vocab), sequence_length=10,
    ...                      max_query_length=4, doc_stride=2)
    >>> rows = pre(tf.constant(["Who wrote it?"]), tf.constant(["Tolstoy wrote War and Peace."]))
    >>> rows["example_index"].numpy().tolist()  # 6 context pieces, 3 fit: 3 windows
    [0, 0, 0]
    >>> rows["token_ids"].numpy()[1].tolist()
    [2, 5, 6, 7, 8, 3, 10, 11, 12, 3]
    >>> rows["token_start"].numpy()[1].tolist()  # "War and Peace" at bytes 14, 18, 22
    [-1, -1, -1, -1, -1, -1, 14, 18, 22, -1]

    With SentencePiece, offsets skip the whitespace tensorflow-text folds into a leading
    `"▁"`, so an answer never starts or ends on whitespace:
    >>> from kerlm.tokenizers import SentencePieceTokenizer
    >>> tokenizer = SentencePieceTokenizer.learn(["Tolstoy wrote War and Peace.",
    ...                                           "Who wrote War and Peace?"] * 30, 25)
    >>> pre = QAPreprocessor(tokenizer, sequence_length=12, max_query_length=4, doc_stride=4)
    >>> context = "Tolstoy  wrote War and Peace."
    >>> rows = pre(tf.constant(["Who wrote it?"]), tf.constant([context]))
    >>> rows["example_index"].numpy().tolist()  # 23 context pieces, 5 fit: 6 windows
    [0, 0, 0, 0, 0, 0]
    >>> rows["token_ids"].numpy()[0, [0, 5, 11]].tolist()  # <s> question </s> context </s>
    [2, 3, 3]
    >>> starts, ends = rows["token_start"].numpy()[-1], rows["token_end"].numpy()[-1]
    >>> [context.encode()[s:e].decode() for s, e in zip(starts, ends) if s >= 0]
    ['d', 'Peace', '.']
    >>> int(starts[7])  # "▁Peace" starts after the space at byte 22
    23
    """

    def __init__(self, tokenizer, sequence_length, max_query_length=64, doc_stride=128,
                 **kwargs):
        super().__init__(**kwargs)
        self.tokenizer = tokenizer_with(tokenizer, "pad_id", "start_id", "end_id")
        if max_query_length + 4 > sequence_length:
            raise ValueError(f"sequence_length={sequence_length} leaves no room for the "
                             f"context after a {max_query_length}-piece question")
        if doc_stride < 1:
            raise ValueError(f"doc_stride must be positive, got {doc_stride}")
        self.sequence_length = sequence_length
        self.max_query_length = max_query_length
        self.doc_stride = doc_stride
        self.built = True  # no weights

    @property
    def vocabulary_size(self):
        return self.tokenizer.vocabulary_size

    def call(self, question, context):
        """`{token_ids, padding_mask, segment_ids, token_start, token_end}` int32
        `[rows, sequence_length]` and `example_index` int32 `[rows]`."""
        tokenizer = self.tokenizer
        question_ids = tokenizer.tokenize_with_offsets(question)[0][:, :self.max_query_length]
        context_ids, context_start, context_end = tokenizer.tokenize_with_offsets(context)
        question_length = tf.cast(question_ids.row_lengths(), tf.int32)
        context_length = tf.cast(context_ids.row_lengths(), tf.int32)
        room = self.sequence_length - 3 - question_length
        windows = 1 + tf.maximum(0, -(-(context_length - room) // self.doc_stride))
        example = tf.repeat(tf.range(tf.shape(question)[0]), windows)
        offset = tf.ragged.range(windows).flat_values * self.doc_stride
        length = tf.minimum(tf.gather(room, example),
                            tf.gather(context_length, example) - offset)
        first = tf.cast(tf.gather(context_ids.row_starts(), example), tf.int32) + offset
        flat = tf.ragged.range(first, first + length)
        window_ids = tf.gather(context_ids.values, flat)
        rows = tf.shape(example)[0]

        def fill(value, like=None):
            if like is None:
                return tf.fill([rows, 1], value)
            return tf.ones_like(like, tf.int32) * value

        query = tf.gather(question_ids, example)
        start, end = fill(tokenizer.start_id), fill(tokenizer.end_id)
        token_ids = tf.concat([start, query, end, window_ids, end], axis=1)
        segment_ids = tf.concat([fill(0), fill(0, query), fill(0), fill(1, window_ids),
                                 fill(1)], axis=1)
        offsets = []
        for values in (context_start, context_end):
            window = tf.cast(tf.gather(values.values, flat), tf.int32)
            offsets.append(tf.concat([fill(NO_OFFSET), fill(NO_OFFSET, query),
                                      fill(NO_OFFSET), window, fill(NO_OFFSET)], axis=1))
        shape = [None, self.sequence_length]
        return {"token_ids": token_ids.to_tensor(tokenizer.pad_id, shape=shape),
                "padding_mask": tf.ones_like(token_ids, tf.int32).to_tensor(0, shape=shape),
                "segment_ids": segment_ids.to_tensor(0, shape=shape),
                "token_start": offsets[0].to_tensor(NO_OFFSET, shape=shape),
                "token_end": offsets[1].to_tensor(NO_OFFSET, shape=shape),
                "example_index": example}

    def get_config(self):
        config = super().get_config()
        config.update(tokenizer=keras.layers.serialize(self.tokenizer),
                      sequence_length=self.sequence_length,
                      max_query_length=self.max_query_length, doc_stride=self.doc_stride)
        return config


def best_spans(logits, rows, context, max_answer_length=30, allow_null=False,
               null_score_diff_threshold=0.0, n_best_size=1):
    """The answer of each example, and its `n_best_size` best spans, from span logits over
    its windows, in TensorFlow ops.

    `logits` `[rows, 2, length]` (start, end), `rows` the `QAPreprocessor` output for
    `context` `[batch]`. A span is valid when start ≤ end < start + `max_answer_length`,
    both inside the context; its score is its start + end logit. Every valid span of every
    window is a candidate (an exact search, not a top-k of starts × top-k of ends); an
    example's candidates are ranked by score across its windows, and a span found in two
    overlapping windows counts once, at its better score. With `allow_null` (SQuAD v2.0) the
    answer is empty when the best `[CLS]` score of the example's windows beats the best span
    by more than `null_score_diff_threshold`.

    Returns `{"answer": string, "start", "end": int32 character offsets into the context
    (end exclusive; -1 for an empty answer), "score": float32}` `[batch]`, and with
    `n_best_size` > 1 the same for the ranked spans, `[batch, n_best_size]`, as
    `n_best_answer`, `n_best_start`, `n_best_end`, `n_best_score` (padded with "", -1, 0).
    `score` is the span's probability among the valid spans of its window.

    Example (one window of pieces "War", "and", "Peace" at bytes 0, 4, 8):
    >>> rows = {"token_start": tf.constant([[-1, 0, 4, 8]]),
    ...         "token_end": tf.constant([[-1, 3, 7, 13]]), "example_index": tf.constant([0])}
    >>> logits = tf.constant([[[0., 3., 0., 2.], [0., 1., 0., 4.]]])  # start, end
    >>> out = best_spans(logits, rows, tf.constant(["War and Peace"]), n_best_size=2)
    >>> out["answer"].numpy().tolist(), out["n_best_answer"].numpy().tolist()
    ([b'War and Peace'], [[b'War and Peace', b'Peace']])
    >>> out["n_best_start"].numpy().tolist(), out["n_best_end"].numpy().tolist()
    ([[0, 8]], [[13, 13]])
    """
    start_logits, end_logits = logits[:, 0], logits[:, 1]
    length = tf.shape(start_logits)[1]
    valid = rows["token_start"] >= 0
    position = tf.range(length)
    band = (position[None, :] >= position[:, None]) & \
        (position[None, :] - position[:, None] < max_answer_length)
    allowed = band[None] & valid[:, :, None] & valid[:, None, :]
    scores = start_logits[:, :, None] + end_logits[:, None, :]
    flat = tf.reshape(tf.where(allowed, scores, _NO_SPAN), [-1, length * length])
    # Each window's best spans: an example's n best are among its windows' n best.
    top_score, top_index = tf.math.top_k(flat, tf.minimum(n_best_size, length * length))
    top_probability = tf.exp(top_score - tf.reduce_logsumexp(flat, axis=1, keepdims=True))
    top_start = tf.gather(rows["token_start"], top_index // length, batch_dims=1)
    top_end = tf.gather(rows["token_end"], top_index % length, batch_dims=1)

    example = rows["example_index"]
    batch = tf.shape(context)[0]

    def by_example(values, pad):  # [rows, k] → [batch, windows·k + n_best_size]
        grouped = tf.RaggedTensor.from_value_rowids(values, example, nrows=batch)
        dense = grouped.merge_dims(1, 2).to_tensor(pad)
        return tf.concat([dense, tf.fill([batch, n_best_size], pad)], axis=1)

    score = by_example(top_score, _NO_SPAN)
    byte_start, byte_end = by_example(top_start, NO_OFFSET), by_example(top_end, NO_OFFSET)
    probability = by_example(top_probability, 0.0)
    found = score > _NO_SPAN / 2
    # A span twice (overlapping windows): keep its first, best-ranked copy.
    order = tf.argsort(score, axis=1, direction="DESCENDING", stable=True)
    score, byte_start, byte_end, probability, found = [
        tf.gather(t, order, batch_dims=1) for t in (score, byte_start, byte_end, probability,
                                                    found)]
    candidates = tf.shape(score)[1]
    same = (byte_start[:, :, None] == byte_start[:, None, :]) & \
        (byte_end[:, :, None] == byte_end[:, None, :])
    earlier = tf.range(candidates)[:, None] < tf.range(candidates)[None, :]
    found &= ~tf.reduce_any(same & earlier[None] & found[:, :, None], axis=1)
    keep = tf.argsort(tf.cast(~found, tf.int32), axis=1, stable=True)[:, :n_best_size]
    byte_start, byte_end, probability, found = [
        tf.gather(t, keep, batch_dims=1) for t in (byte_start, byte_end, probability, found)]
    best = {"found": found, "byte_start": byte_start, "byte_end": byte_end,
            "probability": probability}
    if allow_null:
        null = tf.math.unsorted_segment_min(start_logits[:, 0] + end_logits[:, 0], example,
                                            batch)
        best_score = tf.gather(score, keep[:, :1], batch_dims=1)[:, 0]
        best["found"] = tf.concat(
            [found[:, :1] & ~(null - best_score > null_score_diff_threshold)[:, None],
             found[:, 1:]], axis=1)
    spans = _character_spans(context, best)
    out = {key: values[:, 0] for key, values in spans.items()}
    if n_best_size > 1:
        out.update({f"n_best_{key}": values for key, values in spans.items()})
    return out


def _character_spans(context, spans):
    """`{"answer", "start", "end", "score"}` `[batch, n]` from byte spans into `context`
    `[batch]`: offsets snapped outwards to whole characters (a piece inside a word with
    accents can end mid-character): the start's character, up to the end's."""
    found = spans["found"]
    _, char_bytes = tf.strings.unicode_decode_with_offsets(context, "UTF-8")
    char_bytes = tf.cast(char_bytes, tf.int32).to_tensor(tf.int32.max)[:, None, :]
    char_start = tf.reduce_sum(tf.cast(char_bytes <= spans["byte_start"][:, :, None],
                                       tf.int32), axis=2) - 1
    char_end = tf.reduce_sum(tf.cast(char_bytes < spans["byte_end"][:, :, None], tf.int32),
                             axis=2)
    char_start = tf.where(found, char_start, 0)
    char_end = tf.where(found, char_end, 0)
    contexts = tf.broadcast_to(context[:, None], tf.shape(char_start))
    answer = tf.strings.substr(contexts, char_start, char_end - char_start, unit="UTF8_CHAR")
    return {"answer": answer, "start": tf.where(found, char_start, -1),
            "end": tf.where(found, char_end, -1),
            "score": tf.where(found, spans["probability"], 0.0)}


def byte_span(context, answer_start, text):
    """`(byte_start, byte_end)` in UTF-8 of the answer at character `answer_start`.

    >>> byte_span("Café au lait", 5, "au")
    (6, 8)
    """
    start = len(context[:answer_start].encode("utf-8"))
    return start, start + len(text.encode("utf-8"))


def span_labels(rows, byte_spans):
    """`[rows, 2]` int32 (start, end) positions of each row's answer; `(0, 0)` (`[CLS]`)
    where the window does not hold the whole answer or the example has none.

    `rows` is numpy `QAPreprocessor` output; `byte_spans[i]` is example i's
    `(byte_start, byte_end)` or None. A piece belongs to the answer if it overlaps it.
    """
    starts, ends = rows["token_start"], rows["token_end"]
    labels = np.zeros((len(starts), 2), "int32")
    for row, example in enumerate(rows["example_index"]):
        span = byte_spans[example]
        if span is None:
            continue
        inside = (starts[row] >= 0) & (ends[row] > span[0]) & (starts[row] < span[1])
        positions = np.flatnonzero(inside)
        first_context = np.flatnonzero(starts[row] >= 0)
        if not len(positions) or not len(first_context):
            continue
        covered = starts[row][positions[0]] <= span[0] or positions[0] > first_context[0]
        covered &= ends[row][positions[-1]] >= span[1] or positions[-1] < first_context[-1]
        if covered:
            labels[row] = positions[0], positions[-1]
    return labels
