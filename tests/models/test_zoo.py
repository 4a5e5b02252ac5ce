"""The model zoo: decoder and encoder-decoder backbones, presets, cached decoding."""

import keras
import numpy as np
import pytest

from kerlm import models

VARIANTS = {
    "gpt2_like": {},
    "llama_like": dict(position="rotary", norm="rms_norm", gated_ffn=True, activation="silu",
                       num_key_value_heads=2, use_bias=False),
    "t5_like": dict(position="relative", norm="rms_norm", use_bias=False, scale_scores=False,
                    activation="relu"),
    "vaswani_like": dict(position="sinusoidal", norm_first=False, scale_embeddings=True,
                         activation="relu"),
}
DIMS = dict(vocabulary_size=60, num_layers=2, hidden_dim=16, num_heads=4, intermediate_dim=32,
            dropout=0.0)


def _np(x):
    return keras.ops.convert_to_numpy(x)


def _tokens(shape, seed=0):
    return np.random.default_rng(seed).integers(1, 60, shape).astype("int32")


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_decoder_cached_decoding_equals_full_forward(variant):
    backbone = models.DecoderBackbone(**DIMS, **VARIANTS[variant])
    tokens = _tokens((2, 7))
    full = _np(backbone({"token_ids": tokens, "padding_mask": np.ones_like(tokens)}))
    cache = backbone.init_cache(2, 10)
    hidden, cache = backbone.call_with_cache(tokens[:, :3], cache, 0)  # prefill 3 tokens
    steps = [_np(hidden)]
    for i in range(3, 7):
        hidden, cache = backbone.call_with_cache(tokens[:, i:i + 1], cache, i)
        steps.append(_np(hidden))
    assert np.abs(np.concatenate(steps, axis=1) - full).max() <= 1e-5


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_encoder_decoder_cached_decoding_equals_full_forward(variant):
    backbone = models.EncoderDecoderBackbone(**DIMS, **VARIANTS[variant])
    source, target = _tokens((2, 5), 1), _tokens((2, 6), 2)
    source_mask = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], "int32")
    out = backbone({"encoder_token_ids": source, "encoder_padding_mask": source_mask,
                    "decoder_token_ids": target, "decoder_padding_mask": np.ones_like(target)})
    encoded = backbone.encode(source, source_mask)
    assert np.abs(_np(encoded) - _np(out["encoder_sequence_output"])).max() <= 1e-5
    self_cache, cross_cache = backbone.init_cache(encoded, 8)
    steps = []
    for i in range(6):
        hidden, self_cache = backbone.call_decoder_with_cache(
            target[:, i:i + 1], self_cache, cross_cache, i, source_mask)
        steps.append(_np(hidden))
    assert np.abs(np.concatenate(steps, 1) - _np(out["decoder_sequence_output"])).max() <= 1e-5


def test_decoder_padding_and_future_do_not_leak():
    backbone = models.DecoderBackbone(**DIMS)
    tokens = _tokens((1, 6))
    mask = np.array([[1, 1, 1, 1, 0, 0]], "int32")
    a = _np(backbone({"token_ids": tokens, "padding_mask": mask}))
    other = tokens.copy()
    other[:, 3:] = 7
    b = _np(backbone({"token_ids": other, "padding_mask": mask}))
    np.testing.assert_allclose(a[:, :3], b[:, :3], atol=1e-5)


@pytest.mark.parametrize("cls,variant", [(models.DecoderBackbone, "llama_like"),
                                         (models.EncoderDecoderBackbone, "t5_like"),
                                         (models.EncoderDecoderBackbone, "gpt2_like")])
