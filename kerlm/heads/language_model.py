"""The base of language-model heads: tied-embedding logits over a backbone, generation."""

import keras
from keras import ops

from kerlm.generation import GenerationMixin
from kerlm.heads.backbone_head import BackboneHead


class TokenLogits(keras.layers.Layer):
    """Float32 logits over the vocabulary from hidden states: `backbone.token_logits`.

    The projection is the backbone's tied token embedding; this layer owns no weights (it
    keeps a reference to the backbone's method, so the embedding is tracked once). The matmul
    runs in the hidden states' dtype (bfloat16 under `mixed_bfloat16`), then casts to
    float32. Not serializable on its own: heads rebuild it from their backbone.
    """

    def __init__(self, backbone, **kwargs):
        super().__init__(**kwargs)
        self._token_logits = backbone.token_logits

    def call(self, hidden):
        return ops.cast(self._token_logits(hidden), "float32")


class LanguageModel(GenerationMixin, BackboneHead):
    """A functional model: the backbone's inputs → float32 vocabulary logits of its hidden
    states (`hidden_output` names one output of a multi-output backbone), through the tied
    token embedding; plus `GenerationMixin`. Subclasses supply the generation hooks and
    name the backbone capability they decode with (`capability`, see
    `kerlm.models.Backbone`); a backbone without it is refused with a ValueError."""

    hidden_output = None
    capability = None

    def __init__(self, backbone, **kwargs):
        if self.capability and self.capability not in backbone.capabilities:
            raise ValueError(f"{type(self).__name__} needs a backbone with the "
                             f"{self.capability!r} capability; {type(backbone).__name__} "
                             f"has {', '.join(sorted(backbone.capabilities)) or 'none'}")
        inputs = backbone.input
        outputs = backbone(inputs)
        hidden = outputs[self.hidden_output] if self.hidden_output else outputs
        logits = TokenLogits(backbone, dtype=backbone.dtype_policy, name="token_logits")(hidden)
        logits, extra_layers = self._output_layers(backbone, inputs, outputs, hidden, logits)
        super().__init__(inputs=inputs, outputs=logits, **kwargs)
        self.backbone = backbone
        for name, layer in extra_layers.items():
            setattr(self, name, layer)

    def _output_layers(self, backbone, inputs, outputs, hidden, logits):
        """A subclass's hook to transform the logits: `(logits, {attribute: layer})`."""
        return logits, {}

    def _next_token_logits(self, hidden, context):
        """Float32 next-token logits (or log-probabilities) of decoder states in generation."""
        return ops.cast(self.backbone.token_logits(hidden), "float32")

