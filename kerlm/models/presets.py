"""Named backbone configurations: generic sizes from tiny (tests, CPU) to base, and the exact
architectures of published models (`bert_base`, `gpt2_small`, `bart_base`, `t5_small`).

Generic presets leave out `vocabulary_size` (a task's tokenizer decides it); architecture
presets include the published vocabulary size. Weights are random: load real ones from a
directory (`Backbone.from_preset(path)`).
"""

import os

BACKBONE_CLASSES = {}  # filled by kerlm.models.__init__ to avoid an import cycle


def _sizes(cls, kind):
    dims = {"tiny": (2, 128, 2, 512), "small": (4, 256, 4, 1024), "base": (12, 768, 12, 3072)}
    side = ""
    if cls == "EncoderDecoderBackbone":
        dims["base"] = (6, 768, 12, 3072)
        side = " each side"
    presets = {}
    for size, (layers, hidden, heads, ff) in dims.items():
        presets[f"{kind}_{size}"] = {
            "class": cls,
            "description": f"{layers} layers{side}, {hidden} d, {heads} heads, ff {ff}.",
            "config": dict(num_layers=layers, hidden_dim=hidden, num_heads=heads,
                           intermediate_dim=ff, max_sequence_length=512, dropout=0.1),
        }
    return presets


PRESETS = {
    **_sizes("EncoderBackbone", "encoder"),
    **_sizes("DecoderBackbone", "decoder"),
    **_sizes("EncoderDecoderBackbone", "encoder_decoder"),
    "bert_base": {
        "class": "EncoderBackbone",
        "description": "BERT-base (uncased vocabulary): 12 layers, 768 d, 12 heads, post-LN.",
        "config": dict(vocabulary_size=30522, num_layers=12, hidden_dim=768, num_heads=12,
                       intermediate_dim=3072, max_sequence_length=512, num_segments=2,
                       dropout=0.1, activation="gelu", layer_norm_epsilon=1e-12),
    },
    "gpt2_small": {
        "class": "DecoderBackbone",
        "description": "GPT-2 small (124 M): 12 layers, 768 d, 12 heads, pre-LN, 1024 positions.",
        "config": dict(vocabulary_size=50257, num_layers=12, hidden_dim=768, num_heads=12,
                       intermediate_dim=3072, max_sequence_length=1024, dropout=0.1,
                       activation="gelu_approximate", layer_norm_epsilon=1e-5),
    },
    "bart_base": {
        "class": "EncoderDecoderBackbone",
        "description": "BART-base: 6 + 6 layers, 768 d, 12 heads, post-LN, 1024 positions.",
        "config": dict(vocabulary_size=50265, num_layers=6, hidden_dim=768, num_heads=12,
                       intermediate_dim=3072, max_sequence_length=1024, dropout=0.1,
                       activation="gelu", layer_norm_epsilon=1e-5),
    },
    "t5_small": {
        "class": "EncoderDecoderBackbone",
        "description": "T5-small (60 M): 6 + 6 layers, 512 d, 8 heads, RMSNorm pre-LN, "
                       "relative position bias, no biases, ReLU.",
        "config": dict(vocabulary_size=32128, num_layers=6, hidden_dim=512, num_heads=8,
                       intermediate_dim=2048, dropout=0.1, activation="relu", norm="rms_norm",
                       norm_first=True, layer_norm_epsilon=1e-6, use_bias=False,
                       scale_scores=False, position="relative"),
    },
}


def list_presets():
    """Names of all presets.

    Example:
    >>> [name for name in list_presets() if name.startswith("decoder_")]
    ['decoder_base', 'decoder_small', 'decoder_tiny']
    """
    return sorted(PRESETS)


def get_preset(name):
    """The preset dict for `name`, or a ValueError listing the known names."""
    if name not in PRESETS:
        raise ValueError(f"Unknown preset {name!r}: not a directory and not one of "
                         f"{', '.join(list_presets())}")
    return PRESETS[name]


def load(preset, **overrides):
    """Build the backbone a preset name describes, or load one from a directory."""
    if os.path.isdir(preset):
        from kerlm.models import checkpoints  # noqa: PLC0415 (only needed for directories)
        return checkpoints.load_directory(preset, **overrides)
    spec = get_preset(preset)
    return BACKBONE_CLASSES[spec["class"]](**{**spec["config"], **overrides})
