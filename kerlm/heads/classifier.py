"""Sequence classification head on an already built backbone of any kind."""

import keras

from kerlm.heads.backbone_head import BackboneHead
from kerlm.layers import MaskedMeanPooling, TokenPooling

POOLINGS = ("mean", "first", "last")


@keras.saving.register_keras_serializable(package="kerlm")
class Classifier(BackboneHead):
    """Logits over `num_classes` from a backbone's pooled sequence.

    The head takes a built backbone (so several heads can share one) of any kind, and its
    inputs are always `token_ids` and `padding_mask` (int `[batch, length]`). It pools the
    backbone's `features` (see `kerlm.models.Backbone`):

    - an encoder (`"encode"` capability, e.g. `EncoderBackbone`): its `sequence_output`;
      `"first"` takes a `pooled_output` where the backbone has one (BERT's first token
      through a tanh layer), else the first state. A backbone with segments gets
      `segment_ids` of 0 (one text per example). An encoder-decoder classifies from its
      encoder alone, whose weights stay shared with the backbone; the decoder is unused
      (but kept, so that a saved classifier restores the whole backbone).
    - a causal decoder (no `"encode"`): the causal hidden states; `"last"` (the last real
      token, the only one that has seen the whole text) is the natural choice; `"first"`
      is refused.

    `pooling="mean"` averages over real tokens. Dropout and one dense layer follow; logits
    are float32 even under mixed precision.

    Example:
    >>> import numpy as np
    >>> from kerlm.models import DecoderBackbone, EncoderBackbone
    >>> inputs = {"token_ids": np.array([[2, 7, 3, 0]]), "padding_mask": np.array([[1, 1, 1, 0]])}
    >>> backbone = EncoderBackbone(vocabulary_size=50, num_layers=1, hidden_dim=8,
    ...                            num_heads=2, intermediate_dim=16)
    >>> classifier = Classifier(backbone, num_classes=3)
    >>> tuple(classifier(inputs).shape)
    (1, 3)
    >>> decoder = DecoderBackbone(vocabulary_size=50, num_layers=1, hidden_dim=8,
    ...                           num_heads=2, intermediate_dim=16)
    >>> tuple(Classifier(decoder, num_classes=3, pooling="last")(inputs).shape)
    (1, 3)
    """

    def __init__(self, backbone, num_classes, pooling="mean", dropout=0.1, **kwargs):
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}; got {pooling!r}")
        if pooling == "first" and "encode" not in backbone.capabilities:
            raise ValueError("pooling='first' is meaningless for a decoder-only (causal) "
                             "backbone: its first token sees nothing after it; use 'last' "
                             "or 'mean'")
        token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        padding_mask = keras.Input(shape=(None,), dtype="int32", name="padding_mask")
        inputs = {"token_ids": token_ids, "padding_mask": padding_mask}
        outputs = backbone.features(token_ids, padding_mask)
        sequence, pooled = outputs["sequence_output"], outputs.get("pooled_output")

        if pooling == "mean":
            x = MaskedMeanPooling(dtype=backbone.dtype_policy, name="pooling")(sequence,
                                                                               padding_mask)
        elif pooling == "first" and pooled is not None:
            x = pooled
        else:
            x = TokenPooling(pooling, dtype=backbone.dtype_policy, name="pooling")(
                sequence, padding_mask)
        x = keras.layers.Dropout(dropout, name="classifier_dropout")(x)
        logits = keras.layers.Dense(num_classes, dtype="float32", name="logits")(x)
        super().__init__(inputs=inputs, outputs=logits, **kwargs)
        self.backbone = backbone
        self.num_classes = num_classes
        self.pooling = pooling
        self.dropout = dropout

    def head_config(self):
        return {"num_classes": self.num_classes, "pooling": self.pooling,
                "dropout": self.dropout}
