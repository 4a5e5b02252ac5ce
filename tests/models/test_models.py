"""Backbones, presets and the classifier head."""

import keras
import numpy as np
import pytest

from kerlm import heads, models

INPUTS = {"token_ids": np.array([[2, 9, 10, 3, 0, 0], [2, 11, 3, 0, 0, 0]], "int32"),
          "padding_mask": np.array([[1, 1, 1, 1, 0, 0], [1, 1, 1, 0, 0, 0]], "int32")}


def test_presets_build_with_their_dimensions():
    assert {"encoder_tiny", "encoder_small", "encoder_base"} <= set(models.list_presets())
    small = models.Backbone.from_preset("encoder_small", vocabulary_size=100)
    assert (small.num_layers, small.hidden_dim, small.num_heads, small.intermediate_dim) == \
        (4, 256, 4, 1024)
    tiny = models.Backbone.from_preset("encoder_tiny", vocabulary_size=100)
    assert (tiny.num_layers, tiny.hidden_dim) == (2, 128)
    out = tiny(INPUTS)
    assert tuple(out["sequence_output"].shape) == (2, 6, 128)
    assert tuple(out["pooled_output"].shape) == (2, 128)


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(ValueError, match="encoder_tiny"):
        models.Backbone.from_preset("encoder_huge")


def test_backbone_parameter_count_matches_keras_hub_bert():
    """Same dimensions as keras-hub's BertBackbone => the same number of parameters."""
    import keras_hub
    dims = dict(vocabulary_size=1000, num_layers=2, num_heads=2, hidden_dim=64,
                intermediate_dim=128, max_sequence_length=64)
    ours = models.EncoderBackbone(**dims, num_segments=2)
    theirs = keras_hub.models.BertBackbone(**dims, num_segments=2)
    assert ours.count_params() == theirs.count_params()


def test_classifier_keras_round_trip_identical_outputs(tmp_path):
    backbone = models.Backbone.from_preset("encoder_tiny", vocabulary_size=50)
    classifier = heads.Classifier(backbone, num_classes=3, dropout=0.2)
    path = str(tmp_path / "classifier.keras")
    classifier.save(path)
    restored = keras.saving.load_model(path)
    assert isinstance(restored, heads.Classifier)
    assert isinstance(restored.backbone, models.EncoderBackbone)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(classifier(INPUTS)),
                                  keras.ops.convert_to_numpy(restored(INPUTS)))


def test_heads_share_one_backbone():
    backbone = models.Backbone.from_preset("encoder_tiny", vocabulary_size=50)
    a = heads.Classifier(backbone, num_classes=2)
    b = heads.Classifier(backbone, num_classes=5, pooling="first")
    shared = {id(w) for w in a.weights} & {id(w) for w in b.weights}
    assert shared == {id(w) for w in backbone.weights}
    assert tuple(b(INPUTS).shape) == (2, 5)


def test_padding_does_not_change_classifier_output():
    backbone = models.Backbone.from_preset("encoder_tiny", vocabulary_size=50)
    classifier = heads.Classifier(backbone, num_classes=2)
    short = {k: v[:1, :4] for k, v in INPUTS.items()}
    long = {k: v[:1] for k, v in INPUTS.items()}
    np.testing.assert_allclose(keras.ops.convert_to_numpy(classifier(short)),
                               keras.ops.convert_to_numpy(classifier(long)), atol=1e-5)


# The classifier on every backbone kind ----------------------------------------------------
CLASSIFIER_CASES = [("encoder_tiny", "mean"), ("encoder_tiny", "first"), ("encoder_tiny", "last"),
                    ("decoder_tiny", "mean"), ("decoder_tiny", "last"),
                    ("encoder_decoder_tiny", "mean"), ("encoder_decoder_tiny", "first"),
                    ("encoder_decoder_tiny", "last")]


def _classifier(preset, pooling):
    keras.utils.set_random_seed(1)
    backbone = models.Backbone.from_preset(preset, vocabulary_size=50)
    return heads.Classifier(backbone, num_classes=3, pooling=pooling)


@pytest.mark.parametrize("preset,pooling", CLASSIFIER_CASES)
def test_classifier_on_any_backbone_ignores_padding(preset, pooling):
    classifier = _classifier(preset, pooling)
    assert [i.name for i in keras.tree.flatten(classifier.inputs)] == ["padding_mask", "token_ids"]
    logits = keras.ops.convert_to_numpy(classifier(INPUTS))
    assert logits.shape == (2, 3) and logits.dtype == np.float32
    for row, length in enumerate(INPUTS["padding_mask"].sum(axis=1)):
        # each example alone without its padding, and with other token ids in the padding
        short = {k: v[row:row + 1, :length] for k, v in INPUTS.items()}
        noisy = {"token_ids": np.where(INPUTS["padding_mask"][row:row + 1] == 1,
                                       INPUTS["token_ids"][row:row + 1], 17),
                 "padding_mask": INPUTS["padding_mask"][row:row + 1]}
        for variant in (short, noisy):
            np.testing.assert_allclose(keras.ops.convert_to_numpy(classifier(variant))[0],
                                       logits[row], atol=1e-5)


