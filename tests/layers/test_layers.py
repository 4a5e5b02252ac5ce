"""Layer shapes, masking semantics and serialization."""

import keras
import numpy as np
import pytest

from kerlm import layers


def test_attention_shapes_self_and_cross():
    attention = layers.MultiHeadAttention(num_heads=4, key_dim=8)
    out = attention(np.random.rand(2, 5, 16).astype("float32"))
    assert tuple(out.shape) == (2, 5, 16)
    cross = layers.MultiHeadAttention(num_heads=2, key_dim=8)
    out = cross(np.random.rand(2, 5, 16).astype("float32"),
                key_value=np.random.rand(2, 7, 12).astype("float32"))
    assert tuple(out.shape) == (2, 5, 16)
    # self-attention has one fused projection, cross-attention separate query and key/value
    assert [w.path.split("/")[-2] for w in attention.weights if "kernel" in w.path] == \
        ["qkv", "attention_output"]
    assert [w.path.split("/")[-2] for w in cross.weights if "kernel" in w.path] == \
        ["query", "key_value", "attention_output"]


def test_padded_positions_do_not_change_real_outputs():
    keras.utils.set_random_seed(0)
    block = layers.TransformerEncoder(num_heads=2, intermediate_dim=32)
    x = np.random.rand(1, 6, 16).astype("float32")
    mask = np.array([[1, 1, 1, 1, 0, 0]])
    y = x.copy()
    y[:, 4:] = np.random.rand(1, 2, 16) * 100  # garbage in the padding
    a = keras.ops.convert_to_numpy(block(x, padding_mask=mask))
    b = keras.ops.convert_to_numpy(block(y, padding_mask=mask))
    np.testing.assert_allclose(a[:, :4], b[:, :4], atol=1e-5)
    # without the mask the garbage does leak in
    c = keras.ops.convert_to_numpy(block(y))
    assert np.abs(a[:, :4] - c[:, :4]).max() > 1e-3


def test_causal_mask_ignores_the_future():
    attention = layers.MultiHeadAttention(num_heads=2, key_dim=4)
    x = np.random.rand(1, 5, 8).astype("float32")
    y = x.copy()
    y[:, 3:] += 10.0
    a = keras.ops.convert_to_numpy(attention(x, use_causal_mask=True))
    b = keras.ops.convert_to_numpy(attention(y, use_causal_mask=True))
    np.testing.assert_allclose(a[:, :3], b[:, :3], atol=1e-5)
    assert np.abs(a[:, 3:] - b[:, 3:]).max() > 1e-3


def test_merged_mask_values():
    mask = layers.merge_padding_and_attention_mask(3, padding_mask=np.array([[1, 1, 0]]),
                                                   use_causal_mask=True)
    assert keras.ops.convert_to_numpy(mask).astype(int).tolist() == \
        [[[1, 0, 0], [1, 1, 0], [1, 1, 0]]]


@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_block_pre_and_post_ln(norm_first):
    block = layers.TransformerEncoder(num_heads=2, intermediate_dim=32, norm_first=norm_first)
    out = keras.ops.convert_to_numpy(block(np.random.rand(2, 3, 16).astype("float32") * 5))
    if norm_first:  # the residual stream is not normalized
        assert np.abs(out.std(-1) - 1).max() > 0.1
    else:  # post-LN ends with a LayerNorm: unit variance per position
        np.testing.assert_allclose(out.std(-1), 1.0, atol=1e-2)


def test_dropout_only_in_training():
    block = layers.TransformerEncoder(num_heads=2, intermediate_dim=32, dropout=0.5)
    x = np.random.rand(2, 3, 16).astype("float32")
    inference = [keras.ops.convert_to_numpy(block(x, training=False)) for _ in range(2)]
    np.testing.assert_array_equal(*inference)
    train = [keras.ops.convert_to_numpy(block(x, training=True)) for _ in range(2)]
    assert np.abs(train[0] - train[1]).max() > 1e-3


