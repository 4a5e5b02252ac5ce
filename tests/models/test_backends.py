"""The backbones give the same numbers on the JAX backend as on TensorFlow, and generation
(greedy and beam search, XLA-compiled, for a causal and a seq2seq LM, the latter also with
copy attention) the same tokens.

This process (TensorFlow backend) builds one tiny model of each backbone kind, saves it as
`.keras` and computes a padded forward pass and, for the decoders, a token-by-token cached
decode (eager, and compiled as generation runs it: `tf.function` / `jax.jit`). One subprocess with `KERAS_BACKEND=jax` runs this file as a script: it loads the
same `.keras` files, computes the same things (with the same `outputs` function) and writes
them to an `.npz` that is compared here within 1e-5.
"""

import os
import subprocess
import sys

import keras
import numpy as np

from kerlm import models

TOLERANCE = 1e-5
DIMS = dict(vocabulary_size=64, num_layers=2, hidden_dim=16, num_heads=4, intermediate_dim=32,
            max_sequence_length=32)
T5_LIKE = dict(norm="rms_norm", norm_first=True, use_bias=False, scale_scores=False,
               position="relative", activation="relu", layer_norm_epsilon=1e-6)
CASES = {
    "encoder": ("EncoderBackbone", dict(num_segments=2)),
    "encoder_t5_like": ("EncoderBackbone", T5_LIKE),
    "decoder": ("DecoderBackbone", {}),
    "decoder_llama_like": ("DecoderBackbone", dict(
        position="rotary", norm="rms_norm", gated_ffn=True, activation="silu",
        num_key_value_heads=1, use_bias=False, layer_norm_epsilon=1e-6)),
    "encoder_decoder": ("EncoderDecoderBackbone", dict(num_decoder_layers=1)),
    "encoder_decoder_t5_like": ("EncoderDecoderBackbone", T5_LIKE),
    "encoder_decoder_transformer_like": ("EncoderDecoderBackbone", dict(
        position="sinusoidal", scale_embeddings=True, activation="relu")),
}
COPY = "encoder_decoder_copy"  # saved as a whole Seq2SeqLM(copy_attention=True), not a backbone
CASES[COPY] = ("EncoderDecoderBackbone", dict(num_decoder_layers=1))
GENERATE = {"decoder", "encoder_decoder", COPY}  # cases that also run generate (greedy, beam)

# Right-padded batches of two; the second example is shorter.
TOKENS = np.array([[2, 9, 10, 11, 12, 3], [2, 13, 14, 3, 0, 0]], "int32")
MASK = (TOKENS != 0).astype("int32")
DECODER_TOKENS = np.array([[2, 20, 21, 22, 3], [2, 23, 3, 0, 0]], "int32")
DECODER_MASK = (DECODER_TOKENS != 0).astype("int32")


def _numpy(x):
    return keras.ops.convert_to_numpy(x).astype("float32")


def _compiled(fn):
    """`fn` compiled the way generation loops run it: `jax.jit` or `tf.function`."""
    if keras.backend.backend() == "jax":
        import jax
        return jax.jit(fn)
    import tensorflow as tf
    return tf.function(fn)


def _decode(step, tokens, cache, *args):
    """Feed `tokens` one at a time to `step(token, cache, *args, index)`, eagerly and compiled.

    Returns the eager hidden states, the final cache and the compiled step's hidden states
    (with the position as a traced int32 scalar).
    """
    result = {}
    for key, fn, index in [("cached", step, int), ("compiled", _compiled(step), np.int32)]:
        state, hidden = cache, []
        for i in range(tokens.shape[1]):
            h, state = fn(tokens[:, i:i + 1], state, *args, index(i))
            hidden.append(_numpy(h))
        result[key] = np.concatenate(hidden, axis=1)
        if key == "cached":
            result["cache"] = np.stack([_numpy(layer) for layer in state])
    return result



def generations(backbone):
    """Token ids of XLA-compiled greedy and beam-search generation with a stop token."""
    from kerlm.heads import CausalLM, Seq2SeqLM
    result = {}
    for sampler, options in (("greedy", {}), ("beam", {"beam_width": 3, "length_penalty": 0.6})):
        if isinstance(backbone, models.DecoderBackbone):
            out = CausalLM(backbone).generate({"token_ids": TOKENS[:, :3],
                                               "padding_mask": MASK[:, :3]}, max_length=10,
                                              stop_token_ids=[5], sampler=sampler, **options)
        else:
            head = backbone if isinstance(backbone, Seq2SeqLM) else Seq2SeqLM(backbone)
            out = head.generate({"encoder_token_ids": TOKENS, "encoder_padding_mask": MASK},
                                max_length=8, start_token_id=2, stop_token_ids=[5],
                                sampler=sampler, **options)
        result[f"generate_{sampler}"] = out["token_ids"].astype("float32")
    return result


