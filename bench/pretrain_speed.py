"""Pretraining throughput: kerlm's masked-LM and causal-LM training against keras-hub's
`BertMaskedLM` / `GPT2CausalLM` of identical dimensions, in the same run, and the padding
a batch carries with and without sequence packing.

    python bench/pretrain_speed.py [--steps=30] [--repeats=3] [--precision=mixed_bfloat16]

Throughput: both sides train on the same random full-length blocks (what packing gives:
every position is a real token), `fit` on a repeated in-memory batch, best of `--repeats`
alternating timings after a compiled warm-up. Padding: the embedded pretraining corpus
tokenized with a WordPiece vocabulary learned from it, one document per row (truncated to
the sequence length, padded) against packed blocks. Useful tokens/s = tokens/s × (1 −
padding fraction).
"""

import argparse
import json
import time

import keras
import keras_hub
import numpy as np
import tensorflow as tf

from kerlm import heads, models, tasks

DIMS = dict(num_layers=4, hidden_dim=256, num_heads=4, intermediate_dim=1024)
VOCABULARY, LENGTH, BATCH, PREDICTIONS = 8000, 128, 32, 20


def _mlm_batch(rng):
    ids = rng.integers(5, VOCABULARY, (BATCH, LENGTH)).astype("int32")
    positions = np.sort(rng.choice(np.arange(1, LENGTH - 1), (BATCH, PREDICTIONS)), -1)
    x = {"token_ids": ids, "padding_mask": np.ones_like(ids),
         "mask_positions": positions.astype("int32")}
    y = np.take_along_axis(ids, positions, 1)
    return x, y, np.ones_like(y, "float32")


def _clm_batch(rng):
    ids = rng.integers(5, VOCABULARY, (BATCH, LENGTH + 1)).astype("int32")
    x = {"token_ids": ids[:, :-1], "padding_mask": np.ones((BATCH, LENGTH), "int32")}
    return x, ids[:, 1:], np.ones((BATCH, LENGTH), "float32")


def _models(kind):
    """`{"kerlm": model, "keras_hub": model}` of the same dimensions, compiled."""
    if kind == "masked_lm":
        ours = heads.MaskedLM(models.EncoderBackbone(VOCABULARY, max_sequence_length=LENGTH,
                                                     **DIMS))
        theirs = keras_hub.models.BertMaskedLM(keras_hub.models.BertBackbone(
            vocabulary_size=VOCABULARY, max_sequence_length=LENGTH, **DIMS),
            preprocessor=None)
    else:
        ours = heads.CausalLM(models.DecoderBackbone(VOCABULARY, max_sequence_length=LENGTH,
                                                     **DIMS))
        theirs = keras_hub.models.GPT2CausalLM(keras_hub.models.GPT2Backbone(
            vocabulary_size=VOCABULARY, max_sequence_length=LENGTH, **DIMS),
            preprocessor=None)
    for model in (ours, theirs):
        model.compile(optimizer=keras.optimizers.AdamW(1e-4),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      weighted_metrics=[])
    return {"kerlm": ours, "keras_hub": theirs}


def _their_inputs(name, kind, x):
    if name == "keras_hub" and kind == "masked_lm":
        return {**x, "segment_ids": np.zeros_like(x["token_ids"])}
    return x


def throughput(kind, steps, repeats):
    rng = np.random.default_rng(0)
    x, y, w = (_mlm_batch if kind == "masked_lm" else _clm_batch)(rng)
    built = _models(kind)
    data = {name: tf.data.Dataset.from_tensors((_their_inputs(name, kind, x), y, w)).repeat()
            for name in built}
    for name, model in built.items():  # warm-up: trace and compile
        model.fit(data[name], steps_per_epoch=3, epochs=1, verbose=0)
    best = {name: 0.0 for name in built}
    for _ in range(repeats):
        for name, model in built.items():
            start = time.perf_counter()
            model.fit(data[name], steps_per_epoch=steps, epochs=1, verbose=0)
            best[name] = max(best[name], steps * BATCH * LENGTH /
                             (time.perf_counter() - start))
    return best


def padding_fractions(length=LENGTH, documents=3000):
    """Padding fraction of one-document-per-row batches vs the task's packed batches, on
    the embedded pretraining corpus (its first `documents` training documents), and the
    fraction of tokens the packed stream drops (the last block's remainder)."""
    config = tasks.default_config("masked_lm", {"model.vocabulary_size": 8000,
                                                "masked_lm.sequence_length": length})
    task = tasks.get_task(config)
    corpus = task.read("train")
    task.tokenizer = task.learn_tokenizer(corpus.sample(2_000_000))
    texts = []
    for text in corpus.documents():
        texts.append(text)
        if len(texts) == documents:
            break
    lengths = task.tokenizer.tokenize(tf.constant(texts)).row_lengths().numpy() + 2
    rows = np.minimum(lengths, length)
    unpacked = 1.0 - rows.sum() / (len(rows) * length)
    real = total = 0
    for x, *_ in task.dataset(corpus[:documents], training=False):
        mask = x["padding_mask"].numpy()
        real, total = real + mask.sum(), total + mask.size
    stream = lengths.sum() - len(lengths)  # the pieces plus one separator per document
    used = real - 2 * total // length  # less each block's [CLS] and [SEP]
    return {"one_document_per_row": float(unpacked), "packed": float(1.0 - real / total),
            "packed_dropped": float(1.0 - used / stream), "documents": len(texts),
            "median_tokens": float(np.median(lengths))}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--precision", default="float32")
    args = parser.parse_args()
    keras.mixed_precision.set_global_policy(args.precision)
    padding = padding_fractions()
    results = {"padding": padding}
    print(f"padding fraction, seq {LENGTH}: one document per row "
          f"{padding['one_document_per_row']:.3f}, packed {padding['packed']:.3f} "
          f"(tokens dropped at the stream's end {padding['packed_dropped']:.4f}) "
          f"(median document {padding['median_tokens']:.0f} tokens)")
    for kind in ("masked_lm", "causal_lm"):
        best = throughput(kind, args.steps, args.repeats)
        ratio = best["kerlm"] / best["keras_hub"]
        useful = best["kerlm"]  # packed: every token is useful
        unpacked = best["keras_hub"] * (1 - padding["one_document_per_row"])
        results[kind] = {**best, "ratio": ratio, "useful_packed": useful,
                         "useful_unpacked_keras_hub": unpacked}
        print(f"{kind:10s} kerlm {best['kerlm']:8.0f} tok/s  keras-hub "
              f"{best['keras_hub']:8.0f} tok/s  ratio {ratio:.2f}  useful tokens/s: "
              f"kerlm packed {useful:.0f}, keras-hub one document per row {unpacked:.0f}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
