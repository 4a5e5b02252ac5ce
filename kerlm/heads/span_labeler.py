"""Extractive question answering head: start/end logits over an encoder's tokens."""

import keras
from keras import ops

from kerlm.heads.backbone_head import BackboneHead


@keras.saving.register_keras_serializable(package="kerlm")
class SpanLabeler(BackboneHead):
    """Start and end logits of the answer span for every token (TF Model Garden's
    `BertSpanLabeler`), on an already built backbone with the `"encode"` capability (an
    encoder or encoder-decoder).

    Inputs `token_ids`, `padding_mask` (and `segment_ids`, used when the backbone embeds
    segments) `[batch, length]`; output float32 `[batch, 2, length]` (start, end), with padded
    positions at -1e9 so that a softmax over positions ignores them. The logits come from
    the backbone's `features` (an encoder-decoder answers from its encoder); the weights
    stay shared, so the same backbone can carry other heads. Train with sparse
    cross-entropy against `[batch, 2]` (start, end) positions; position 0 (`[CLS]`) means
    "no answer here".

    Example:
    >>> import numpy as np
    >>> from kerlm.models import EncoderBackbone
    >>> backbone = EncoderBackbone(vocabulary_size=30, num_layers=1, hidden_dim=8,
    ...                            num_heads=2, intermediate_dim=16, num_segments=2)
    >>> head = SpanLabeler(backbone)
    >>> logits = head({"token_ids": np.array([[2, 7, 3, 9, 9, 3, 0]]),
    ...                "padding_mask": np.array([[1, 1, 1, 1, 1, 1, 0]]),
    ...                "segment_ids": np.array([[0, 0, 0, 1, 1, 1, 0]])})
    >>> tuple(logits.shape), float(logits[0, 0, -1])
    ((1, 2, 7), -1000000000.0)
    """

    def __init__(self, backbone, dropout=0.1, **kwargs):
        if "encode" not in backbone.capabilities:
            raise ValueError("SpanLabeler needs a bidirectional encoder (an encoder or "
                             "encoder-decoder backbone): a causal decoder's early tokens "
                             "cannot see the question's end or the rest of the context")
        inputs = {name: keras.Input(shape=(None,), dtype="int32", name=name)
                  for name in ("token_ids", "padding_mask", "segment_ids")}
        token_ids, padding_mask = inputs["token_ids"], inputs["padding_mask"]
        sequence = backbone.features(token_ids, padding_mask,
                                     inputs["segment_ids"])["sequence_output"]
        x = keras.layers.Dropout(dropout, name="span_dropout")(sequence)
        x = keras.layers.Dense(2, dtype="float32", name="span_logits")(x)
        logits = SpanMask(name="span_mask")(x, padding_mask)
        super().__init__(inputs=inputs, outputs=logits, **kwargs)
        self.backbone = backbone
        self.dropout = dropout

    def head_config(self):
        return {"dropout": self.dropout}


@keras.saving.register_keras_serializable(package="kerlm")
class SpanMask(keras.layers.Layer):
    """`[batch, length, 2]` logits → `[batch, 2, length]`, padded positions at -1e9."""

    def call(self, logits, padding_mask):
        logits = ops.transpose(ops.cast(logits, "float32"), (0, 2, 1))
        real = ops.expand_dims(ops.cast(padding_mask, "bool"), 1)
        return ops.where(real, logits, -1e9)

    def compute_output_shape(self, logits_shape, padding_mask_shape):
        return (logits_shape[0], 2, logits_shape[1])
