"""Training speed of kerlm against keras-hub for BERT-, GPT-2- and BART-like models.

Families (identical dimensions on both sides: 4 layers (each side for BART), 256 d, 4 heads,
ff 1024, vocabulary 8192, max_sequence_length 512 => the same parameter counts, which the
script checks):
  bert  kerlm `EncoderBackbone` (preset `encoder_small`, 2 segments) + `heads.Classifier(
        pooling="first")` vs keras_hub `BertBackbone` + the same head (pooled_output →
        Dropout(0.1) → Dense(2, float32)); sequence classification loss.
  gpt   kerlm `DecoderBackbone` + `heads.CausalLM` vs keras_hub `GPT2Backbone` +
        `GPT2CausalLM(preprocessor=None)`; both tie the logits to the token embedding;
        causal LM loss (x = ids[:, :T], y = ids[:, 1:], sample_weight = padding mask).
  bart  kerlm `EncoderDecoderBackbone` + `heads.Seq2SeqLM` (tied LM logits on the decoder
        output) vs keras_hub `BartBackbone` +
        `BartSeq2SeqLM(preprocessor=None)`; encoder and decoder sequences both `--seq_len`;
        LM loss on the decoder.
Both models of a family train through `model.fit` (no XLA unless `--jit_compile`) with the
same AdamW (lr 1e-4, wd 0.01), from-logits sparse cross-entropy, no metrics, precision and
data (a finite, pre-built `tf.data` dataset of fixed shape `[batch, seq_len]`).

Scenarios: `full`: every position is a real token; `padded`: real lengths uniform in
[16, seq_len], the rest padding (same shapes, so the same work; "real tok/s" counts only
real tokens).

Timing: per family and precision, both models are built, then each runs a warm-up `fit`
(tracing + `--warmup` steps; its time is printed); then `--repeats` timed `fit` calls of
`--steps / --repeats` steps (+ 1 untimed first step each), alternating between the models
so that load from other processes on this 2-core machine hits both alike. A callback reads
the loss after each step (a sync). "tok/s" and "MFU" come from the fastest repeat's mean
step, "median all" from the median step over all repeats. Compare ratios across runs, not
absolute figures.

Tokens: batch × seq_len per step (bert, gpt); batch × (encoder + decoder seq_len) (bart).
MFU = analytic training FLOPs / step time / peak, with training FLOPs = 6 × (matmul weights
each token passes through) × tokens + attention (12 · T_query · T_key · d per attention
layer and sequence: QKᵀ and AV, forward + backward). Matmul weights per token: 4d² + 2·d·ff
per block (kernels only: no embeddings lookups, biases, norms), plus for bart 2d² more per
decoder block (cross-attention query/output) and 2d² per decoder block on encoder tokens
(cross-attention keys/values), plus the tied vocabulary projection V·d on every LM target
(gpt, bart). The per-sequence pooler/classifier (bert) is left out. Peaks: 223 GFLOP/s fp32,
410 GFLOP/s bf16 (measured matmul peaks of this 2-core machine; see
/work/shared/FIELD_NOTES.md).

    python bench/train_speed.py [--families bert,gpt,bart] [--precision float32|mixed_bfloat16|both]
                                [--scenario full|padded|both] [--steps 12] [--models kerlm]
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

PEAK_FLOPS = {"float32": 223e9, "mixed_bfloat16": 410e9}
FAMILIES = ("bert", "gpt", "bart")
DIMS = dict(num_layers=4, hidden_dim=256, num_heads=4, intermediate_dim=1024,
            max_sequence_length=512)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--families", default=",".join(FAMILIES),
                        help="Comma-separated subset of bert,gpt,bart.")
    parser.add_argument("--precision", default="both",
                        choices=["float32", "mixed_bfloat16", "both"])
    parser.add_argument("--scenario", default="full", choices=["full", "padded", "both"])
    parser.add_argument("--steps", type=int, default=12,
                        help="Timed steps per model, family, precision and scenario, split "
                             "over --repeats fits.")
    parser.add_argument("--warmup", type=int, default=1,
                        help="Untimed steps after tracing (1 for a second scenario).")
    parser.add_argument("--repeats", type=int, default=4,
                        help="Timed fit calls per model, alternating between the models; the "
                             "fastest is reported (and the median step over all of them).")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--seq_len", type=int, default=128,
                        help="Sequence length (encoder and decoder for bart).")
    parser.add_argument("--vocabulary_size", type=int, default=8192)
    parser.add_argument("--models", default="kerlm,keras_hub",
                        help="Comma-separated subset of kerlm,keras_hub.")
    parser.add_argument("--jit_compile", action="store_true",
                        help="Compile the train step with XLA (off by default: slower on CPU).")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


# --- models -------------------------------------------------------------------------------

def build_kerlm(family, vocabulary_size):
    from kerlm import heads, models
    if family == "bert":
        backbone = models.Backbone.from_preset("encoder_small", vocabulary_size=vocabulary_size,
                                               dropout=0.1, num_segments=2)
        model = heads.Classifier(backbone, 2, pooling="first", dropout=0.1)
    elif family == "gpt":
        backbone = models.DecoderBackbone(vocabulary_size=vocabulary_size, dropout=0.1, **DIMS)
        model = heads.CausalLM(backbone)
    else:
        backbone = models.EncoderDecoderBackbone(vocabulary_size=vocabulary_size, dropout=0.1,
                                                 **DIMS)
        model = heads.Seq2SeqLM(backbone)
    for key, value in DIMS.items():
        assert getattr(backbone, key) == value, (key, getattr(backbone, key), value)
    return backbone, model


def build_keras_hub(family, vocabulary_size):
    import keras
    import keras_hub
    if family == "bert":
        backbone = keras_hub.models.BertBackbone(vocabulary_size=vocabulary_size, num_segments=2,
                                                 dropout=0.1, **DIMS)
        inputs = backbone.input
        x = backbone(inputs)["pooled_output"]
        x = keras.layers.Dropout(0.1, name="classifier_dropout")(x)
        logits = keras.layers.Dense(2, dtype="float32", name="logits")(x)
        return backbone, keras.Model(inputs, logits, name="keras_hub_bert_classifier")
    if family == "gpt":
        backbone = keras_hub.models.GPT2Backbone(vocabulary_size=vocabulary_size, dropout=0.1,
                                                 **DIMS)
        return backbone, keras_hub.models.GPT2CausalLM(backbone, preprocessor=None)
    backbone = keras_hub.models.BartBackbone(vocabulary_size=vocabulary_size, dropout=0.1,
                                             **DIMS)
    return backbone, keras_hub.models.BartSeq2SeqLM(backbone, preprocessor=None)


BUILDERS = {"kerlm": build_kerlm, "keras_hub": build_keras_hub}


def compile_model(model, jit_compile):
    import keras
    import keras_hub
    kwargs = {}
    if isinstance(model, (keras_hub.models.CausalLM, keras_hub.models.Seq2SeqLM)):
        kwargs["weighted_metrics"] = None  # their compile() adds an accuracy metric
    model.compile(optimizer=keras.optimizers.AdamW(learning_rate=1e-4, weight_decay=0.01),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  jit_compile=jit_compile, **kwargs)


def count(weights):
    return sum(int(np.prod(w.shape)) for w in weights)


def training_flops(family, batch_size, seq_len, vocabulary_size):
    """Analytic FLOPs of one training step (see the module docstring) and tokens per step."""
    layers, d, ff = DIMS["num_layers"], DIMS["hidden_dim"], DIMS["intermediate_dim"]
    block = 4 * d * d + 2 * d * ff
    attention = 12 * seq_len * seq_len * d * layers  # per sequence, one stack
    if family == "bert":
        per_sequence = 6 * block * layers * seq_len + attention
        tokens = seq_len
    elif family == "gpt":
        per_sequence = 6 * (block * layers + vocabulary_size * d) * seq_len + attention
        tokens = seq_len
    else:  # encoder tokens: encoder blocks + cross-attention keys/values of every decoder block
        encoder = (block + 2 * d * d) * layers * seq_len
        decoder = ((block + 2 * d * d) * layers + vocabulary_size * d) * seq_len
        per_sequence = 6 * (encoder + decoder) + 3 * attention  # enc self, dec self, cross
        tokens = 2 * seq_len
    return per_sequence * batch_size, tokens * batch_size


# --- data ---------------------------------------------------------------------------------

def _ids_and_mask(rng, n, length, scenario, vocabulary_size):
    token_ids = rng.integers(4, vocabulary_size, size=(n, length), dtype=np.int32)
    if scenario == "full":
        mask = np.ones((n, length), np.int32)
    else:
        lengths = rng.integers(16, length + 1, size=(n, 1))
        mask = (np.arange(length)[None, :] < lengths).astype(np.int32)
    return token_ids * mask, mask


def make_data(family, scenario, num_batches, batch_size, seq_len, vocabulary_size, seed):
    """Numpy `(x, y, sample_weight or None)` for `num_batches` batches, and the real fraction."""
    rng = np.random.default_rng(seed)
    n = num_batches * batch_size
    if family == "bert":
        ids, mask = _ids_and_mask(rng, n, seq_len, scenario, vocabulary_size)
        # kerlm's Classifier takes no segment_ids (it feeds zeros itself); keras-hub's BERT
        # model gets them explicitly (see `make_dataset`'s `keys`)
        x = {"token_ids": ids, "segment_ids": np.zeros_like(ids), "padding_mask": mask}
        return (x, rng.integers(0, 2, size=(n,), dtype=np.int32), None), float(mask.mean())
    ids, mask = _ids_and_mask(rng, n, seq_len + 1, scenario, vocabulary_size)
    y, weight = ids[:, 1:], mask[:, 1:].astype("float32")
    if family == "gpt":
        x = {"token_ids": ids[:, :-1], "padding_mask": mask[:, :-1]}
        return (x, y, weight), float(mask[:, :-1].mean())
    encoder_ids, encoder_mask = _ids_and_mask(rng, n, seq_len, scenario, vocabulary_size)
    x = {"encoder_token_ids": encoder_ids, "encoder_padding_mask": encoder_mask,
         "decoder_token_ids": ids[:, :-1], "decoder_padding_mask": mask[:, :-1]}
    return (x, y, weight), float((encoder_mask.mean() + mask[:, :-1].mean()) / 2)


def make_dataset(data, first, count, batch_size, keys):
    """Batches `first .. first + count` of `data`, with the features named in `keys`."""
    import tensorflow as tf
    lo, hi = first * batch_size, (first + count) * batch_size
    x, y, weight = data
    parts = ({k: x[k][lo:hi] for k in keys}, y[lo:hi])
    if weight is not None:
        parts += (weight[lo:hi],)
    ds = tf.data.Dataset.from_tensor_slices(parts)
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


# --- run ----------------------------------------------------------------------------------

def run_family(family, precision, args, scenarios, model_names):
    import keras
    keras.backend.clear_session()
    keras.mixed_precision.set_global_policy(precision)
    keras.utils.set_random_seed(args.seed)
    tag = f"{family}/{precision}"
    built, counts = {}, {}
    for name in model_names:
        backbone, model = BUILDERS[name](family, args.vocabulary_size)
        compile_model(model, args.jit_compile)
        built[name] = model
        counts[name] = count(backbone.weights)
        print(f"[{tag}] {name}: backbone {counts[name]:,} params; model "
              f"{count(model.weights):,}", flush=True)
    if len(set(counts.values())) > 1:
        print(f"WARNING: parameter counts differ: {counts}", flush=True)
    flops_per_step, tokens_per_step = training_flops(family, args.batch_size, args.seq_len,
                                                     args.vocabulary_size)
    per_repeat = -(-args.steps // args.repeats)
    rows = []
    for index, scenario in enumerate(scenarios):
        # same shapes in every scenario: the traced step is reused
        warmup = args.warmup if index == 0 else 1
        num_batches = warmup + args.repeats * (per_repeat + 1)
        data, real_fraction = make_data(family, scenario, num_batches, args.batch_size,
                                        args.seq_len, args.vocabulary_size, args.seed)
        warmup_s = {}
        for name in model_names:
            warm_ds = make_dataset(data, 0, warmup, args.batch_size, list(built[name].input))
            start = time.perf_counter()
            built[name].fit(warm_ds, epochs=1, verbose=0, shuffle=False)
            warmup_s[name] = time.perf_counter() - start
            print(f"[{tag}/{scenario}] {name}: warm-up fit ({warmup} step(s)"
                  f"{' + tracing' if index == 0 else ''}) {warmup_s[name]:.1f} s", flush=True)
        results = {name: [] for name in model_names}
        for repeat in range(args.repeats):
            # alternate which model goes first, so neither always follows the other
            order = model_names if repeat % 2 == 0 else model_names[::-1]
            for name in order:
                timed_ds = make_dataset(data, warmup + repeat * (per_repeat + 1),
                                        per_repeat + 1, args.batch_size, list(built[name].input))
                timer = make_timer()
                built[name].fit(timed_ds, epochs=1, verbose=0, shuffle=False,
                                callbacks=[timer])
                step_ms = np.diff(timer.times) * 1e3  # the first step of each fit is untimed
                results[name].append(step_ms)
                print(f"[{tag}/{scenario}] {name} repeat {repeat}: "
                      f"{step_ms.mean():.0f} ms/step mean, {np.median(step_ms):.0f} median",
                      flush=True)
        for name in model_names:
            best = min(results[name], key=np.mean)
            every = np.concatenate(results[name])
            seconds = best.mean() / 1e3
            rows.append(dict(
                family=family, model=name, precision=precision, scenario=scenario,
                batch_size=args.batch_size, seq_len=args.seq_len, params=counts[name],
                timed_steps=int(every.size), warmup_s=round(warmup_s[name], 1),
                step_ms=round(float(best.mean()), 1),
                step_ms_median_all=round(float(np.median(every)), 1),
                tokens_per_sec=round(tokens_per_step / seconds, 1),
                tokens_per_sec_median_all=round(tokens_per_step / (np.median(every) / 1e3), 1),
                real_tokens_per_sec=round(tokens_per_step * real_fraction / seconds, 1),
                mfu=round(flops_per_step / seconds / PEAK_FLOPS[precision], 4)))
    built.clear()
    keras.mixed_precision.set_global_policy("float32")
    keras.backend.clear_session()
    return rows, dict(flops_per_step=flops_per_step, tokens_per_step=tokens_per_step,
                      backbone_params=counts)


def add_ratios(rows):
    by_key = {(r["family"], r["precision"], r["scenario"], r["model"]): r for r in rows}
    for r in rows:
        other = by_key.get((r["family"], r["precision"], r["scenario"], "keras_hub"))
        r["ratio_vs_keras_hub"] = round(r["tokens_per_sec"] / other["tokens_per_sec"], 3) \
            if other else None
        r["ratio_vs_keras_hub_median_all"] = round(
            r["tokens_per_sec_median_all"] / other["tokens_per_sec_median_all"], 3) \
            if other else None


def print_table(rows):
    header = ["family", "model", "precision", "scenario", "ms/step", "tok/s", "real tok/s",
              "kerlm/hub", "MFU", "median all", "kerlm/hub"]
    lines = [header]
    for r in rows:
        ratio, ratio_all = r["ratio_vs_keras_hub"], r["ratio_vs_keras_hub_median_all"]
        lines.append([r["family"], r["model"], r["precision"], r["scenario"],
                      f"{r['step_ms']:.0f}", f"{r['tokens_per_sec']:,.0f}",
                      f"{r['real_tokens_per_sec']:,.0f}",
                      "" if ratio is None else f"{ratio:.2f}", f"{r['mfu'] * 100:.1f} %",
                      f"{r['tokens_per_sec_median_all']:,.0f}",
                      "" if ratio_all is None else f"{ratio_all:.2f}"])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for i, line in enumerate(lines):
        print("  ".join(c.ljust(w) if j < 4 else c.rjust(w)
                        for j, (c, w) in enumerate(zip(line, widths))))
        if i == 0:
            print("  ".join("-" * w for w in widths))


def main(argv=None):
    args = parse_args(argv)
    precisions = ["float32", "mixed_bfloat16"] if args.precision == "both" else [args.precision]
    scenarios = ["full", "padded"] if args.scenario == "both" else [args.scenario]
    families = [f.strip() for f in args.families.split(",") if f.strip()]
    model_names = [m.strip() for m in args.models.split(",") if m.strip()]
    for f in families:
        if f not in FAMILIES:
            sys.exit(f"unknown family {f!r}; choose from {', '.join(FAMILIES)}")
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
          f"{args.warmup} warm-up + {args.steps} timed steps in {args.repeats} repeats, "
          f"jit_compile={args.jit_compile}", flush=True)
    rows, meta = [], {}
    start = time.perf_counter()
    for precision in precisions:
        for family in families:
            family_rows, meta[f"{family}/{precision}"] = run_family(
                family, precision, args, scenarios, model_names)
            rows += family_rows
    add_ratios(rows)
    print()
    print_table(rows)
    print(f"\nAnalytic FLOPs/step: " + ", ".join(
        f"{f} {meta[f'{f}/{precisions[0]}']['flops_per_step'] / 1e9:.1f} G" for f in families)
        + f"; peaks: fp32 {PEAK_FLOPS['float32'] / 1e9:.0f}, bf16 "
        f"{PEAK_FLOPS['mixed_bfloat16'] / 1e9:.0f} GFLOP/s; total "
        f"{time.perf_counter() - start:.0f} s")
    print(json.dumps({"benchmark": "train_speed", "config": vars(args), "meta": meta,
                      "results": rows}))


if __name__ == "__main__":
    main()