def outputs(backbone, generate=False):
    """`{name: array}`: the forward pass with padding and, for decoders, a cached decode
    (and with `generate`, generated token ids)."""
    from kerlm.heads import Seq2SeqLM
    if generate:
        return {**outputs(backbone), **generations(backbone)}
    if isinstance(backbone, Seq2SeqLM):  # the copy head's log-probabilities
        return {"log_probs": _numpy(backbone({
            "encoder_token_ids": TOKENS, "encoder_padding_mask": MASK,
            "decoder_token_ids": DECODER_TOKENS, "decoder_padding_mask": DECODER_MASK}))}
    if isinstance(backbone, models.EncoderBackbone):
        inputs = {"token_ids": TOKENS, "padding_mask": MASK}
        if backbone.num_segments:
            inputs["segment_ids"] = (np.arange(TOKENS.shape[1]) >= 3).astype("int32")[None] \
                .repeat(len(TOKENS), axis=0)
        return {name: _numpy(value) for name, value in backbone(inputs).items()}
    if isinstance(backbone, models.DecoderBackbone):
        result = {"forward": _numpy(backbone({"token_ids": TOKENS, "padding_mask": MASK}))}
        cache = backbone.init_cache(len(TOKENS), TOKENS.shape[1] + 2)
        return {**result, **_decode(backbone.call_with_cache, TOKENS, cache)}
    result = {name: _numpy(value) for name, value in backbone({
        "encoder_token_ids": TOKENS, "encoder_padding_mask": MASK,
        "decoder_token_ids": DECODER_TOKENS, "decoder_padding_mask": DECODER_MASK}).items()}
    encoded = backbone.encode(TOKENS, MASK)
    result["encode"] = _numpy(encoded)
    self_cache, cross_cache = backbone.init_cache(encoded, DECODER_TOKENS.shape[1] + 1)

    def step(token_ids, self_cache, cross_cache, index):
        return backbone.call_decoder_with_cache(token_ids, self_cache, cross_cache, index,
                                                encoder_padding_mask=MASK)

    return {**result, **_decode(step, DECODER_TOKENS, self_cache, cross_cache)}


def _run_saved_models(directory):
    """Load every `NAME.keras` in `directory` and write `NAME.npz` of its outputs."""
    for name in CASES:
        backbone = keras.saving.load_model(os.path.join(directory, f"{name}.keras"))
        np.savez(os.path.join(directory, f"{name}.npz"),
                 **outputs(backbone, generate=name in GENERATE))


def test_backbones_match_between_tensorflow_and_jax(tmp_path):
    assert keras.backend.backend() == "tensorflow"
    expected = {}
    for name, (cls, options) in CASES.items():
        keras.utils.set_random_seed(len(name))
        backbone = getattr(models, cls)(**{**DIMS, "dropout": 0.0, **options})
        if name == COPY:
            from kerlm.heads import Seq2SeqLM
            backbone = Seq2SeqLM(backbone, copy_attention=True)
        backbone.save(str(tmp_path / f"{name}.keras"))
        expected[name] = outputs(backbone, generate=name in GENERATE)

    result = subprocess.run(
        [sys.executable, os.path.abspath(__file__), str(tmp_path)], capture_output=True,
        text=True, timeout=300,
        env={**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu",
             "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == 0, result.stdout + result.stderr[-4000:]
    assert "backend jax" in result.stdout, result.stdout

    differences = {}
    for name, tf_outputs in expected.items():
        jax_outputs = dict(np.load(tmp_path / f"{name}.npz"))
        assert jax_outputs.keys() == tf_outputs.keys(), name
        for key, value in tf_outputs.items():
            assert jax_outputs[key].shape == value.shape, (name, key)
            differences[f"{name}.{key}"] = float(np.max(np.abs(jax_outputs[key] - value)))
        if "cached" in tf_outputs:  # the cached decode is the forward pass, on both backends
            full = tf_outputs.get("forward", tf_outputs.get("decoder_sequence_output"))
            mask = (MASK if "forward" in tf_outputs else DECODER_MASK).astype(bool)
            for key in ("cached", "compiled"):
                np.testing.assert_allclose(tf_outputs[key][mask], full[mask], atol=TOLERANCE,
                                           err_msg=f"{name}.{key}")
    print("max |TF - JAX|:", {k: f"{v:.1e}" for k, v in differences.items()})
    bad = {k: v for k, v in differences.items() if not v <= TOLERANCE}
    assert not bad, f"TF and JAX differ by more than {TOLERANCE}: {bad}"


if __name__ == "__main__":  # the JAX side, run by the test above
    print("backend", keras.backend.backend())
    _run_saved_models(sys.argv[1])
