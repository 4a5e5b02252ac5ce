"""What every single head model shares: it is built on a `backbone`, and its config is the
serialized backbone plus the head's own options (`head_config`).

Example:
>>> from kerlm import heads, models
>>> head = heads.SpanLabeler(models.Backbone.from_preset("encoder_tiny", vocabulary_size=50))
>>> type(head.from_config(head.get_config()).backbone).__name__
'EncoderBackbone'
"""

import keras


class BackboneHead(keras.Model):
    """A Keras model made of a head on `self.backbone`."""

    def head_config(self):
        """The head's constructor arguments beside `backbone` (a JSON-ready dict)."""
        return {}

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable,
                "backbone": keras.layers.serialize(self.backbone), **self.head_config()}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["backbone"] = keras.layers.deserialize(config["backbone"])
        return cls(**config)
