"""Transformer layers in `keras.ops` (any Keras 3 backend)."""

from kerlm.layers.attention import MultiHeadAttention, merge_padding_and_attention_mask
from kerlm.layers.copy import CopyDistribution
from kerlm.layers.embeddings import PositionEmbedding, SinusoidalPositionEncoding
from kerlm.layers.feed_forward import FeedForward
from kerlm.layers.normalization import RMSNormalization, normalization
from kerlm.layers.pooling import MaskedMaxPooling, MaskedMeanPooling, TokenPooling
from kerlm.layers.position import RelativePositionBias, apply_rotary, sinusoidal_encoding
from kerlm.layers.transformer_decoder import TransformerDecoder
from kerlm.layers.transformer_encoder import TransformerEncoder

__all__ = ["CopyDistribution", "MultiHeadAttention", "merge_padding_and_attention_mask", "PositionEmbedding",
           "SinusoidalPositionEncoding", "FeedForward", "RMSNormalization", "normalization",
           "MaskedMaxPooling", "MaskedMeanPooling", "TokenPooling", "RelativePositionBias", "apply_rotary", "sinusoidal_encoding",
           "TransformerDecoder", "TransformerEncoder"]