def test_layers_round_trip_through_config():
    for layer in [layers.MultiHeadAttention(2, 4, dropout=0.1),
                  layers.TransformerEncoder(2, 32, norm_first=True, activation="relu"),
                  layers.TransformerDecoder(2, 32, cross_attention=True, norm="rms_norm",
                                            gated=True, num_key_value_heads=1,
                                            rotary_max_wavelength=500.0),
                  layers.FeedForward(16, activation="silu", gated=True, use_bias=False),
                  layers.RelativePositionBias(4, bidirectional=False),
                  layers.RMSNormalization(epsilon=1e-5),
                  layers.SinusoidalPositionEncoding(),
                  layers.PositionEmbedding(10)]:
        clone = layer.__class__.from_config(layer.get_config())
        assert clone.get_config() == layer.get_config()


def _np(x):
    return keras.ops.convert_to_numpy(x)


def _reference_attention(q, k, v, mask):
    """Plain numpy attention of [b, q, h, d] over [b, k, kv_heads, d] with a [b, q, k] mask."""
    groups = q.shape[2] // k.shape[2]
    k, v = np.repeat(k, groups, axis=2), np.repeat(v, groups, axis=2)
    scores = np.einsum("bqhd,bkhd->bhqk", q, k) / np.sqrt(q.shape[-1])
    scores = np.where(mask[:, None], scores, -1e9)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    return np.einsum("bhqk,bkhd->bqhd", weights, v)


@pytest.mark.parametrize("kv_heads", [1, 2, 4])
def test_grouped_query_attention_matches_a_numpy_reference(kv_heads):
    layer = layers.MultiHeadAttention(num_heads=4, key_dim=3, num_key_value_heads=kv_heads)
    x = np.random.default_rng(0).normal(size=(2, 5, 12)).astype("float32")
    padding = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    out = _np(layer(x, padding_mask=padding, use_causal_mask=True))
    q, k, v = (_np(t) for t in layer._project(x, None))
    assert k.shape[2] == kv_heads and q.shape[2] == 4
    mask = np.tril(np.ones((5, 5), bool))[None] & padding[:, None, :].astype(bool)
    expected = _np(layer.output_dense(_reference_attention(q, k, v, mask)))
    np.testing.assert_allclose(out, expected, atol=1e-5)
    if kv_heads < 4:  # fewer key/value heads => fewer key/value parameters
        assert layer.kv_dense.count_params() == 2 * (12 * kv_heads * 3 + kv_heads * 3)
    else:  # plain multi-head self-attention uses one fused projection
        assert hasattr(layer, "qkv_dense") and not hasattr(layer, "kv_dense")


def test_cached_attention_equals_causal_attention_token_by_token():
    layer = layers.MultiHeadAttention(num_heads=2, key_dim=4, rotary_max_wavelength=100.0)
    x = np.random.default_rng(1).normal(size=(2, 6, 8)).astype("float32")
    full = _np(layer(x, use_causal_mask=True))
    cache = np.zeros((2, 2, 6, 2, 4), "float32")
    out, cache = layer(x[:, :2], cache=cache, cache_index=0, use_causal_mask=True)
    steps = [_np(out)]
    for i in range(2, 6):
        out, cache = layer(x[:, i:i + 1], cache=cache, cache_index=i, use_causal_mask=True)
        steps.append(_np(out))
    np.testing.assert_allclose(np.concatenate(steps, axis=1), full, atol=1e-5)


def test_rotary_matches_keras_hub_rotary_embedding():
    import keras_hub
    x = np.random.default_rng(2).normal(size=(2, 7, 3, 8)).astype("float32")
    theirs = keras_hub.layers.RotaryEmbedding(max_wavelength=10000)
    np.testing.assert_allclose(_np(layers.apply_rotary(x, 5)), _np(theirs(x, start_index=5)),
                               atol=1e-5)


def test_relative_position_buckets_match_keras_hub_t5():
    from keras_hub.src.models.t5.t5_multi_head_attention import T5MultiHeadAttention
    relative = np.arange(-300, 300, dtype="int32")[None, :]
    for bidirectional in (True, False):
        ours = layers.RelativePositionBias(4, bidirectional=bidirectional)
        theirs = T5MultiHeadAttention._relative_position_bucket(
            keras.ops.convert_to_tensor(relative), bidirectional=bidirectional)
        np.testing.assert_array_equal(_np(ours.bucket(keras.ops.convert_to_tensor(relative))),
                                      _np(theirs))


