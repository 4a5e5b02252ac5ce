"""Text with marker strings (`[MASK]`, `<extra_id_0>`) → token ids with the markers' ids.

What a fill-mask or span-filling SavedModel needs: users mark the gaps in plain text, and
the tokenizer (which knows nothing of the markers) tokenizes the text between them.

Example:
>>> import tensorflow as tf
>>> from kerlm.tokenizers import WordPieceTokenizer
>>> tokenizer = WordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b"])
>>> marked_ids(tokenizer, tf.constant(["a [MASK] b", "b"]), "[MASK]", [4]).to_list()
[[5, 4, 6], [6]]
>>> marked_ids(tokenizer, tf.constant(["<x1>a<x2>"]), r"<x\\d>", [10, 11], regex=True).to_list()
[[10, 5, 11]]
"""

import tensorflow as tf

_SEPARATOR = "\x1f"  # ASCII unit separator: what a regex marker is rewritten to


def marked_ids(tokenizer, texts, marker, marker_ids, regex=False):
    """int32 ragged `[batch, None]` ids of `texts`: the tokens of the text between
    markers, the i-th marker of a text replaced by `marker_ids[i]` (the last id again for
    markers beyond them). `regex`: `marker` is a regular expression (RE2)."""
    if regex:
        texts, marker = tf.strings.regex_replace(texts, marker, _SEPARATOR), _SEPARATOR
    parts = tf.strings.split(texts, sep=marker)  # [batch, (parts)]
    pieces = tf.cast(tokenizer.tokenize(parts.flat_values), tf.int32)  # [parts, (tokens)]
    lengths = parts.row_lengths()
    position = tf.ragged.range(lengths).flat_values  # of each part in its text
    not_last = position < tf.repeat(lengths - 1, lengths)
    ids = tf.gather(tf.constant(marker_ids, tf.int32),
                    tf.minimum(position, len(marker_ids) - 1))
    after = tf.RaggedTensor.from_row_lengths(tf.boolean_mask(ids, not_last),
                                             tf.cast(not_last, tf.int64))
    joined = tf.concat([pieces, after], axis=1)
    return tf.RaggedTensor.from_row_splits(joined, parts.row_splits).merge_dims(1, 2)
