"""Convert keras-hub backbones (BERT, GPT-2, BART) into kerlm backbones with the same weights.

`from_keras_hub(backbone)` reads the keras-hub backbone's config and weights and returns the
matching kerlm backbone (`BertBackbone` → `EncoderBackbone`, `GPT2Backbone` →
`DecoderBackbone`, `BartBackbone` → `EncoderDecoderBackbone`) computing the same outputs.
keras-hub's separate query/key/value projections are stacked into kerlm's fused ones.

Example:
>>> import keras_hub, numpy as np
>>> theirs = keras_hub.models.GPT2Backbone(vocabulary_size=50, num_layers=1, num_heads=2,
...                                        hidden_dim=8, intermediate_dim=16,
...                                        max_sequence_length=16)
>>> ours = from_keras_hub(theirs)
>>> inputs = {"token_ids": np.array([[5, 6, 7, 0]]), "padding_mask": np.array([[1, 1, 1, 0]])}
>>> type(ours).__name__, bool(np.allclose(ours(inputs), theirs(inputs), atol=1e-5))
('DecoderBackbone', True)
"""

import keras

from kerlm.models import registry
from kerlm.models.convert_weights import SAME, Checkpoint, transfer

NORM = ("gamma", "beta")
DENSE = ("kernel", "bias")
ACTIVATIONS = {"gelu": "gelu", "gelu_approximate": "gelu_approximate", "relu": "relu"}


def _same(kerlm, hub, weights):
    return [(f"{kerlm}/{w}", f"{hub}/{w}", SAME, None) for w in weights]


def _attention(kerlm, hub, cross=False):
    """keras-hub's query/key/value/output projections into kerlm's fused ones."""
    plan = _same(f"{kerlm}/query", f"{hub}/query", DENSE) if cross else []
    fused, parts = ("key_value", ("key", "value")) if cross else ("qkv", ("query", "key", "value"))
    for i, part in enumerate(parts):
        plan += [(f"{kerlm}/{fused}/kernel", f"{hub}/{part}/kernel", SAME, (slice(None), i)),
                 (f"{kerlm}/{fused}/bias", f"{hub}/{part}/bias", SAME, i)]
    return plan + _same(f"{kerlm}/attention_output", f"{hub}/attention_output", DENSE)


def _block(kerlm, hub, attention_name, cross=False):
    """One keras-hub TransformerEncoder/Decoder block into a kerlm block."""
    plan = _attention(f"{kerlm}/self_attention", f"{hub}/{attention_name}")
    plan += _same(f"{kerlm}/self_attention_norm", f"{hub}/self_attention_layer_norm", NORM)
    if cross:
        plan += _attention(f"{kerlm}/cross_attention", f"{hub}/cross_attention", cross=True)
        plan += _same(f"{kerlm}/cross_attention_norm", f"{hub}/cross_attention_layer_norm", NORM)
    plan += _same(f"{kerlm}/ffn/ffn_inner", f"{hub}/feedforward_intermediate_dense", DENSE)
    plan += _same(f"{kerlm}/ffn/ffn_outer", f"{hub}/feedforward_output_dense", DENSE)
    return plan + _same(f"{kerlm}/ffn_norm", f"{hub}/feedforward_layer_norm", NORM)


def _config(backbone, block):
    """The config entries every converted backbone shares, read from keras-hub's."""
    config = backbone.get_config()
    activation = getattr(block.activation, "__name__", str(block.activation))
    if activation not in ACTIVATIONS:
        raise ValueError(f"keras-hub {type(backbone).__name__} uses activation {activation!r}; "
                         f"kerlm supports {sorted(ACTIVATIONS)}")
    return dict({k: config[k] for k in ("vocabulary_size", "num_layers", "hidden_dim",
                                        "num_heads", "intermediate_dim", "max_sequence_length",
                                        "dropout")},
                activation=ACTIVATIONS[activation], layer_norm_epsilon=block.layer_norm_epsilon)


def _bert(backbone):
    config = dict(_config(backbone, backbone.transformer_layers[0]),
                  num_segments=backbone.num_segments)
    plan = _same("token_embedding", "token_embedding", ["embeddings"])
    plan += _same("position_embedding", "position_embedding", ["embeddings"])
    plan += _same("segment_embedding", "segment_embedding", ["embeddings"])
    plan += _same("embeddings_norm", "embeddings_layer_norm", NORM)
    for i in range(backbone.num_layers):
        plan += _block(f"transformer_layer_{i}", f"transformer_layer_{i}", "self_attention_layer")
    return "EncoderBackbone", config, plan + _same("pooled_dense", "pooled_dense", DENSE)


def _gpt2(backbone):
    config = _config(backbone, backbone.transformer_layers[0])
    plan = _same("token_embedding", "token_embedding", ["embeddings"])
    plan += _same("position_embedding", "position_embedding", ["embeddings"])
    for i in range(backbone.num_layers):
        plan += _block(f"transformer_layer_{i}", f"transformer_layer_{i}", "self_attention")
    return "DecoderBackbone", config, plan + _same("final_norm", "layer_norm", NORM)


def _bart(backbone):
    config = _config(backbone, backbone.encoder_transformer_layers[0])
    plan = _same("token_embedding", "token_embedding", ["embeddings"])
    for side in ("encoder", "decoder"):
        plan += _same(f"{side}_position_embedding", f"{side}_position_embedding", ["embeddings"])
        plan += _same(f"{side}_embeddings_norm", f"{side}_embeddings_layer_norm", NORM)
        for i in range(backbone.num_layers):
            plan += _block(f"{side}_layer_{i}", f"transformer_{side}_layer_{i}",
                           "self_attention_layer" if side == "encoder" else "self_attention",
                           cross=side == "decoder")
    return "EncoderDecoderBackbone", config, plan


def _converters():
    import keras_hub  # noqa: PLC0415 (heavy; only needed here)
    return {keras_hub.models.BertBackbone: _bert, keras_hub.models.GPT2Backbone: _gpt2,
            keras_hub.models.BartBackbone: _bart}


def supported():
    """Names of the keras-hub backbone classes `from_keras_hub` converts."""
    return ["BertBackbone", "GPT2Backbone", "BartBackbone"]


def from_keras_hub(backbone, **overrides):
    """The kerlm backbone equivalent to keras-hub `backbone`, its weights copied.

    `overrides` replace config entries (e.g. `dropout`, `dtype`); ones that change weight
    shapes make the copy fail with a ValueError naming the weights.
    """
    convert = _converters().get(type(backbone))
    if convert is None:
        raise ValueError(f"Cannot convert keras-hub {type(backbone).__name__}: kerlm converts "
                         f"{', '.join(supported())}")
    class_name, config, plan = convert(backbone)
    model = registry.backbone_class(class_name)(**{**config, **overrides})
    weights = {}
    for w in backbone.weights:
        if w.path in weights:
            raise ValueError(f"keras-hub {type(backbone).__name__} has two weights at {w.path!r}")
        weights[w.path] = lambda w=w: keras.ops.convert_to_numpy(w)
    transfer(model, plan, Checkpoint(weights, f"keras-hub {type(backbone).__name__}"))
    return model