def test_rms_norm_matches_keras_hub_t5_layer_norm():
    from keras_hub.src.models.t5.t5_layer_norm import T5LayerNorm
    x = np.random.default_rng(3).normal(size=(2, 3, 8)).astype("float32") * 4
    np.testing.assert_allclose(_np(layers.RMSNormalization(1e-6)(x)), _np(T5LayerNorm(1e-6)(x)),
                               atol=1e-5)
    assert layers.normalization("layer_norm", 1e-5).__class__.__name__ == "LayerNormalization"
    with pytest.raises(ValueError, match="rms_norm"):
        layers.normalization("batch_norm", 1e-5)


@pytest.mark.parametrize("activation,gated", [("relu", False), ("gelu", True), ("silu", True),
                                              ("gelu_approximate", False)])
def test_feed_forward_variants(activation, gated):
    ffn = layers.FeedForward(6, activation=activation, gated=gated, use_bias=False)
    x = np.random.default_rng(4).normal(size=(2, 3, 4)).astype("float32")
    out = _np(ffn(x))
    act = {"relu": lambda h: np.maximum(h, 0), "silu": lambda h: h / (1 + np.exp(-h)),
           "gelu": lambda h: _np(keras.activations.gelu(h)),
           "gelu_approximate": lambda h: _np(keras.activations.gelu(h, approximate=True))}
    h = x @ _np(ffn.inner.kernel)
    h = act[activation](h[..., :6]) * h[..., 6:] if gated else act[activation](h)
    np.testing.assert_allclose(out, h @ _np(ffn.outer.kernel), atol=1e-5)
    assert ffn.count_params() == 4 * 6 * (2 if gated else 1) + 6 * 4
    with pytest.raises(ValueError, match="activation must be one of"):
        layers.FeedForward(6, activation="swish2")


def test_decoder_block_ignores_encoder_padding_and_the_future():
    block = layers.TransformerDecoder(num_heads=2, intermediate_dim=16, cross_attention=True)
    rng = np.random.default_rng(5)
    x, memory = rng.normal(size=(1, 4, 8)).astype("float32"), rng.normal(size=(1, 5, 8)).astype("float32")
    mask = np.array([[1, 1, 1, 0, 0]])
    garbage = memory.copy()
    garbage[:, 3:] = 100.0
    a = _np(block(x, encoder_output=memory, encoder_padding_mask=mask))
    b = _np(block(x, encoder_output=garbage, encoder_padding_mask=mask))
    np.testing.assert_allclose(a, b, atol=1e-5)
    changed = x.copy()
    changed[:, 2:] = 50.0
    c = _np(block(changed, encoder_output=memory, encoder_padding_mask=mask))
    np.testing.assert_allclose(a[:, :2], c[:, :2], atol=1e-5)  # causal: prefix unchanged
    assert np.abs(a[:, 2:] - c[:, 2:]).max() > 1e-3


@pytest.mark.parametrize("gate_bias", [-40.0, 40.0])
def test_copy_distribution_mixes_copying_and_generating(gate_bias):
    """With a zero query every real source position gets equal attention: copying puts 2/3 on
    the token that appears twice and 1/3 on the other (padding gets nothing); generating is
    the vocabulary softmax."""
    layer = layers.CopyDistribution(hidden_dim=4)
    layer.build()
    layer.query_dense.kernel.assign(np.zeros((4, 4)))
    layer.gate_dense.bias.assign([gate_bias])
    layer.gate_dense.kernel.assign(np.zeros((4, 1)))
    logits = np.log(np.array([[[0.1, 0.2, 0.3, 0.4, 0.0 + 1e-9]]], "float32"))
    hidden = np.ones((1, 1, 4), "float32")
    keys = layer.keys(np.random.default_rng(0).normal(size=(1, 4, 4)).astype("float32"))
    out = layer(logits, hidden, keys, np.array([[3, 1, 3, 0]]), np.array([[1, 1, 1, 0]]))
    probs = np.exp(keras.ops.convert_to_numpy(out))[0, 0]
    expected = [0, 1 / 3, 0, 2 / 3, 0] if gate_bias < 0 else [0.1, 0.2, 0.3, 0.4, 0]
    np.testing.assert_allclose(probs, expected, atol=1e-6)
