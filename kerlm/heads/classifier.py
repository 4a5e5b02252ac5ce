"""Sequence classification head on an already built encoder backbone."""

import keras

from kerlm.layers import MaskedMeanPooling


@keras.saving.register_keras_serializable(package="kerlm")
class Classifier(keras.Model):
    """Logits over `num_classes` from a backbone's pooled sequence.

    The head takes a built backbone (so several heads can share one), pools its
    `sequence_output` (`pooling="mean"` over real tokens, or `"first"` for the first token's
    pooled state, as in BERT), applies dropout and one dense layer. Logits are float32 even
    under mixed precision.

    Example:
    >>> import numpy as np
    >>> from kerlm.models import EncoderBackbone
    >>> backbone = EncoderBackbone(vocabulary_size=50, num_layers=1, hidden_dim=8,
    ...                            num_heads=2, intermediate_dim=16)
    >>> classifier = Classifier(backbone, num_classes=3)
    >>> logits = classifier({"token_ids": np.array([[2, 7, 3, 0]]),
    ...                      "padding_mask": np.array([[1, 1, 1, 0]])})
    >>> tuple(logits.shape)
    (1, 3)
    """

    def __init__(self, backbone, num_classes, pooling="mean", dropout=0.1, **kwargs):
        if pooling not in ("mean", "first"):
            raise ValueError(f"pooling must be 'mean' or 'first', got {pooling!r}")
        inputs = backbone.input
        outputs = backbone(inputs)
        if pooling == "mean":
            x = MaskedMeanPooling(dtype=backbone.dtype_policy, name="pooling")(
                outputs["sequence_output"], inputs["padding_mask"])
        else:
            x = outputs["pooled_output"]
        x = keras.layers.Dropout(dropout, name="classifier_dropout")(x)
        logits = keras.layers.Dense(num_classes, dtype="float32", name="logits")(x)
        super().__init__(inputs=inputs, outputs=logits, **kwargs)
        self.backbone = backbone
        self.num_classes = num_classes
        self.pooling = pooling
        self.dropout = dropout

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable,
                "backbone": keras.layers.serialize(self.backbone),
                "num_classes": self.num_classes, "pooling": self.pooling,
                "dropout": self.dropout}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["backbone"] = keras.layers.deserialize(config["backbone"])
        return cls(**config)
