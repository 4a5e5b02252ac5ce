"""Translation-model speed: kerlm `Seq2SeqLM` vs keras-hub `BartSeq2SeqLM`, generation and training.

Both models are BART-like with identical dimensions (by default 4 encoder + 4 decoder
layers, 256 d, 4 heads, ff 1024, 256 positions, random weights). The vocabulary is a
SentencePiece model (`--vocabulary_size` 8000, unigram) that `SentencePieceTokenizer.learn`
learns on the English and Spanish sides of `kerlm.data.bible_en_es.load("train")`. Both
models use its size. The script prints the backbone parameter counts, which should be equal.

Part 1, generation tokens/s (fp32, dropout 0, XLA on for both by default):

- Sources: `--source_tokens` (64) real token ids per row: English Bible verses from the
  train split, tokenized with the learned SentencePiece model and cut into rows of 63 tokens
  + `</s>`, all unmasked. Row i is the same in every batch size.
- kerlm: `Seq2SeqLM(backbone).generate({"encoder_token_ids", "encoder_padding_mask"},
  max_length=1 + new_tokens, start_token_id=2, stop_token_ids=None, sampler="greedy" |
  "beam", beam_width=4, jit_compile=True)`.
- keras-hub: `BartSeq2SeqLM(backbone, preprocessor=None)`, then `compile(sampler="greedy" |
  BeamSampler(num_beams=4), jit_compile=True)`, then `generate({"encoder_token_ids",
  "encoder_padding_mask", "decoder_token_ids", "decoder_padding_mask"},
  stop_token_ids=None)`. Without a preprocessor, keras-hub ignores `max_length`. The output
  length is the padded width of `decoder_token_ids`, so the decoder prompt is
  `[2, 0, 0, …]` of width 1 + new_tokens with `decoder_padding_mask` `[1, 0, 0, …]`.
  Generation starts at the shortest prompt length (1). keras-hub's `compile()` defaults to
  `jit_compile="auto"`, which is False on a CPU-only machine, so the script passes
  `jit_compile` explicitly.
- No stop token, so both sides generate exactly `--new_tokens` (64) tokens per sequence.
  The script checks that every output has shape `[batch, 1 + new_tokens]` and starts with
  token 2.
- tok/s = batch × new tokens / seconds per `generate` call. Host-side input and output
  conversion is included on both sides. Per sampler and batch size, each model is called
  once first (tracing + XLA compilation: "first call"; "compile" = first call − best). Then
  `--generate_repeats` (5) timed calls alternate between the two models. The fastest call
  counts; "median" ratios use the median call.

Part 2, training tokens/s (`--precision`, default mixed_bfloat16; dropout 0.1; no XLA;
`model.fit`):

- Data: en→es verse pairs from the train split, tokenized as `Seq2SeqTask` does (sources
  `tokens </s>`, labels `tokens </s>`, decoder inputs `<s> tokens`, each truncated to
  `--source_length` / `--target_length`, 128).
- kerlm, `bucketed`: `Seq2SeqLM` trained with AdamW (lr 1e-4, wd 0.01) and
  `SmoothedSparseCrossentropy(0.1)`, sample_weight = label mask. Batches are made like
  `Seq2SeqTask.dataset`: `bucketed_batches` of `--batch_size` (48) sentences, each side
  padded with `pad_batch` to its longest sequence, rounded up to a multiple of 8, through a
  `tf.data.Dataset.from_generator` with `[None, None]` shapes.
- kerlm, `fixed`: the same model and loss, on the same sentences padded to 128 + 128.
- keras-hub, `fixed`: `BartSeq2SeqLM(preprocessor=None)`, the same AdamW, keras-hub's
  standard loss (`SparseCategoricalCrossentropy(from_logits=True)`, sample_weight = label
  mask), no metrics. Its inputs are the same sentences padded to 128 + 128, which is what
  `BartSeq2SeqLMPreprocessor(encoder_sequence_length=128, decoder_sequence_length=128)`
  feeds it. keras-hub's packer would add `<s>` to the source and `</s> <s>` in front of the
  decoder input. Here it gets the same ids as kerlm, so both do the same work and count
  the same useful tokens.
- Timed batches: the same `--steps / --repeats` batches in every repeat and for every row.
  They are picked at evenly spaced quantiles of the useful-token count of all bucketed
  batches of one epoch, so their length mix is the epoch's. The script prints the padding
  share of the timed set and of the whole epoch, for both batchings.
- Timing: each model first runs a warm-up `fit` (tracing + `--warmup` (5) steps on other
  batches of varied shapes; its time is reported). Then come `--repeats` (3) timed `fit`s,
  alternating between the models and switching which goes first. Each fit has one untimed
  first step. A callback reads the loss after each step, which waits for the step to
  finish.
- useful tok/s = non-pad encoder + decoder tokens / seconds. padded tok/s = all positions
  / seconds. Both come from the fastest repeat. "all repeats" = the same figures over every
  timed step. The ratios are kerlm ÷ keras-hub on useful tok/s. The sentences are the
  same, so that is keras-hub's time ÷ kerlm's. `kerlm fixed` vs keras-hub is model speed
  alone. `kerlm bucketed` vs `kerlm fixed` is the bucketing gain.

The machine has 2 cores and other processes change absolute figures by ±10–20 %: compare
ratios measured in the same run.

    python bench/seq2seq_speed.py                      # defaults: about 5 min (estimate)
    python bench/seq2seq_speed.py --quick              # tiny dims, few steps: smoke test, < 2 min
    python bench/seq2seq_speed.py --parts generate --batch_sizes 1,8,32 --json /tmp/s2s.json
    python bench/seq2seq_speed.py --parts train --precision float32 --steps 60 --repeats 4
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from train_speed import make_timer  # noqa: E402 (bench/ is the script's directory)

START_ID, END_ID = 2, 3  # kerlm.tokenizers.sentence_piece's (imported lazily with TF)

# `--quick`: defaults for a smoke test of every code path (explicit flags still win)
QUICK = dict(num_layers=1, hidden_dim=32, num_heads=2, intermediate_dim=64,
             max_sequence_length=128, vocabulary_size=1000, train_records=2000,
             batch_sizes="1,2", new_tokens=8, generate_repeats=2, batch_size=8,
             source_length=32, target_length=32, steps=4, warmup=2, repeats=2)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="Tiny model, small vocabulary, few steps: checks that everything "
                             "runs (figures meaningless). Overrides: " +
                             ", ".join(f"{k}={v}" for k, v in QUICK.items()))
    parser.add_argument("--parts", default="generate,train",
                        help="Comma-separated subset of generate,train.")
    # model
    parser.add_argument("--num_layers", type=int, default=4,
                        help="Encoder layers (and as many decoder layers).")
    parser.add_argument("--hidden_dim", type=int, default=256)
    parser.add_argument("--num_heads", type=int, default=4)
    parser.add_argument("--intermediate_dim", type=int, default=1024)
    parser.add_argument("--max_sequence_length", type=int, default=256)
    parser.add_argument("--vocabulary_size", type=int, default=8000,
                        help="SentencePiece vocabulary learned on the train texts (both models "
                             "use its actual size).")
    parser.add_argument("--train_records", type=int, default=0,
                        help="Use only the first N train pairs (0: all 28,114).")
    # generation
    parser.add_argument("--batch_sizes", default="1,8")
    parser.add_argument("--samplers", default="greedy,beam",
                        help="Comma-separated subset of greedy,beam.")
    parser.add_argument("--beam_width", type=int, default=4)
    parser.add_argument("--jit", default="on", choices=["on", "off", "both"],
                        help="XLA for generation (both libraries).")
    parser.add_argument("--source_tokens", type=int, default=64,
                        help="Source length for generation (text tokens + </s>).")
    parser.add_argument("--new_tokens", type=int, default=64)
    parser.add_argument("--generate_repeats", type=int, default=5,
                        help="Timed generate calls per model and configuration, alternating.")
    # training
    parser.add_argument("--precision", default="mixed_bfloat16",
                        choices=["float32", "mixed_bfloat16"], help="Training precision.")
    parser.add_argument("--batch_size", type=int, default=48, help="Sentences per batch.")
    parser.add_argument("--source_length", type=int, default=128,
                        help="Source truncation, and keras-hub's fixed encoder length.")
    parser.add_argument("--target_length", type=int, default=128,
                        help="Target truncation, and keras-hub's fixed decoder length.")
    parser.add_argument("--steps", type=int, default=30,
                        help="Timed training steps per model, split over --repeats fits (the "
                             "same batches in every repeat).")
    parser.add_argument("--warmup", type=int, default=5, help="Untimed steps after tracing.")
    parser.add_argument("--repeats", type=int, default=3,
                        help="Timed fit calls per model, alternating between the models; the "
                             "fastest is reported.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, metavar="PATH",
                        help="Also write the figures as JSON to PATH.")
    if parser.parse_known_args(argv)[0].quick:
        parser.set_defaults(**QUICK)
    return parser.parse_args(argv)


def dims(args):
    return dict(num_layers=args.num_layers, hidden_dim=args.hidden_dim,
                num_heads=args.num_heads, intermediate_dim=args.intermediate_dim,
                max_sequence_length=args.max_sequence_length)


# --- data ---------------------------------------------------------------------------------

def load_pairs(limit):
    from kerlm.data import bible_en_es
    records = bible_en_es.load("train")
    if limit:
        records = records[:limit]
    return [r.fields["en"] for r in records], [r.fields["es"] for r in records]


def generation_sources(preprocessor, english, rows, length):
    """`[rows, length]` int32: consecutive English text, `length - 1` tokens + `</s>` a row."""
    import tensorflow as tf
    need, stream = rows * (length - 1), []
    for i in range(0, len(english), 256):
        for ids in preprocessor.tokenizer.tokenize(tf.constant(english[i:i + 256])).to_list():
            stream += ids
        if len(stream) >= need:
            break
    if len(stream) < need:
        sys.exit(f"not enough English text for {rows} sources of {length} tokens")
    text = np.asarray(stream[:need], "int32").reshape(rows, length - 1)
    return np.concatenate([text, np.full((rows, 1), END_ID, "int32")], axis=1)


def make_batch(source_ids, label_ids, indices, widths=None):
    """`(features, labels, label_mask)` as `Seq2SeqTask.dataset` builds them: each side padded
    to its longest sequence rounded up to a multiple of 8, or to `widths` (fixed)."""
    from kerlm.data.batching import batch_features
    return batch_features(source_ids, label_ids, indices, widths or (8, 8))


def batch_tokens(batch):
    """(useful, padded) encoder + decoder tokens of a batch."""
    x, labels, label_mask = batch
    useful = int(x["encoder_padding_mask"].sum() + label_mask.sum())
    return useful, int(x["encoder_token_ids"].size + labels.size)


def make_dataset(batches, widths=None):
    import tensorflow as tf
    source, target = widths or (None, None)
    enc, dec = tf.TensorSpec([None, source], tf.int32), tf.TensorSpec([None, target], tf.int32)
    spec = ({"encoder_token_ids": enc, "encoder_padding_mask": enc,
             "decoder_token_ids": dec, "decoder_padding_mask": dec}, dec, dec)
    ds = tf.data.Dataset.from_generator(lambda: iter(batches), output_signature=spec)
    ds = ds.apply(tf.data.experimental.assert_cardinality(len(batches)))
    return ds.prefetch(4)


def padding_share(lengths, batches, width=None):
    """useful / padded tokens of one side over `batches` (index arrays)."""
    useful = padded = 0
    for indices in batches:
        longest = max(lengths[i] for i in indices)
        useful += sum(lengths[i] for i in indices)
        padded += len(indices) * (width or -(-longest // 8) * 8)
    return useful, padded


# --- part 1: generation -------------------------------------------------------------------

class KerlmGenerator:
    name = "kerlm"

    def __init__(self, model_dims, vocabulary_size):
        from kerlm import heads, models
        backbone = models.EncoderDecoderBackbone(vocabulary_size=vocabulary_size, dropout=0.0,
                                                 **model_dims)
        self.model = heads.Seq2SeqLM(backbone)
        self.params = backbone.count_params()

    def generate(self, source, new_tokens, sampler, beam_width, jit):
        options = {"beam_width": beam_width} if sampler == "beam" else {}
        out = self.model.generate(
            {"encoder_token_ids": source, "encoder_padding_mask": np.ones_like(source)},
            max_length=1 + new_tokens, start_token_id=START_ID, stop_token_ids=None,
            sampler=sampler, jit_compile=jit, **options)
        return out["token_ids"]


class KerasHubGenerator:
    name = "keras_hub"

    def __init__(self, model_dims, vocabulary_size):
        import keras_hub
        backbone = keras_hub.models.BartBackbone(vocabulary_size=vocabulary_size, dropout=0.0,
                                                 **model_dims)
        self.model = keras_hub.models.BartSeq2SeqLM(backbone, preprocessor=None)
        self.params = backbone.count_params()
        self.compiled = None

    def generate(self, source, new_tokens, sampler, beam_width, jit):
        import keras_hub
        if (sampler, beam_width, jit) != self.compiled:  # compile() drops the generate function
            chosen = (keras_hub.samplers.BeamSampler(num_beams=beam_width)
                      if sampler == "beam" else sampler)
            self.model.compile(sampler=chosen, jit_compile=jit)
            self.compiled = (sampler, beam_width, jit)
        # no preprocessor: max_length is ignored and the output is as wide as the decoder
        # prompt, so the prompt is the start token padded to 1 + new_tokens
        batch = source.shape[0]
        decoder_ids = np.zeros((batch, 1 + new_tokens), "int32")
        decoder_ids[:, 0] = START_ID
        out = self.model.generate(
            {"encoder_token_ids": source, "encoder_padding_mask": np.ones_like(source),
             "decoder_token_ids": decoder_ids, "decoder_padding_mask": decoder_ids != 0},
            stop_token_ids=None)
        return out["decoder_token_ids"]


def timed_generate(model, source, new_tokens, sampler, beam_width, jit, vocabulary_size):
    start = time.perf_counter()
    out = model.generate(source, new_tokens, sampler, beam_width, jit)
    seconds = time.perf_counter() - start
    out = np.asarray(out)
    expected = (source.shape[0], 1 + new_tokens)
    assert out.shape == expected, (model.name, sampler, out.shape, expected)
    assert (out[:, 0] == START_ID).all(), (model.name, sampler, out[:, 0])
    assert ((out >= 0) & (out < vocabulary_size)).all(), (model.name, sampler)
    return seconds


def run_generation(args, vocabulary_size, sources):
    import keras
    keras.mixed_precision.set_global_policy("float32")
    keras.utils.set_random_seed(args.seed)
    models = [KerlmGenerator(dims(args), vocabulary_size),
              KerasHubGenerator(dims(args), vocabulary_size)]
    print("[generate] backbone params: " + ", ".join(f"{m.name} {m.params:,}" for m in models),
          flush=True)
    if models[0].params != models[1].params:
        print("WARNING: backbone parameter counts differ", flush=True)
    jits = {"on": [True], "off": [False], "both": [True, False]}[args.jit]
    samplers = [s.strip() for s in args.samplers.split(",") if s.strip()]
    batch_sizes = [int(b) for b in args.batch_sizes.split(",") if b]
    new = args.new_tokens
    rows = []
    for jit in jits:
        for sampler in samplers:
            for batch in batch_sizes:
                source = sources[:batch]
                label = f"generate {sampler} b{batch} XLA={'on' if jit else 'off'}"

                def call(m):
                    return timed_generate(m, source, new, sampler, args.beam_width, jit,
                                          vocabulary_size)

                first = {m.name: call(m) for m in models}
                times = {m.name: [] for m in models}
                for repeat in range(args.generate_repeats):
                    for m in (models if repeat % 2 == 0 else models[::-1]):
                        times[m.name].append(call(m))
                row = dict(sampler=sampler, beam_width=args.beam_width if sampler == "beam"
                           else 1, batch_size=batch, source_tokens=int(source.shape[1]),
                           new_tokens=new, jit=jit)
                for m in models:
                    best, median = min(times[m.name]), float(np.median(times[m.name]))
                    row[m.name] = dict(
                        seconds=round(best, 4), seconds_median=round(median, 4),
                        tokens_per_sec=round(batch * new / best, 1),
                        tokens_per_sec_median=round(batch * new / median, 1),
                        ms_per_step=round(best / new * 1e3, 3),
                        first_call_s=round(first[m.name], 2),
                        compile_s=round(first[m.name] - best, 2))
                    print(f"[{label}] {m.name}: {row[m.name]['tokens_per_sec']:,.0f} tok/s "
                          f"(best of {args.generate_repeats}; median {median:.3f} s); first "
                          f"call {first[m.name]:.1f} s", flush=True)
                row["ratio"] = round(row["kerlm"]["tokens_per_sec"]
                                     / row["keras_hub"]["tokens_per_sec"], 3)
                row["ratio_median"] = round(row["kerlm"]["tokens_per_sec_median"]
                                            / row["keras_hub"]["tokens_per_sec_median"], 3)
                rows.append(row)
    return rows, {"backbone_params": {m.name: m.params for m in models}}


# --- part 2: training ---------------------------------------------------------------------



def build_trainers(args, vocabulary_size):
    """`{row name: (model, backbone params)}` for the three training rows."""
    import keras
    import keras_hub
    from kerlm import heads, models
    from kerlm.heads.losses import SmoothedSparseCrossentropy

    def optimizer():
        return keras.optimizers.AdamW(learning_rate=1e-4, weight_decay=0.01)

    built = {}
    for name in ("kerlm bucketed", "kerlm fixed"):
        backbone = models.EncoderDecoderBackbone(vocabulary_size=vocabulary_size, dropout=0.1,
                                                 **dims(args))
        model = heads.Seq2SeqLM(backbone)
        model.compile(optimizer=optimizer(), loss=SmoothedSparseCrossentropy(0.1),
                      jit_compile=False)
        built[name] = (model, backbone.count_params())
    backbone = keras_hub.models.BartBackbone(vocabulary_size=vocabulary_size, dropout=0.1,
                                             **dims(args))
    model = keras_hub.models.BartSeq2SeqLM(backbone, preprocessor=None)
    model.compile(optimizer=optimizer(),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  weighted_metrics=None,  # its compile() would add an accuracy metric
                  jit_compile=False)
    built["keras_hub fixed"] = (model, backbone.count_params())
    return built


def pick_batches(useful, count, rng):
    """`count` batch positions at evenly spaced quantiles of `useful`, in random order."""
    order = np.argsort(useful, kind="stable")
    picks = [int(order[int((i + 0.5) * len(order) / count)]) for i in range(count)]
    return [picks[i] for i in rng.permutation(count)]


def run_training(args, vocabulary_size, source_ids, label_ids):
    import keras
    from kerlm.data.batching import bucketed_batches
    start = time.perf_counter()
    source_lengths = [len(s) for s in source_ids]
    label_lengths = [len(t) for t in label_ids]
    lengths = [s + t for s, t in zip(source_lengths, label_lengths)]
    rng = np.random.default_rng(args.seed)
    epoch = bucketed_batches(lengths, args.batch_size, rng)
    epoch = [b for b in epoch if len(b) == args.batch_size]  # drop the one short batch
    per_repeat = max(1, args.steps // args.repeats)
    if len(epoch) < per_repeat + args.warmup + 1:
        sys.exit(f"{len(epoch)} batches of {args.batch_size}: too few for --steps/--warmup")
    # exact useful tokens per bucketed batch, from the lengths
    useful = np.array([sum(lengths[i] for i in b) for b in epoch])
    timed_at = pick_batches(useful, per_repeat, rng)
    others = [i for i in range(len(epoch)) if i not in set(timed_at)]
    warm_at, lead_at = others[:args.warmup], others[args.warmup]
    widths = (args.source_length, args.target_length)
    data = {"bucketed": {}, "fixed": {}}
    for at in timed_at + warm_at + [lead_at]:
        data["bucketed"][at] = make_batch(source_ids, label_ids, epoch[at])
        data["fixed"][at] = make_batch(source_ids, label_ids, epoch[at], widths)
    tokens = {kind: [batch_tokens(data[kind][at]) for at in timed_at] for kind in data}
    useful_timed = sum(u for u, _ in tokens["bucketed"])
    assert useful_timed == sum(u for u, _ in tokens["fixed"])
    padded_timed = {kind: sum(p for _, p in tokens[kind]) for kind in data}
    # padding share of one whole epoch, both batchings (encoder + decoder)
    epoch_share = {}
    for kind, width in (("bucketed", (None, None)), ("fixed", widths)):
        u_s, p_s = padding_share(source_lengths, epoch, width[0])
        u_t, p_t = padding_share(label_lengths, epoch, width[1])
        epoch_share[kind] = round((u_s + u_t) / (p_s + p_t), 4)
    meta = dict(
        train_pairs=len(lengths), epoch_batches=len(epoch), timed_batches=per_repeat,
        mean_useful_tokens_per_pair=round(float(np.mean(lengths)), 2),
        timed_mean_useful_tokens_per_pair=round(useful_timed / (per_repeat * args.batch_size), 2),
        timed_useful_share={k: round(useful_timed / padded_timed[k], 4) for k in data},
        epoch_useful_share=epoch_share,
        batching_s=round(time.perf_counter() - start, 1))
    print(f"[train] {len(lengths):,} pairs, mean {meta['mean_useful_tokens_per_pair']:.1f} "
          f"useful tokens (source + target); {len(epoch)} bucketed batches of "
          f"{args.batch_size}; timed set: {per_repeat} batches, mean "
          f"{meta['timed_mean_useful_tokens_per_pair']:.1f} tokens/pair; useful share of "
          f"positions: bucketed {meta['timed_useful_share']['bucketed']:.1%} (epoch "
          f"{epoch_share['bucketed']:.1%}), fixed {widths[0]}+{widths[1]} "
          f"{meta['timed_useful_share']['fixed']:.1%} (epoch {epoch_share['fixed']:.1%})",
          flush=True)

    keras.backend.clear_session()
    keras.mixed_precision.set_global_policy(args.precision)
    keras.utils.set_random_seed(args.seed)
    built = build_trainers(args, vocabulary_size)
    params = {name: p for name, (_, p) in built.items()}
    print("[train] backbone params: " + ", ".join(f"{n} {p:,}" for n, p in params.items()),
          flush=True)
    if len(set(params.values())) > 1:
        print("WARNING: backbone parameter counts differ", flush=True)
    names = list(built)

    def dataset(name, positions):
        kind = name.split()[1]
        return make_dataset([data[kind][at] for at in positions],
                            widths if kind == "fixed" else None)

    warmup_s = {}
    for name in names:
        begin = time.perf_counter()
        built[name][0].fit(dataset(name, warm_at), epochs=1, verbose=0, shuffle=False)
        warmup_s[name] = time.perf_counter() - begin
        print(f"[train {args.precision}] {name}: warm-up fit (tracing + {args.warmup} steps) "
              f"{warmup_s[name]:.1f} s", flush=True)
    seconds = {name: [] for name in names}  # per repeat: step seconds of the timed batches
    for repeat in range(args.repeats):
        for name in (names if repeat % 2 == 0 else names[::-1]):
            timer = make_timer()
            built[name][0].fit(dataset(name, [lead_at] + timed_at), epochs=1, verbose=0,
                               shuffle=False, callbacks=[timer])
            steps = np.diff(timer.times)  # the first (lead) step of each fit is untimed
            assert steps.size == per_repeat, (steps.size, per_repeat)
            seconds[name].append(steps)
            kind = name.split()[1]
            print(f"[train {args.precision}] {name} repeat {repeat}: "
                  f"{steps.mean() * 1e3:.0f} ms/step, {useful_timed / steps.sum():,.0f} useful "
                  f"tok/s, {padded_timed[kind] / steps.sum():,.0f} padded tok/s", flush=True)
    rows = []
    for name in names:
        kind = name.split()[1]
        best = min(seconds[name], key=np.sum)
        total = float(sum(s.sum() for s in seconds[name]))
        rows.append(dict(
            model=name.split()[0], batches=kind, precision=args.precision,
            batch_size=args.batch_size, params=params[name], timed_steps=per_repeat,
            repeats=args.repeats, warmup_s=round(warmup_s[name], 1),
            step_ms=round(float(best.mean()) * 1e3, 1),
            useful_tokens_per_sec=round(useful_timed / float(best.sum()), 1),
            padded_tokens_per_sec=round(padded_timed[kind] / float(best.sum()), 1),
            useful_share=round(useful_timed / padded_timed[kind], 4),
            useful_tokens_per_sec_all=round(useful_timed * args.repeats / total, 1),
            padded_tokens_per_sec_all=round(padded_timed[kind] * args.repeats / total, 1)))
    hub = rows[-1]
    for r in rows:
        r["ratio_vs_keras_hub"] = round(r["useful_tokens_per_sec"]
                                        / hub["useful_tokens_per_sec"], 3)
        r["ratio_vs_keras_hub_all"] = round(r["useful_tokens_per_sec_all"]
                                            / hub["useful_tokens_per_sec_all"], 3)
    meta["bucketing_gain"] = round(rows[0]["useful_tokens_per_sec"]
                                   / rows[1]["useful_tokens_per_sec"], 3)
    built.clear()
    keras.mixed_precision.set_global_policy("float32")
    keras.backend.clear_session()
    return rows, meta


# --- output -------------------------------------------------------------------------------

def markdown(header, lines, left=1):
    """A markdown table; the first `left` columns are left-aligned, the rest right."""
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" if i < left else "---:" for i in range(len(header))) + "|")
    for line in lines:
        print("| " + " | ".join(line) + " |")


def print_tables(args, generation, training, train_meta):
    if generation:
        print(f"\nGeneration: {generation[0]['source_tokens']}-token sources, "
              f"{args.new_tokens} new tokens, no stop token, fp32; tok/s = batch × new tokens "
              f"/ s (best of {args.generate_repeats}); ms/step = best call / new tokens\n")
        lines = []
        for r in generation:
            k, h = r["kerlm"], r["keras_hub"]
            sampler = "greedy" if r["sampler"] == "greedy" else f"beam {r['beam_width']}"
            lines.append([sampler, str(r["batch_size"]), "on" if r["jit"] else "off",
                          f"{k['tokens_per_sec']:,.0f}", f"{h['tokens_per_sec']:,.0f}",
                          f"**{r['ratio']:.2f}**", f"{r['ratio_median']:.2f}",
                          f"{k['ms_per_step']:.2f} / {h['ms_per_step']:.2f}",
                          f"{k['compile_s']:.1f} / {h['compile_s']:.1f} s"])
        markdown(["sampler", "batch", "XLA", "kerlm tok/s", "keras-hub tok/s",
                  "kerlm / keras-hub", "median calls", "ms/step, kerlm / keras-hub",
                  "compile, kerlm / keras-hub"], lines, left=1)
    if training:
        print(f"\nTraining: {args.precision}, batch {args.batch_size} sentences, "
              f"{training[0]['timed_steps']} timed steps × {args.repeats} repeats (the same "
              f"batches); fixed = {args.source_length} + {args.target_length} positions; "
              f"useful = non-pad encoder + decoder tokens\n")
        lines = []
        for r in training:
            lines.append([r["model"], r["batches"], f"{r['step_ms']:,.0f}",
                          f"{r['useful_tokens_per_sec']:,.0f}",
                          f"{r['padded_tokens_per_sec']:,.0f}", f"{r['useful_share']:.1%}",
                          f"**{r['ratio_vs_keras_hub']:.2f}**",
                          f"{r['ratio_vs_keras_hub_all']:.2f}", f"{r['warmup_s']:.1f} s"])
        markdown(["model", "batches", "ms/step", "useful tok/s", "padded tok/s",
                  "useful share", "÷ keras-hub", "all repeats", "warm-up fit"], lines, left=2)
        print(f"\nBucketing gain (kerlm bucketed ÷ kerlm fixed, useful tok/s): "
              f"{train_meta['bucketing_gain']:.2f}")


def main(argv=None):
    args = parse_args(argv)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    for p in parts:
        if p not in ("generate", "train"):
            sys.exit(f"unknown part {p!r}; choose from generate, train")
    for s in args.samplers.split(","):
        if s.strip() and s.strip() not in ("greedy", "beam"):
            sys.exit(f"unknown sampler {s!r}; choose from greedy, beam")
    longest = max(args.source_tokens, 1 + args.new_tokens, args.source_length,
                  args.target_length)
    if longest > args.max_sequence_length:
        sys.exit(f"a sequence of {longest} tokens exceeds --max_sequence_length="
                 f"{args.max_sequence_length}")
    total = time.perf_counter()
    import tensorflow as tf
    import keras
    import keras_hub
    import kerlm
    from kerlm.preprocessing import Seq2SeqPreprocessor
    from kerlm.tokenizers import sentence_piece
    assert (sentence_piece.START_ID, sentence_piece.END_ID) == (START_ID, END_ID)
    print(f"kerlm from {os.path.dirname(kerlm.__file__)}; keras-hub {keras_hub.__version__}; "
          f"TensorFlow {tf.__version__}, Keras {keras.__version__}, {os.cpu_count()} CPUs"
          f"{'; --quick' if args.quick else ''}", flush=True)
    print(f"model: {args.num_layers} + {args.num_layers} layers, {args.hidden_dim} d, "
          f"{args.num_heads} heads, ff {args.intermediate_dim}, "
          f"{args.max_sequence_length} positions", flush=True)
    sources, targets = load_pairs(args.train_records)
    # The seed is set before the tokenizer exists, and all tokenization is done before the
    # parts run: `keras.utils.set_random_seed` (`tf.random.set_seed`) and
    # `keras.backend.clear_session` clear TF's eager kernel cache, which deletes the
    # tensorflow-text SentencePiece op's resource ("Resource ... SentencepieceOp ... does not
    # exist" on the next tokenize call).
    keras.utils.set_random_seed(args.seed)
    start = time.perf_counter()
    tokenizer = sentence_piece.SentencePieceTokenizer.learn(sources + targets,
                                                            args.vocabulary_size)
    preprocessor = Seq2SeqPreprocessor(tokenizer, args.source_length, args.target_length)
    vocabulary_size = preprocessor.vocabulary_size
    learn_s = time.perf_counter() - start
    print(f"SentencePiece: vocabulary {vocabulary_size:,} learned on {len(sources):,} en + es "
          f"train pairs in {learn_s:.1f} s", flush=True)

    generation, train_rows, meta = [], [], {"vocabulary_size": vocabulary_size,
                                            "sentencepiece_s": round(learn_s, 1)}
    if "generate" in parts:
        rows = max(int(b) for b in args.batch_sizes.split(",") if b)
        generate_sources = generation_sources(preprocessor, sources, rows, args.source_tokens)
    if "train" in parts:
        from kerlm.data.batching import sequence_ids  # what Seq2SeqTask tokenizes with
        source_ids = sequence_ids(preprocessor, sources, target=False)
        label_ids = sequence_ids(preprocessor, targets, target=True)
        meta["tokenize_s"] = round(time.perf_counter() - start - learn_s, 1)
    if "generate" in parts:
        generation, meta["generate"] = run_generation(args, vocabulary_size, generate_sources)
    if "train" in parts:
        train_rows, meta["train"] = run_training(args, vocabulary_size, source_ids, label_ids)
    print_tables(args, generation, train_rows, meta.get("train"))
    meta["total_s"] = round(time.perf_counter() - total, 1)
    print(f"\ntotal {meta['total_s']:.0f} s")
    result = {"benchmark": "seq2seq_speed", "config": vars(args), "meta": meta,
              "generation": generation, "training": train_rows}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
