"""Named backbone configurations, and building a backbone from a name or a directory.

Each backbone module registers its presets (`kerlm.models.registry.register_presets`):
generic sizes from tiny (tests, CPU) to base, and the exact architectures of published
models (`bert_base` in `encoder_backbone`, `gpt2_small` in `decoder_backbone`, `bart_base`
and `t5_small` in `encoder_decoder_backbone`). Generic presets leave out `vocabulary_size`
(a task's tokenizer decides it); architecture presets include the published vocabulary
size. Weights are random: load real ones from a directory (`Backbone.from_preset(path)`).

Example:
>>> import kerlm.models  # registers the backbones and their presets
>>> get_preset("gpt2_small")["description"]
'GPT-2 small (124 M): 12 layers, 768 d, 12 heads, pre-LN, 1024 positions.'
>>> type(load("encoder_tiny", vocabulary_size=50)).__name__
'EncoderBackbone'
"""

import os

from kerlm.models import checkpoints, registry
from kerlm.models.registry import (PRESETS, get_preset, list_presets, preset_capabilities,
                                   presets_with)

__all__ = ["PRESETS", "get_preset", "list_presets", "load", "preset_capabilities",
           "presets_with"]


def load(preset, **overrides):
    """Build the backbone a preset name describes, or load one from a directory."""
    if os.path.isdir(preset):
        return checkpoints.load_directory(preset, **overrides)
    spec = get_preset(preset)
    return registry.backbone_class(spec["class"])(**{**spec["config"], **overrides})