@pytest.mark.parametrize("preset,pooling", [("decoder_tiny", "last"),
                                            ("encoder_decoder_tiny", "first")])
def test_classifier_round_trip_on_decoder_backbones(tmp_path, preset, pooling):
    classifier = _classifier(preset, pooling)
    path = str(tmp_path / "classifier.keras")
    classifier.save(path)
    restored = keras.saving.load_model(path)
    assert type(restored.backbone) is type(classifier.backbone)
    assert restored.pooling == pooling
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(classifier(INPUTS)),
                                  keras.ops.convert_to_numpy(restored(INPUTS)))
    # the whole backbone comes back, including an encoder-decoder's unused decoder
    for a, b in zip(classifier.backbone.weights, restored.backbone.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))


@pytest.mark.filterwarnings("ignore:Gradients do not exist for variables")  # the decoder's
def test_encoder_decoder_classifier_shares_the_encoder_with_the_backbone():
    backbone = models.Backbone.from_preset("encoder_decoder_tiny", vocabulary_size=50,
                                           dropout=0.0)
    classifier = heads.Classifier(backbone, num_classes=2, pooling="first", dropout=0.0)
    encoder = keras.ops.convert_to_numpy(backbone({
        "encoder_token_ids": INPUTS["token_ids"], "encoder_padding_mask": INPUTS["padding_mask"],
        "decoder_token_ids": INPUTS["token_ids"][:, :2],
        "decoder_padding_mask": INPUTS["padding_mask"][:, :2]})["encoder_sequence_output"])
    dense = classifier.get_layer("logits")
    expected = encoder[:, 0] @ keras.ops.convert_to_numpy(dense.kernel) + \
        keras.ops.convert_to_numpy(dense.bias)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(classifier(INPUTS)), expected,
                               atol=1e-5)
    embedding = backbone.token_embedding.embeddings
    assert any(w is embedding for w in classifier.trainable_weights)
    # training the classifier moves the backbone's (shared) encoder weights
    classifier.compile(optimizer=keras.optimizers.SGD(0.1),
                       loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    before = keras.ops.convert_to_numpy(backbone.encoder_layers[0].ffn.weights[0])
    classifier.train_on_batch(INPUTS, np.array([0, 1]))
    after = keras.ops.convert_to_numpy(backbone.encoder_layers[0].ffn.weights[0])
    assert not np.allclose(before, after)


def test_classifier_pooling_errors_are_clear():
    decoder = models.Backbone.from_preset("decoder_tiny", vocabulary_size=50)
    with pytest.raises(ValueError, match="'first' is meaningless for a decoder-only"):
        heads.Classifier(decoder, num_classes=2, pooling="first")
    with pytest.raises(ValueError, match="mean, first, last"):
        heads.Classifier(decoder, num_classes=2, pooling="max")


def test_classifier_on_an_encoder_with_segments_takes_token_ids_and_padding_mask():
    backbone = models.EncoderBackbone(vocabulary_size=50, num_layers=1, hidden_dim=8,
                                      num_heads=2, intermediate_dim=16, num_segments=2)
    classifier = heads.Classifier(backbone, num_classes=2, pooling="first")
    assert tuple(classifier(INPUTS).shape) == (2, 2)


# Capabilities, features and the registry ---------------------------------------------------

def _small(cls, **options):
    return cls(vocabulary_size=30, num_layers=1, hidden_dim=8, num_heads=2, intermediate_dim=16,
               dropout=0.0, **options)


def test_each_backbone_declares_its_capabilities_and_its_presets_say_so_without_building():
    assert models.EncoderBackbone.capabilities == {"encode"}
    assert models.DecoderBackbone.capabilities == {"causal"}
    assert models.EncoderDecoderBackbone.capabilities == {"encode", "seq2seq"}
    for capability in models.CAPABILITIES:
        names = models.presets_with(capability)
        assert names == sorted(names) and names
        assert all(capability in models.preset_capabilities(n) for n in names)
        assert not any(capability in models.preset_capabilities(n)
                       for n in set(models.list_presets()) - set(names))
    assert models.presets_with("causal") == ["decoder_base", "decoder_small", "decoder_tiny",
                                             "gpt2_small"]
    assert models.preset_capabilities("t5_small") == {"encode", "seq2seq"}
    with pytest.raises(ValueError, match="Unknown backbone capability 'fly'"):
        models.presets_with("fly")
    with pytest.raises(ValueError, match="Unknown preset 'nope'"):
        models.preset_capabilities("nope")


def test_features_are_each_backbones_own_text_outputs():
    ids, mask = INPUTS["token_ids"], INPUTS["padding_mask"]
    segments = np.array([[0, 0, 1, 1, 0, 0], [0, 1, 1, 0, 0, 0]], "int32")
    encoder = _small(models.EncoderBackbone, num_segments=2)
    out = encoder(INPUTS | {"segment_ids": 0 * ids})
    features = encoder.features(ids, mask)
    assert sorted(features) == ["pooled_output", "sequence_output"]
    for key in features:
        np.testing.assert_allclose(features[key], out[key], atol=1e-6)
    with_segments = encoder.features(ids, mask, segments)["sequence_output"]
    np.testing.assert_allclose(with_segments,
                               encoder(INPUTS | {"segment_ids": segments})["sequence_output"],
                               atol=1e-6)
    assert not np.allclose(with_segments, features["sequence_output"])
    plain = _small(models.EncoderBackbone)  # no segment embedding: segment_ids are ignored
    np.testing.assert_allclose(plain.features(ids, mask, segments)["sequence_output"],
                               plain(INPUTS)["sequence_output"], atol=1e-6)

    decoder = _small(models.DecoderBackbone)
    assert list(decoder.features(ids, mask, segments)) == ["sequence_output"]
    np.testing.assert_allclose(decoder.features(ids, mask)["sequence_output"], decoder(INPUTS),
                               atol=1e-6)

    seq2seq = _small(models.EncoderDecoderBackbone)
    encoded = seq2seq({"encoder_token_ids": ids, "encoder_padding_mask": mask,
                       "decoder_token_ids": ids[:, :2], "decoder_padding_mask": mask[:, :2]})
    assert list(seq2seq.features(ids, mask)) == ["sequence_output"]
    np.testing.assert_allclose(seq2seq.features(ids, mask)["sequence_output"],
                               encoded["encoder_sequence_output"], atol=1e-6)


def test_heads_check_capabilities_not_classes():
    encoder, decoder = _small(models.EncoderBackbone), _small(models.DecoderBackbone)
    with pytest.raises(ValueError, match="SpanLabeler needs a bidirectional encoder"):
        heads.SpanLabeler(decoder)
    with pytest.raises(ValueError, match="CausalLM needs a backbone with the 'causal' "
                                         "capability; EncoderBackbone has encode"):
        heads.CausalLM(encoder)
    with pytest.raises(ValueError, match="Seq2SeqLM needs a backbone with the 'seq2seq'"):
        heads.Seq2SeqLM(decoder)


@pytest.fixture
def toy_backbone():
    """A backbone added the way a new module would add one: register the class and its
    presets; removed from the registry afterwards."""
    from kerlm.models import registry

    @registry.register_backbone
    class ToyEncoder(models.EncoderBackbone):
        """An encoder whose features are its sequence output alone (no pooler)."""

        def features(self, token_ids, padding_mask, segment_ids=None):
            return {"sequence_output": super().features(token_ids, padding_mask)[
                "sequence_output"]}

    registry.register_presets(ToyEncoder, {"toy_tiny": {
        "description": "A test backbone.",
        "config": dict(num_layers=1, hidden_dim=8, num_heads=2, intermediate_dim=16)}})
    yield ToyEncoder
    del registry.BACKBONES["ToyEncoder"], registry.PRESETS["toy_tiny"]


def test_a_registered_backbone_gets_presets_checks_and_heads(toy_backbone):
    assert "toy_tiny" in models.presets_with("encode")
    assert models.preset_capabilities("toy_tiny") == {"encode"}
    backbone = models.Backbone.from_preset("toy_tiny", vocabulary_size=30)
    assert type(backbone) is toy_backbone
    for pooling in ("first", "mean"):  # "first" without a pooler: the first token's state
        assert tuple(heads.Classifier(backbone, 2, pooling=pooling)(INPUTS).shape) == (2, 2)
    assert tuple(heads.SpanLabeler(backbone)(INPUTS | {"segment_ids": 0 * INPUTS[
        "token_ids"]}).shape) == (2, 2, 6)
    from kerlm.models import registry
    with pytest.raises(ValueError, match="registered twice"):
        registry.register_presets(toy_backbone, {"toy_tiny": registry.PRESETS["toy_tiny"]})
    with pytest.raises(ValueError, match="capabilities must be a frozenset"):
        registry.register_backbone(type("Bad", (), {"capabilities": {"encode"}}))
