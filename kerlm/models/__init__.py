"""Backbones and their named presets.

Each backbone module registers its class and presets (`kerlm.models.registry`); importing
it here is all a new backbone needs.
"""

from kerlm.models.backbone import Backbone
from kerlm.models.decoder_backbone import DecoderBackbone
from kerlm.models.encoder_backbone import EncoderBackbone
from kerlm.models.encoder_decoder_backbone import EncoderDecoderBackbone
from kerlm.models.registry import (CAPABILITIES, list_presets, preset_capabilities,
                                   presets_with)

__all__ = ["Backbone", "CAPABILITIES", "DecoderBackbone", "EncoderBackbone",
           "EncoderDecoderBackbone", "list_presets", "preset_capabilities", "presets_with"]
