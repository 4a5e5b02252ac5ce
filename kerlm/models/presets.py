"""Named backbone configurations, from tiny (tests, CPU) to base (BERT-base sized)."""

BACKBONE_CLASSES = {}  # filled by kerlm.models.__init__ to avoid an import cycle

PRESETS = {
    "encoder_tiny": {
        "class": "EncoderBackbone",
        "description": "2 layers, 128 d, 2 heads, ff 512: tests and quick CPU runs.",
        "config": dict(num_layers=2, hidden_dim=128, num_heads=2, intermediate_dim=512,
                       max_sequence_length=512, dropout=0.1),
    },
    "encoder_small": {
        "class": "EncoderBackbone",
        "description": "4 layers, 256 d, 4 heads, ff 1024.",
        "config": dict(num_layers=4, hidden_dim=256, num_heads=4, intermediate_dim=1024,
                       max_sequence_length=512, dropout=0.1),
    },
    "encoder_base": {
        "class": "EncoderBackbone",
        "description": "12 layers, 768 d, 12 heads, ff 3072 (BERT-base dimensions).",
        "config": dict(num_layers=12, hidden_dim=768, num_heads=12, intermediate_dim=3072,
                       max_sequence_length=512, dropout=0.1),
    },
}


def list_presets():
    """Names of all presets.

    Example:
    >>> "encoder_tiny" in list_presets()
    True
    """
    return sorted(PRESETS)


def get_preset(name):
    """The preset dict for `name`, or a ValueError listing the known names."""
    if name not in PRESETS:
        raise ValueError(f"Unknown preset {name!r}; known presets: {', '.join(list_presets())}")
    return PRESETS[name]
