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
