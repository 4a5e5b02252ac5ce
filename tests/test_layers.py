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