def test_keras_round_trip_identical_outputs(tmp_path, cls, variant):
    backbone = cls(**DIMS, **VARIANTS[variant])
    if cls is models.DecoderBackbone:
        inputs = {"token_ids": _tokens((2, 5)), "padding_mask": np.ones((2, 5), "int32")}
    else:
        inputs = {"encoder_token_ids": _tokens((2, 5)), "encoder_padding_mask": np.ones((2, 5)),
                  "decoder_token_ids": _tokens((2, 3), 3), "decoder_padding_mask": np.ones((2, 3))}
    path = str(tmp_path / "backbone.keras")
    backbone.save(path)
    restored = keras.saving.load_model(path)
    assert type(restored) is cls and restored.get_config() == backbone.get_config()
    for a, b in zip(keras.tree.flatten(backbone(inputs)), keras.tree.flatten(restored(inputs))):
        np.testing.assert_array_equal(_np(a), _np(b))


def test_every_generic_preset_is_listed_and_builds_tiny():
    names = models.list_presets()
    for kind in ("encoder", "decoder", "encoder_decoder"):
        assert {f"{kind}_tiny", f"{kind}_small", f"{kind}_base"} <= set(names)
    assert {"bert_base", "gpt2_small", "bart_base", "t5_small"} <= set(names)
    decoder = models.Backbone.from_preset("decoder_tiny", vocabulary_size=50)
    assert isinstance(decoder, models.DecoderBackbone) and decoder.hidden_dim == 128
    seq2seq = models.Backbone.from_preset("encoder_decoder_tiny", vocabulary_size=50)
    assert isinstance(seq2seq, models.EncoderDecoderBackbone) and len(seq2seq.decoder_layers) == 2
    with pytest.raises(ValueError, match="builds a EncoderBackbone, not a DecoderBackbone"):
        models.DecoderBackbone.from_preset("encoder_tiny", vocabulary_size=50)


def _keras_hub_twin(name):
    import keras_hub
    return {
        "bert_base": lambda: keras_hub.models.BertBackbone(
            vocabulary_size=30522, num_layers=12, num_heads=12, hidden_dim=768,
            intermediate_dim=3072, max_sequence_length=512, num_segments=2),
        "gpt2_small": lambda: keras_hub.models.GPT2Backbone(
            vocabulary_size=50257, num_layers=12, num_heads=12, hidden_dim=768,
            intermediate_dim=3072, max_sequence_length=1024),
        "bart_base": lambda: keras_hub.models.BartBackbone(
            vocabulary_size=50265, num_layers=6, num_heads=12, hidden_dim=768,
            intermediate_dim=3072, max_sequence_length=1024),
        "t5_small": lambda: keras_hub.models.T5Backbone(
            vocabulary_size=32128, num_layers=6, num_heads=8, hidden_dim=512,
            intermediate_dim=2048, key_value_dim=64, activation="relu",
            use_gated_activation=False, tie_embedding_weights=True),
    }[name]()


@pytest.mark.slow
@pytest.mark.parametrize("name,expected", [("bert_base", 109_482_240), ("gpt2_small", 124_439_808),
                                           ("bart_base", 139_417_344), ("t5_small", 60_506_624)])
def test_architecture_presets_match_keras_hub_parameter_counts(name, expected):
    ours = models.Backbone.from_preset(name).count_params()
    assert ours == _keras_hub_twin(name).count_params() == expected
    keras.backend.clear_session()


def test_mixed_precision_forward_keeps_float32_attention_stable():
    backbone = models.EncoderDecoderBackbone(**DIMS, **VARIANTS["t5_like"], dtype="mixed_bfloat16")
    out = backbone({"encoder_token_ids": _tokens((1, 4)), "encoder_padding_mask": np.ones((1, 4)),
                    "decoder_token_ids": _tokens((1, 3)), "decoder_padding_mask": np.ones((1, 3))})
    assert keras.backend.standardize_dtype(out["decoder_sequence_output"].dtype) == "bfloat16"
    assert np.isfinite(_np(keras.ops.cast(out["decoder_sequence_output"], "float32"))).all()
    assert keras.backend.standardize_dtype(backbone.token_embedding.embeddings.dtype) == "float32"
