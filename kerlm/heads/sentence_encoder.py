"""Sentence embedding head: a backbone's pooled sequence, optionally of unit length."""

import math

import keras
from keras import ops

from kerlm.heads.backbone_head import BackboneHead
from kerlm.layers import MaskedMaxPooling, MaskedMeanPooling, TokenPooling

POOLINGS = ("mean", "cls", "max")
MAX_SCALE = 100.0  # a learned scale is clipped here (CLIP's bound on its logit scale)


@keras.saving.register_keras_serializable(package="kerlm")
class SentenceEncoder(BackboneHead):
    """One float32 vector `[batch, dim]` per text from an encoder's `sequence_output`.

    Inputs are `token_ids` and `padding_mask` (int `[batch, length]`). `pooling`: `"mean"`
    over real tokens, `"cls"` the first token's state (sentence-transformers' CLS pooling:
    the state itself, not BERT's tanh pooler), `"max"` each feature's largest value over
    real tokens. `normalize`: unit L2 norm (then dot products are cosines).

    `scale` is the similarity scale of the training loss (`InBatchNegativesLoss`);
    `learnable_scale` makes it a weight, learned in log space from `scale` and clipped at
    `MAX_SCALE`. `logit_scale()` gives it either way.

    Example:
    >>> import numpy as np
    >>> from kerlm.models import EncoderBackbone
    >>> backbone = EncoderBackbone(vocabulary_size=50, num_layers=1, hidden_dim=8,
    ...                            num_heads=2, intermediate_dim=16)
    >>> encoder = SentenceEncoder(backbone, pooling="max", learnable_scale=True)
    >>> inputs = {"token_ids": np.array([[2, 7, 3, 0]]), "padding_mask": np.array([[1, 1, 1, 0]])}
    >>> vectors = keras.ops.convert_to_numpy(encoder(inputs))
    >>> vectors.shape, round(float(np.linalg.norm(vectors)), 5), round(float(encoder.logit_scale()), 3)
    ((1, 8), 1.0, 20.0)
    """

    def __init__(self, backbone, pooling="mean", normalize=True, scale=20.0,
                 learnable_scale=False, **kwargs):
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}; got {pooling!r}")
        if "encode" not in backbone.capabilities:
            raise ValueError("a sentence encoder needs an encoder backbone ('encode')")
        token_ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
        padding_mask = keras.Input(shape=(None,), dtype="int32", name="padding_mask")
        sequence = backbone.features(token_ids, padding_mask)["sequence_output"]
        policy = backbone.dtype_policy
        if pooling == "mean":
            x = MaskedMeanPooling(dtype=policy, name="pooling")(sequence, padding_mask)
        elif pooling == "max":
            x = MaskedMaxPooling(dtype=policy, name="pooling")(sequence, padding_mask)
        else:
            x = TokenPooling("first", dtype=policy, name="pooling")(sequence, padding_mask)
        x = keras.layers.Activation("linear", dtype="float32", name="embedding")(x)
        if normalize:
            x = keras.layers.UnitNormalization(dtype="float32", name="normalize")(x)
        super().__init__(inputs={"token_ids": token_ids, "padding_mask": padding_mask},
                         outputs=x, **kwargs)
        self.backbone = backbone
        self.pooling = pooling
        self.normalize = normalize
        self.scale = scale
        self.learnable_scale = learnable_scale
        self.log_scale = self.add_weight(
            shape=(), initializer=keras.initializers.Constant(math.log(scale)),
            name="log_scale") if learnable_scale else None

    def logit_scale(self):
        """The loss's similarity scale: `scale`, or the learned one."""
        if self.log_scale is None:
            return ops.convert_to_tensor(self.scale, "float32")
        return ops.exp(ops.minimum(self.log_scale, math.log(MAX_SCALE)))

    def head_config(self):
        return {"pooling": self.pooling, "normalize": self.normalize, "scale": self.scale,
                "learnable_scale": self.learnable_scale}
