"""Masked language model head (BERT's pretraining objective) on an encoding backbone."""

import keras
from keras import ops

from kerlm.heads.backbone_head import BackboneHead
from kerlm.heads.language_model import TokenLogits


@keras.saving.register_keras_serializable(package="kerlm")
class MaskedLM(BackboneHead):
    """Vocabulary logits at the masked positions of a text, from a backbone that encodes.

    Inputs: `token_ids`, `padding_mask` (int `[batch, length]`, the masked text) and
    `mask_positions` (int `[batch, predictions]`, where the masked pieces are; padded
    with 0 and weighted out of the loss). Output: float32 `[batch, predictions,
    vocabulary_size]` logits. As in BERT (and keras-hub's `MaskedLMHead`), the gathered
    states go through a dense layer, GELU and a layer norm, then the backbone's tied token
    embedding plus an output bias. Train with a from-logits sparse cross-entropy on the
    original ids, `sample_weight` = the mask weights.

    Any backbone with the `"encode"` capability fits (an encoder-decoder's encoder too);
    a causal decoder is refused: its states at a masked position have not seen the text
    after it.

    Example:
    >>> import numpy as np
    >>> from kerlm.models import EncoderBackbone
    >>> backbone = EncoderBackbone(vocabulary_size=50, num_layers=1, hidden_dim=8,
    ...                            num_heads=2, intermediate_dim=16)
    >>> lm = MaskedLM(backbone)
    >>> logits = lm({"token_ids": np.array([[2, 4, 9, 3]]), "padding_mask": np.ones((1, 4)),
    ...              "mask_positions": np.array([[1, 0]])})
    >>> tuple(logits.shape), keras.backend.standardize_dtype(logits.dtype)
    ((1, 2, 50), 'float32')
    """

    def __init__(self, backbone, layer_norm_epsilon=1e-12, **kwargs):
        if "encode" not in backbone.capabilities:
            raise ValueError(f"MaskedLM needs a backbone with the 'encode' capability; "
                             f"{type(backbone).__name__} has "
                             f"{', '.join(sorted(backbone.capabilities)) or 'none'}")
        token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        padding_mask = keras.Input(shape=(None,), dtype="int32", name="padding_mask")
        positions = keras.Input(shape=(None,), dtype="int32", name="mask_positions")
        inputs = {"token_ids": token_ids, "padding_mask": padding_mask,
                  "mask_positions": positions}
        sequence = backbone.features(token_ids, padding_mask)["sequence_output"]
        gathered = GatherPositions(dtype=backbone.dtype_policy, name="gather")(sequence,
                                                                               positions)
        x = keras.layers.Dense(backbone.hidden_dim, activation="gelu", dtype=backbone.dtype_policy,
                               kernel_initializer=keras.initializers.TruncatedNormal(0.02),
                               name="mlm_dense")(gathered)
        x = keras.layers.LayerNormalization(epsilon=layer_norm_epsilon,
                                            dtype=backbone.dtype_policy, name="mlm_norm")(x)
        logits = TokenLogits(backbone, dtype=backbone.dtype_policy, name="token_logits")(x)
        logits = OutputBias(backbone.vocabulary_size, name="mlm_bias")(logits)
        super().__init__(inputs=inputs, outputs=logits, **kwargs)
        self.backbone = backbone
        self.layer_norm_epsilon = layer_norm_epsilon

    def head_config(self):
        return {"layer_norm_epsilon": self.layer_norm_epsilon}


@keras.saving.register_keras_serializable(package="kerlm")
class GatherPositions(keras.layers.Layer):
    """`[batch, length, dim]` states at int `[batch, k]` positions → `[batch, k, dim]`."""

    def call(self, sequence, positions):
        return ops.take_along_axis(sequence, ops.cast(positions, "int32")[..., None], axis=1)


@keras.saving.register_keras_serializable(package="kerlm")
class OutputBias(keras.layers.Layer):
    """A learned float32 bias of `size` (the vocabulary) added to logits' last axis."""

    def __init__(self, size, **kwargs):
        super().__init__(**kwargs)
        self.size = size

    def build(self, input_shape):
        self.bias = self.add_weight(shape=(self.size,), initializer="zeros", name="bias",
                                    dtype="float32")

    def get_config(self):
        return {**super().get_config(), "size": self.size}

    def call(self, logits):
        return ops.cast(logits, "float32") + self.bias
