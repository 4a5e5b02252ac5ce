"""Plain text as `tf.data` streams, and sequence packing for language-model objectives.

A corpus is read one document at a time (`documents`: any number of sources, in order or
shuffled), tokenized in batches and flattened into one stream of token ids with a
separator after every document (`token_stream`); `blocks` cuts that stream into
full-length blocks. So no position of a training batch is padding, however short or long
the documents are: a short document shares its block with the next ones, a long one
spans several blocks. Attention is NOT kept inside a document: a block's tokens attend to
every token of the block, across the separator (GPT-2's and RoBERTa's FULL-SENTENCES
packing); the separator is what tells the model a new document starts. Nothing here holds
a corpus in memory.

Example:
>>> import tensorflow as tf
>>> from kerlm.tokenizers import WordPieceTokenizer
>>> tokenizer = WordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
...                                 "a", "b", "c"])
>>> docs = documents(lambda source: iter(["a b c a", "b"]), ["one file"])
>>> tokens = token_stream(docs, tokenizer, tokenizer.end_id)
>>> [b.tolist() for b in blocks(tokens, 3).as_numpy_iterator()]
[[5, 6, 7], [5, 3, 6]]
>>> [(x.tolist(), y.tolist(), w.tolist()) for x, y, w in
...  shifted_blocks(tokens, 4, start_id=3).as_numpy_iterator()]
[([3, 5, 6, 7], [5, 6, 7, 5], [1.0, 1.0, 1.0, 1.0]), ([5, 3, 6, 0], [3, 6, 3, 0], [1.0, 1.0, 1.0, 0.0])]
"""

import tensorflow as tf

DOCUMENT = tf.TensorSpec([], tf.string)


def documents(read, sources, shuffle=False, seed=0, shuffle_buffer=1000, cycle_length=4):
    """A `tf.data.Dataset` of document strings: `read(source)` yields the documents (str)
    of one source (a file path, an embedded split...), streamed from Python.

    In order: the sources one after the other. With `shuffle`: the sources in a new order
    every pass (seeded), `cycle_length` of them read in turn, then documents shuffled in
    a buffer of `shuffle_buffer`, so files larger than memory are shuffled by shard.
    """
    sources = list(sources)

    def from_source(source):
        return tf.data.Dataset.from_generator(
            lambda s: read(s.decode("utf-8") if isinstance(s, bytes) else s),
            args=(source,), output_signature=DOCUMENT)

    if not shuffle:
        def in_order():
            for source in sources:
                yield from read(source)
        return tf.data.Dataset.from_generator(in_order, output_signature=DOCUMENT)
    ds = tf.data.Dataset.from_tensor_slices(sources).shuffle(
        len(sources), seed=seed, reshuffle_each_iteration=True)
    ds = ds.interleave(from_source, cycle_length=min(cycle_length, len(sources)))
    return ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)


def token_stream(documents, tokenizer, separator_id, batch_size=32):
    """int32 scalars: every document's token ids followed by `separator_id`, in order.

    Documents are tokenized `batch_size` at a time (in `tf.data`, in parallel)."""
    def tokenize(texts):
        ids = tokenizer.tokenize(texts)
        separators = tf.fill([ids.nrows(), 1], tf.constant(separator_id, ids.dtype))
        return tf.concat([ids, separators], axis=1).flat_values

    return (documents.batch(batch_size)
            .map(tokenize, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            .unbatch())


def blocks(tokens, length, drop_remainder=True):
    """int32 `[length]` blocks of consecutive tokens of `tokens` (a `token_stream`).

    `drop_remainder=False` keeps the last, shorter block, padded with 0."""
    ds = tokens.batch(length, drop_remainder=drop_remainder)
    if drop_remainder:
        return ds
    return ds.map(lambda block: tf.pad(block, [[0, length - tf.shape(block)[0]]]))


def shifted_blocks(tokens, length, start_id):
    """`(inputs, targets, weights)` for next-token prediction over the whole stream:
    every token is predicted exactly once (the first from `start_id`), so the summed
    loss is the stream's log-likelihood. Inputs are tokens `[i, i + length)`, targets
    `[i + 1, i + 1 + length)`; the last block is padded with 0 and weight 0. For
    evaluation: it reads the stream twice, so the stream must be deterministic."""
    start = tf.data.Dataset.from_tensors(tf.constant(start_id, tf.int32))
    tokens = start.concatenate(tokens.map(lambda t: tf.cast(t, tf.int32)))

    def pad(x, y):
        n = tf.shape(y)[0]
        weights = tf.cast(tf.range(length) < n, tf.float32)
        return (tf.pad(x[:n], [[0, length - n]]), tf.pad(y, [[0, length - n]]), weights)

    return tf.data.Dataset.zip(tokens.batch(length), tokens.skip(1).batch(length)).map(pad)
