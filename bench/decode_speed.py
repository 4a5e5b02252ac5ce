"""KV-cached greedy decoding speed: kerlm `CausalLM.generate` vs keras-hub `GPT2CausalLM.generate`.

Both models are GPT-2-like with identical dimensions (4 layers, 256 d, 4 heads, ff 1024,
vocabulary 8192, 512 positions; random weights, fp32) and decode greedily with a key/value
cache, from token-id prompts (no preprocessor, no stop token: every call generates exactly
`--new_tokens` tokens per sequence):

- kerlm: `CausalLM(backbone).generate({"token_ids", "padding_mask"} of shape
  [batch, prompt_len], max_length=prompt_len + new_tokens, jit_compile=...)`: one prefill
  call over the prompt, then one token per step.
- keras-hub: `GPT2CausalLM(backbone, preprocessor=None)`, `compile(sampler="greedy",
  jit_compile=...)`, `generate({"token_ids", "padding_mask"} padded to max_length,
  stop_token_ids=None)`: keras-hub's documented way to generate from token ids (the prompt
  padded to the output length, padding_mask 1 on the prompt); its prefill runs over all
  max_length positions.

Part 1, throughput: batch 1 and 8, XLA on and off, `--new_tokens` (64) new tokens after a
`--prompt_len` (16) token prompt; tok/s = batch × new tokens / seconds per `generate` call
(host-side input/output conversion included, on both sides). Each configuration is first
called once (tracing + compilation: reported separately as "first call"), then timed
`--repeats` times, alternating between kerlm and keras-hub; the fastest call counts.

Part 2, per-token cost: kerlm (and keras-hub for reference) at batch 1 for 32, 64, 128 and
256 new tokens (same prompt), with XLA and without; ms/token = seconds per call / new tokens
(prefill included), its growth from the shortest to the longest output, and the marginal
cost of the last tokens ((t(256) − t(128)) / 128). With a cache it must stay roughly flat;
without one each step would rerun the whole prefix, so it would grow about linearly.

Part 3 (reference): kerlm without a cache (`KerlmNoCache`: one full forward pass per new
token), batch 1, 32 and 256 new tokens, to show what the cache saves.

    python bench/decode_speed.py [--batch_sizes 1,8] [--jit both|on|off] [--lengths 32,64,128,256]
"""

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

DIMS = dict(num_layers=4, hidden_dim=256, num_heads=4, intermediate_dim=1024,
            max_sequence_length=512)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch_sizes", default="1,8")
    parser.add_argument("--jit", default="both", choices=["both", "on", "off"])
    parser.add_argument("--prompt_len", type=int, default=16)
    parser.add_argument("--new_tokens", type=int, default=64)
    parser.add_argument("--lengths", default="32,64,128,256",
                        help="New-token counts of the per-token sweep (batch 1); '' skips it.")
    parser.add_argument("--sweep_models", default="kerlm,keras_hub",
                        help="Models in the per-token sweep.")
    parser.add_argument("--no_cache_lengths", default="32,256",
                        help="New-token counts for the no-cache reference (batch 1, XLA); '' "
                             "skips it.")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--vocabulary_size", type=int, default=8192)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


class Kerlm:
    name = "kerlm"

    def __init__(self, vocabulary_size):
        from kerlm import heads, models
        backbone = models.DecoderBackbone(vocabulary_size=vocabulary_size, dropout=0.0, **DIMS)
        self.model = heads.CausalLM(backbone)
        self.params = backbone.count_params()

    def generate(self, prompt, new_tokens, jit):
        length = prompt.shape[1] + new_tokens
        out = self.model.generate({"token_ids": prompt, "padding_mask": np.ones_like(prompt)},
                                  max_length=length, jit_compile=jit)
        return out["token_ids"]


class KerasHub:
    name = "keras_hub"

    def __init__(self, vocabulary_size):
        import keras_hub
        backbone = keras_hub.models.GPT2Backbone(vocabulary_size=vocabulary_size, dropout=0.0,
                                                 **DIMS)
        self.model = keras_hub.models.GPT2CausalLM(backbone, preprocessor=None)
        self.params = backbone.count_params()
        self.jit = None

    def generate(self, prompt, new_tokens, jit):
        if jit != self.jit:  # compile() resets the cached generate function
            self.model.compile(sampler="greedy", jit_compile=jit)
            self.jit = jit
        batch, prompt_len = prompt.shape
        token_ids = np.zeros((batch, prompt_len + new_tokens), "int32")
        token_ids[:, :prompt_len] = prompt
        out = self.model.generate({"token_ids": token_ids, "padding_mask": token_ids != 0},
                                  stop_token_ids=None)
        return out["token_ids"]


