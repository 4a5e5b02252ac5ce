"""Transformer layers in `keras.ops` (any Keras 3 backend)."""

from kerlm.layers.attention import MultiHeadAttention, merge_padding_and_attention_mask
from kerlm.layers.embeddings import PositionEmbedding, TokenAndPositionEmbedding
from kerlm.layers.pooling import MaskedMeanPooling
from kerlm.layers.transformer_encoder import TransformerEncoder

__all__ = ["MultiHeadAttention", "merge_padding_and_attention_mask", "PositionEmbedding",
           "TokenAndPositionEmbedding", "MaskedMeanPooling", "TransformerEncoder"]
