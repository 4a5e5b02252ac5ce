"""The causal LM head: saving, and KV-cached generation against full forward passes."""

import keras
import numpy as np
import pytest

from kerlm import heads, models

PROMPTS = {"token_ids": np.array([[5, 6, 7, 8, 9], [10, 11, 0, 0, 0], [12, 13, 14, 0, 0]],
                                 "int32"),
           "padding_mask": np.array([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 1, 1, 0, 0]],
                                    "int32")}
MAX_LENGTH = 14


def _np(x):
    return keras.ops.convert_to_numpy(x)


def _dtype(x):
    return keras.backend.standardize_dtype(x.dtype)


@pytest.fixture(scope="module")
def lm():
    keras.utils.set_random_seed(3)
    backbone = models.DecoderBackbone(vocabulary_size=97, num_layers=2, hidden_dim=16,
                                      num_heads=2, intermediate_dim=32, max_sequence_length=32)
    # larger random weights than the 0.02 initializer, so greedy continuations vary
    rng = np.random.default_rng(0)
    for w in backbone.weights:
        if len(w.shape) > 1:
            w.assign(rng.normal(0.0, 0.4, size=w.shape).astype("float32"))
    return heads.CausalLM(backbone)


def greedy_without_cache(lm, prompts, max_length):
    """Greedy continuation by running the full model on the whole prefix at every step."""
    rows = []
    for ids, mask in zip(prompts["token_ids"], prompts["padding_mask"]):
        sequence = [int(t) for t in ids[mask.astype(bool)]]
        while len(sequence) < max_length:
            logits = _np(lm({"token_ids": np.array([sequence], "int32"),
                             "padding_mask": np.ones((1, len(sequence)), "int32")}))
            sequence.append(int(logits[0, -1].argmax()))
        rows.append(sequence)
    return np.array(rows)


def test_logits_are_float32_with_tied_weights(lm):
    logits = lm(PROMPTS)
    assert tuple(logits.shape) == (3, 5, 97) and _dtype(logits) == "float32"
    assert {id(w) for w in lm.weights} == {id(w) for w in lm.backbone.weights}
    hidden = lm.backbone(PROMPTS)
    np.testing.assert_allclose(_np(logits), _np(lm.backbone.token_logits(hidden)), atol=1e-6)


def test_keras_round_trip_identical_outputs(lm, tmp_path):
    path = str(tmp_path / "causal_lm.keras")
    lm.save(path)
    restored = keras.saving.load_model(path)
    assert isinstance(restored, heads.CausalLM)
    assert isinstance(restored.backbone, models.DecoderBackbone)
    np.testing.assert_array_equal(_np(lm(PROMPTS)), _np(restored(PROMPTS)))
    np.testing.assert_array_equal(
        lm.generate(PROMPTS, 8, jit_compile=False)["token_ids"],
        restored.generate(PROMPTS, 8, jit_compile=False)["token_ids"])


@pytest.mark.parametrize("jit_compile", [False, True])
def test_greedy_equals_full_forward_argmax(lm, jit_compile):
    """Prompts of different lengths in one right-padded batch; generation runs with the cache."""
    out = lm.generate(PROMPTS, max_length=MAX_LENGTH, jit_compile=jit_compile)
    expected = greedy_without_cache(lm, PROMPTS, MAX_LENGTH)
    assert len({tuple(row[5:]) for row in expected}) > 1  # the rows differ: a real test
    np.testing.assert_array_equal(out["token_ids"], expected)
    assert out["padding_mask"].all()


def test_jit_and_no_jit_give_the_same_tokens(lm):
    a = lm.generate(PROMPTS, max_length=20, jit_compile=False)
    b = lm.generate(PROMPTS, max_length=20, jit_compile=True)
    np.testing.assert_array_equal(a["token_ids"], b["token_ids"])
    np.testing.assert_array_equal(a["padding_mask"], b["padding_mask"])


def test_prompt_without_padding_mask_and_max_length_default(lm):
    ids = PROMPTS["token_ids"][:1]
    assert lm.generate(ids, jit_compile=False)["token_ids"].tolist() == ids.tolist()
    out = lm.generate(ids, max_length=9, jit_compile=False)
    np.testing.assert_array_equal(out["token_ids"],
                                  lm.generate(PROMPTS, 9, jit_compile=False)["token_ids"][:1])


@pytest.mark.parametrize("jit_compile", [False, True])
def test_end_token_stops_each_sequence(lm, jit_compile):
    full = lm.generate(PROMPTS, max_length=MAX_LENGTH, jit_compile=False)["token_ids"]
    # stop on the second token row 0 generates (first generated position is 5)
    stop = int(full[0, 6])
    out = lm.generate(PROMPTS, max_length=MAX_LENGTH, stop_token_ids=[stop],
                      jit_compile=jit_compile, pad_token_id=-1)
    lengths = PROMPTS["padding_mask"].sum(axis=1)
    for row, length in enumerate(lengths):
        hits = [i for i in range(length, MAX_LENGTH) if full[row, i] == stop]
        end = hits[0] + 1 if hits else MAX_LENGTH
        assert end <= 7 or row > 0
        np.testing.assert_array_equal(out["token_ids"][row, :end], full[row, :end])
        assert (out["token_ids"][row, end:] == -1).all()
        assert out["padding_mask"][row].tolist() == [True] * end + [False] * (MAX_LENGTH - end)


def test_generate_rejects_bad_inputs(lm):
    with pytest.raises(ValueError, match="max_sequence_length"):
        lm.generate(PROMPTS, max_length=64)
    with pytest.raises(ValueError, match="at least one token"):
        lm.generate({"token_ids": np.zeros((1, 3), "int32"),
                     "padding_mask": np.zeros((1, 3), "int32")}, 5)


def test_mixed_precision_logits_are_float32():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        backbone = models.DecoderBackbone(vocabulary_size=40, num_layers=1, hidden_dim=8,
                                          num_heads=2, intermediate_dim=16)
        lm = heads.CausalLM(backbone)
        assert _dtype(lm(PROMPTS)) == "float32"
        out = lm.generate(PROMPTS, max_length=8, jit_compile=False)
        assert out["token_ids"].shape == (3, 8)
    finally:
        keras.mixed_precision.set_global_policy("float32")