class KerlmNoCache:
    """Reference: kerlm greedy decoding without a cache, one full forward pass per new token.

    Each step runs the backbone over the whole `[batch, max_length]` buffer (the causal mask
    keeps later positions out; a fixed shape avoids retracing per length) and takes the logits
    of the last real position; a prefix-only loop would do about half the work on average.
    """

    name = "kerlm_no_cache"

    def __init__(self, kerlm):
        self.backbone = kerlm.model.backbone
        self.functions = {}

    def generate(self, prompt, new_tokens, jit):
        import tensorflow as tf
        from keras import ops
        if jit not in self.functions:
            def step(ids, position):
                hidden = self.backbone({"token_ids": ids, "padding_mask": ops.ones_like(ids)})
                last = ops.take(hidden, position, axis=1)[:, None]
                return ops.argmax(self.backbone.token_logits(last)[:, 0], axis=-1)
            self.functions[jit] = tf.function(step, jit_compile=jit)
        batch, prompt_len = prompt.shape
        ids = np.zeros((batch, prompt_len + new_tokens), "int32")
        ids[:, :prompt_len] = prompt
        for i in range(prompt_len, prompt_len + new_tokens):
            ids[:, i] = self.functions[jit](ids, np.int32(i - 1)).numpy()
        return ids


def timed(model, prompt, new_tokens, jit):
    start = time.perf_counter()
    out = model.generate(prompt, new_tokens, jit)
    seconds = time.perf_counter() - start
    assert out.shape == (prompt.shape[0], prompt.shape[1] + new_tokens), out.shape
    return seconds


def measure(models, prompt, new_tokens, jit, repeats, label):
    """First-call and best-of-`repeats` seconds per model, alternating between the models."""
    first = {m.name: timed(m, prompt, new_tokens, jit) for m in models}
    times = {m.name: [] for m in models}
    for repeat in range(repeats):
        for m in (models if repeat % 2 == 0 else models[::-1]):
            times[m.name].append(timed(m, prompt, new_tokens, jit))
    rows = []
    for m in models:
        best = min(times[m.name])
        tokens = prompt.shape[0] * new_tokens
        rows.append(dict(model=m.name, batch_size=int(prompt.shape[0]),
                         prompt_len=int(prompt.shape[1]), new_tokens=new_tokens, jit=jit,
                         seconds=round(best, 4),
                         seconds_median=round(float(np.median(times[m.name])), 4),
                         tokens_per_sec=round(tokens / best, 1),
                         ms_per_token=round(best / new_tokens * 1e3, 3),
                         first_call_s=round(first[m.name], 2),
                         compile_s=round(first[m.name] - best, 2)))
        print(f"[{label}] {m.name}: {rows[-1]['tokens_per_sec']:,.0f} tok/s, "
              f"{rows[-1]['ms_per_token']:.2f} ms/step (best of {repeats}; median "
              f"{np.median(times[m.name]):.3f} s); first call {first[m.name]:.1f} s",
              flush=True)
    return rows


