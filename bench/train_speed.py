"""Training speed of kerlm's `encoder_small` classifier against keras-hub's BertBackbone.

Both models have identical dimensions (4 layers, 256 d, 4 heads, ff 1024, the same vocabulary,
max_sequence_length 512, 2 segments => the same parameter count) and the same head
(backbone → pooled_output → Dropout(0.1) → Dense(2, float32)); they train with the same
AdamW, loss, precision and data (a finite, pre-built `tf.data` dataset of fixed shape
`[batch, seq_len]`), through `model.fit`.

Scenarios:
  full    every position is a real token (padding_mask all ones);
  padded  real lengths uniform in [16, seq_len], the rest padding (same fixed shape: no
          trimming, so both models compute over all positions; "real tok/s" counts only
          the real tokens).

Timing: each model first runs a warm-up `fit` (tracing + `--warmup` steps); then `--repeats`
timed `fit` calls of `--steps / --repeats` steps (+ 1 untimed first step), alternating
between the two models so that load from other processes on this 2-core machine hits both
alike; a callback reads the loss after each step (which waits for the step to finish). The
table reports the fastest repeat's mean step ("tok/s", "MFU") and the median step over all
repeats ("median all"); compare the ratios, not absolute figures, across runs.

MFU = training FLOPs / time / peak, with FLOPs per token ≈ 6·N + 12·L·T·d (N = parameters
of the transformer blocks, i.e. excluding embeddings and the per-sequence pooler/head;
L layers, T sequence length, d hidden size), counted over all positions processed; peak
223 GFLOP/s fp32 and 410 GFLOP/s bf16 (measured matmul peaks of this 2-core machine; see
/work/shared/FIELD_NOTES.md).

    python bench/train_speed.py [--steps 30] [--precision float32|mixed_bfloat16|both]
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

PEAK_FLOPS = {"float32": 223e9, "mixed_bfloat16": 410e9}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=30,
                        help="Timed steps per model and scenario, split over --repeats fits.")
    parser.add_argument("--warmup", type=int, default=3,
                        help="Untimed steps after tracing (1 for the second scenario).")
    parser.add_argument("--repeats", type=int, default=5,
                        help="Timed fit calls per model, alternating between the models; the "
                             "fastest is reported (and the median step over all of them).")
    parser.add_argument("--precision", default="both",
                        choices=["float32", "mixed_bfloat16", "both"])
    parser.add_argument("--scenario", default="both", choices=["full", "padded", "both"])
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--seq_len", type=int, default=128)
    parser.add_argument("--vocabulary_size", type=int, default=8192)
    parser.add_argument("--models", default="kerlm,keras_hub",
                        help="Comma-separated subset of kerlm,keras_hub.")
    parser.add_argument("--jit_compile", action="store_true",
                        help="Compile the train step with XLA (off by default: slower on CPU).")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


DIMS = dict(num_layers=4, hidden_dim=256, num_heads=4, intermediate_dim=1024,
            max_sequence_length=512)


def build_kerlm(vocabulary_size):
    from kerlm import heads, models
    backbone = models.Backbone.from_preset("encoder_small", vocabulary_size=vocabulary_size,
                                           dropout=0.1, num_segments=2)
    for key, value in DIMS.items():
        assert getattr(backbone, key) == value, (key, getattr(backbone, key), value)
    return backbone, heads.Classifier(backbone, 2, pooling="first", dropout=0.1)


def build_keras_hub(vocabulary_size):
    import keras
    import keras_hub
    backbone = keras_hub.models.BertBackbone(vocabulary_size=vocabulary_size, num_segments=2,
                                             dropout=0.1, **DIMS)
    inputs = backbone.input
    x = backbone(inputs)["pooled_output"]
    x = keras.layers.Dropout(0.1, name="classifier_dropout")(x)
    logits = keras.layers.Dense(2, dtype="float32", name="logits")(x)
    return backbone, keras.Model(inputs, logits, name="keras_hub_bert_classifier")


BUILDERS = {"kerlm": build_kerlm, "keras_hub": build_keras_hub}


def block_params(backbone):
    """Parameters of the transformer blocks (per-token weights, embeddings excluded)."""
    return sum(int(np.prod(w.shape)) for w in backbone.weights
               if "transformer_layer_" in w.path)


def embedding_params(backbone):
    return sum(int(np.prod(w.shape)) for w in backbone.weights if "embedding" in w.path
               and "norm" not in w.path)


def make_data(scenario, num_batches, batch_size, seq_len, vocabulary_size, seed):
    """Numpy features and labels for `num_batches` batches, and the real-token count."""
    rng = np.random.default_rng(seed)
    n = num_batches * batch_size
    token_ids = rng.integers(4, vocabulary_size, size=(n, seq_len), dtype=np.int32)
    if scenario == "full":
        padding_mask = np.ones((n, seq_len), np.int32)
    else:
        lengths = rng.integers(16, seq_len + 1, size=(n, 1))
        padding_mask = (np.arange(seq_len)[None, :] < lengths).astype(np.int32)
    token_ids *= padding_mask
    features = {"token_ids": token_ids, "segment_ids": np.zeros_like(token_ids),
                "padding_mask": padding_mask}
    labels = rng.integers(0, 2, size=(n,), dtype=np.int32)
    return features, labels


def make_dataset(features, labels, first, count, batch_size):
    import tensorflow as tf
    lo, hi = first * batch_size, (first + count) * batch_size
    ds = tf.data.Dataset.from_tensor_slices(({k: v[lo:hi] for k, v in features.items()},
                                             labels[lo:hi]))
    return ds.batch(batch_size, drop_remainder=True).prefetch(2)


def make_timer():
    import keras

    class StepTimer(keras.callbacks.Callback):
        """Records the time at the end of every step (after reading the loss: a sync)."""

        def __init__(self):
            super().__init__()
            self.times = []

        def on_train_batch_end(self, batch, logs=None):
            if logs and "loss" in logs:
                float(logs["loss"])
            self.times.append(time.perf_counter())

    return StepTimer()


def run_precision(precision, args, scenarios, model_names):
    import keras
    keras.backend.clear_session()
    keras.mixed_precision.set_global_policy(precision)
    keras.utils.set_random_seed(args.seed)
    built = {}
    for name in model_names:
        backbone, model = BUILDERS[name](args.vocabulary_size)
        model.compile(optimizer=keras.optimizers.AdamW(learning_rate=1e-4, weight_decay=0.01),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      jit_compile=args.jit_compile)
        built[name] = (backbone, model)
        print(f"[{precision}] {name}: backbone {backbone.count_params():,} params "
              f"(transformer blocks {block_params(backbone):,}, embeddings "
              f"{embedding_params(backbone):,}); classifier {model.count_params():,}",
              flush=True)
    counts = {name: b.count_params() for name, (b, _) in built.items()}
    if len(set(counts.values())) > 1:
        print(f"WARNING: parameter counts differ: {counts}", flush=True)

    reference = built[model_names[0]][0]
    n_block = block_params(reference)
    flops_per_token = 6 * n_block + 12 * DIMS["num_layers"] * args.seq_len * DIMS["hidden_dim"]
    rows = []
    tokens_per_step = args.batch_size * args.seq_len
    per_repeat = -(-args.steps // args.repeats)
    for index, scenario in enumerate(scenarios):
        # same shapes in every scenario: the traced step is reused, so later scenarios only
        # need one warm-up step
        warmup = args.warmup if index == 0 else 1
        num_batches = warmup + args.repeats * (per_repeat + 1)
        features, labels = make_data(scenario, num_batches, args.batch_size, args.seq_len,
                                     args.vocabulary_size, args.seed)
        real_fraction = float(features["padding_mask"].mean())
        warm_ds = make_dataset(features, labels, 0, warmup, args.batch_size)
        for name in model_names:
            start = time.perf_counter()
            built[name][1].fit(warm_ds, epochs=1, verbose=0, shuffle=False)
            print(f"[{precision}/{scenario}] {name}: warm-up fit ({warmup} steps"
                  f"{' + tracing' if index == 0 else ''}) {time.perf_counter() - start:.1f} s",
                  flush=True)
        results = {name: [] for name in model_names}
        for repeat in range(args.repeats):
            # a different slice of the data per repeat; the models alternate so that load
            # from other processes hits both alike
            timed_ds = make_dataset(features, labels, warmup + repeat * (per_repeat + 1),
                                    per_repeat + 1, args.batch_size)
            for name in model_names:
                timer = make_timer()
                built[name][1].fit(timed_ds, epochs=1, verbose=0, shuffle=False,
                                   callbacks=[timer])
                # the first step of each fit (iterator start-up) is not timed
                step_ms = np.diff(timer.times) * 1e3
                results[name].append(step_ms)
                print(f"[{precision}/{scenario}] {name} repeat {repeat}: "
                      f"{step_ms.mean():.0f} ms/step mean, {np.median(step_ms):.0f} median",
                      flush=True)
        for name in model_names:
            best = min(results[name], key=np.mean)
            every = np.concatenate(results[name])
            tok_s = tokens_per_step / (best.mean() / 1e3)
            rows.append(dict(
                model=name, precision=precision, scenario=scenario, batch_size=args.batch_size,
                seq_len=args.seq_len, params=counts[name], timed_steps=int(every.size),
                step_ms=round(float(best.mean()), 1),
                step_ms_median_all=round(float(np.median(every)), 1),
                tokens_per_sec=round(tok_s, 1),
                tokens_per_sec_median_all=round(tokens_per_step / (np.median(every) / 1e3), 1),
                real_tokens_per_sec=round(tok_s * real_fraction, 1),
                mfu=round(flops_per_token * tok_s / PEAK_FLOPS[precision], 4)))
    built.clear()
    keras.mixed_precision.set_global_policy("float32")
    keras.backend.clear_session()
    return rows, dict(block_params=n_block, flops_per_token=flops_per_token,
                      backbone_params=counts)


def add_ratios(rows):
    by_key = {(r["precision"], r["scenario"], r["model"]): r for r in rows}
    for r in rows:
        other = by_key.get((r["precision"], r["scenario"], "keras_hub"))
        r["ratio_vs_keras_hub"] = round(r["tokens_per_sec"] / other["tokens_per_sec"], 3) \
            if other else None
        r["ratio_vs_keras_hub_median_all"] = round(
            r["tokens_per_sec_median_all"] / other["tokens_per_sec_median_all"], 3) \
            if other else None


def print_table(rows):
    header = ["model", "precision", "scenario", "ms/step", "tok/s", "real tok/s", "kerlm/hub",
              "MFU", "median all", "kerlm/hub"]
    lines = [header]
    for r in rows:
        ratio, ratio_all = r["ratio_vs_keras_hub"], r["ratio_vs_keras_hub_median_all"]
        lines.append([r["model"], r["precision"], r["scenario"], f"{r['step_ms']:.0f}",
                      f"{r['tokens_per_sec']:,.0f}", f"{r['real_tokens_per_sec']:,.0f}",
                      "" if ratio is None else f"{ratio:.2f}", f"{r['mfu'] * 100:.1f} %",
                      f"{r['tokens_per_sec_median_all']:,.0f}",
                      "" if ratio_all is None else f"{ratio_all:.2f}"])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for i, line in enumerate(lines):
        print("  ".join(c.ljust(w) if j < 3 else c.rjust(w)
                        for j, (c, w) in enumerate(zip(line, widths))))
        if i == 0:
            print("  ".join("-" * w for w in widths))


def main(argv=None):
    args = parse_args(argv)
    precisions = ["float32", "mixed_bfloat16"] if args.precision == "both" else [args.precision]
    scenarios = ["full", "padded"] if args.scenario == "both" else [args.scenario]
    model_names = [m.strip() for m in args.models.split(",") if m.strip()]
    for m in model_names:
        if m not in BUILDERS:
            sys.exit(f"unknown model {m!r}; choose from {sorted(BUILDERS)}")
    import tensorflow as tf
    import keras
    import keras_hub
    import kerlm
    print(f"kerlm from {os.path.dirname(kerlm.__file__)}; keras-hub {keras_hub.__version__}")
    print(f"TensorFlow {tf.__version__}, Keras {keras.__version__}, {os.cpu_count()} CPUs; "
          f"batch {args.batch_size} × seq {args.seq_len}, vocab {args.vocabulary_size}, "
          f"{args.warmup} warm-up + {args.steps} timed steps × {args.repeats} repeat(s), "
          f"jit_compile={args.jit_compile}", flush=True)
    rows, meta = [], {}
    start = time.perf_counter()
    for precision in precisions:
        precision_rows, meta[precision] = run_precision(precision, args, scenarios, model_names)
        rows += precision_rows
    add_ratios(rows)
    print()
    print_table(rows)
    flops = meta[precisions[0]]["flops_per_token"]
    print(f"\nFLOPs/token (6·N_blocks + 12·L·T·d) = {flops:,}; "
          f"peaks: fp32 {PEAK_FLOPS['float32'] / 1e9:.0f}, bf16 "
          f"{PEAK_FLOPS['mixed_bfloat16'] / 1e9:.0f} GFLOP/s; total "
          f"{time.perf_counter() - start:.0f} s")
    print(json.dumps({"benchmark": "train_speed", "config": vars(args), "meta": meta,
                      "results": rows}))


if __name__ == "__main__":
    main()
