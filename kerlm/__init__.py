"""kerlm: Transformer language models in Keras 3, from layers to served SavedModels."""

__version__ = "0.1.0"
