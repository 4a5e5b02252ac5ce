"""Backbones and their named presets."""

from kerlm.models import presets as _presets
from kerlm.models.backbone import Backbone
from kerlm.models.decoder_backbone import DecoderBackbone
from kerlm.models.encoder_backbone import EncoderBackbone
from kerlm.models.encoder_decoder_backbone import EncoderDecoderBackbone
from kerlm.models.presets import list_presets

_presets.BACKBONE_CLASSES.update(EncoderBackbone=EncoderBackbone, DecoderBackbone=DecoderBackbone,
                                 EncoderDecoderBackbone=EncoderDecoderBackbone)

__all__ = ["Backbone", "DecoderBackbone", "EncoderBackbone", "EncoderDecoderBackbone",
           "list_presets"]
