"""The base class of kerlm backbones: a functional Keras model built from a config."""

import keras

from kerlm.models import presets as presets_lib


class Backbone(keras.Model):
    """A functional model whose constructor arguments are its whole config.

    Subclasses build their graph in `__init__` and list their constructor arguments in
    `get_config`, so `keras.saving.load_model` rebuilds them exactly.
    """

    @classmethod
    def from_preset(cls, name, **overrides):
        """Build a backbone from a preset name (see `kerlm.models.list_presets()`).

        Example:
        >>> backbone = Backbone.from_preset("encoder_tiny", vocabulary_size=100)
        >>> backbone.num_layers
        2
        """
        preset = presets_lib.get_preset(name)
        backbone_cls = presets_lib.BACKBONE_CLASSES[preset["class"]]
        if cls is not Backbone and not issubclass(backbone_cls, cls):
            raise ValueError(f"Preset {name!r} builds a {backbone_cls.__name__}, not a {cls.__name__}")
        return backbone_cls(**{**preset["config"], **overrides})

    @classmethod
    def from_config(cls, config):
        return cls(**config)
