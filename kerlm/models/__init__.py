"""Backbones and their named presets."""

from kerlm.models import presets as _presets
from kerlm.models.backbone import Backbone
from kerlm.models.encoder_backbone import EncoderBackbone
from kerlm.models.presets import list_presets

_presets.BACKBONE_CLASSES.update(EncoderBackbone=EncoderBackbone)

__all__ = ["Backbone", "EncoderBackbone", "list_presets"]