def main(argv=None):
    args = parse_args(argv)
    import tensorflow as tf
    import keras
    import keras_hub
    import kerlm
    keras.utils.set_random_seed(args.seed)
    batch_sizes = [int(b) for b in args.batch_sizes.split(",") if b]
    jits = {"both": [True, False], "on": [True], "off": [False]}[args.jit]
    lengths = [int(n) for n in args.lengths.split(",") if n]
    print(f"kerlm from {os.path.dirname(kerlm.__file__)}; keras-hub {keras_hub.__version__}; "
          f"TensorFlow {tf.__version__}, Keras {keras.__version__}, {os.cpu_count()} CPUs")
    models = [Kerlm(args.vocabulary_size), KerasHub(args.vocabulary_size)]
    print("backbone params: " + ", ".join(f"{m.name} {m.params:,}" for m in models), flush=True)
    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()

    throughput = []
    for jit in jits:
        for batch in batch_sizes:
            prompt = rng.integers(4, args.vocabulary_size, (batch, args.prompt_len), "int32")
            throughput += measure(models, prompt, args.new_tokens, jit, args.repeats,
                                  f"b{batch} jit={jit}")
    by_key = {(r["model"], r["batch_size"], r["jit"]): r for r in throughput}
    for r in throughput:
        hub = by_key[("keras_hub", r["batch_size"], r["jit"])]
        r["ratio_vs_keras_hub"] = round(r["tokens_per_sec"] / hub["tokens_per_sec"], 3)

    sweep = []
    sweep_models = [m for m in models if m.name in args.sweep_models.split(",")]
    prompt = rng.integers(4, args.vocabulary_size, (1, args.prompt_len), "int32")
    for jit in jits:
        for n in lengths:
            sweep += measure(sweep_models, prompt, n, jit, args.repeats, f"sweep jit={jit} n={n}")
    growth = []
    for jit in jits:
        for m in sweep_models:
            points = sorted((r["new_tokens"], r["seconds"]) for r in sweep
                            if r["model"] == m.name and r["jit"] == jit)
            if len(points) >= 2:
                (n0, t0), (n1, t1) = points[0], points[-1]
                (m0, u0) = points[-2]
                growth.append(dict(
                    model=m.name, jit=jit, ms_per_token_first=round(t0 / n0 * 1e3, 3),
                    ms_per_token_last=round(t1 / n1 * 1e3, 3),
                    growth=round((t1 / n1) / (t0 / n0), 3),
                    marginal_ms_per_token_last=round((t1 - u0) / (n1 - m0) * 1e3, 3)))
    no_cache = []
    if args.no_cache_lengths:
        reference = KerlmNoCache(models[0])
        jit = jits[0]
        for n in [int(n) for n in args.no_cache_lengths.split(",") if n]:
            no_cache += measure([reference], prompt, n, jit, 2, f"no cache jit={jit} n={n}")

    print("\nThroughput (greedy, KV cache, prompt "
          f"{args.prompt_len} + {args.new_tokens} new tokens):")
    print(f"{'model':10} {'batch':>5} {'XLA':>5} {'tok/s':>9} {'ms/step':>8} "
          f"{'kerlm/hub':>9} {'first call s':>12}")
    for r in throughput:
        print(f"{r['model']:10} {r['batch_size']:5d} {str(r['jit']):>5} "
              f"{r['tokens_per_sec']:9,.0f} {r['ms_per_token']:8.2f} "
              f"{r['ratio_vs_keras_hub']:9.2f} {r['first_call_s']:12.1f}")
    if sweep:
        print("\nPer-token cost, batch 1 (ms per generated token = call time / new tokens):")
        names = [m.name for m in sweep_models]
        print(f"{'XLA':>5} {'new':>5} " + " ".join(f"{n + ' ms/tok':>17}" for n in names))
        for jit in jits:
            for n in lengths:
                cells = [next(r for r in sweep if r["model"] == name and r["jit"] == jit
                              and r["new_tokens"] == n)["ms_per_token"] for name in names]
                print(f"{str(jit):>5} {n:5d} " + " ".join(f"{c:17.2f}" for c in cells))
        for g in growth:
            print(f"{g['model']} XLA={g['jit']}: {g['ms_per_token_first']:.2f} → "
                  f"{g['ms_per_token_last']:.2f} ms/token (× {g['growth']:.2f}); the last "
                  f"tokens cost {g['marginal_ms_per_token_last']:.2f} ms each (marginal)")
    if no_cache:
        print("Without a cache (kerlm, full forward per token, batch 1, XLA="
              f"{no_cache[0]['jit']}): " + ", ".join(
                  f"{r['new_tokens']} tokens {r['ms_per_token']:.2f} ms/token" for r in no_cache)
              + f" (× {no_cache[-1]['ms_per_token'] / no_cache[0]['ms_per_token']:.1f})")
    print(f"\ntotal {time.perf_counter() - start:.0f} s")
    print(json.dumps({"benchmark": "decode_speed", "config": vars(args),
                      "throughput": throughput, "per_token": sweep, "per_token_growth": growth,
                      "no_cache_reference": no_cache}))


if __name__ == "__main__":
    main()
