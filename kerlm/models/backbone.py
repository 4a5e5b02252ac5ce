"""The base class of kerlm backbones: a functional Keras model built from its config.

Every backbone's constructor arguments are its whole config (keras-hub's convention): the
same dict builds it, is saved in `.keras` files and presets, and is what `get_config`
returns. The helpers here build the parts the three backbones share: the embedding stack
(token, position, segment embeddings, scale, norm, dropout) and the block options.

Adding a backbone is one module: a `Backbone` subclass decorated with
`@keras.saving.register_keras_serializable(package="kerlm")` and
`@kerlm.models.registry.register_backbone`, its `capabilities` and `features`, and
`registry.register_presets(cls, {...})` for the presets it builds; then one import line in
`kerlm/models/__init__.py`.
"""

import json
import math
import os

import keras
from keras import ops

from kerlm import __version__
from kerlm.layers import (PositionEmbedding, RelativePositionBias, SinusoidalPositionEncoding,
                          normalization)
from kerlm.models import presets

POSITIONS = ("learned", "sinusoidal", "rotary", "relative", "none")


class Backbone(keras.Model):
    """A functional model whose constructor arguments are its whole config.

    Subclasses build their graph in `__init__` from `constructor_config(locals())` and pass
    that config to `_remember` after `super().__init__`, so `get_config` returns the
    arguments and `keras.saving.load_model` rebuilds them exactly.

    What a backbone offers is its class's `capabilities`, a frozenset of names (see
    `kerlm.models.registry.CAPABILITIES`); heads and tasks check these instead of classes:

    - `"encode"`: bidirectional features of a text; every token sees every other one.
    - `"causal"`: a causal decoder-only LM: `init_cache(batch_size, max_length)` and
      `call_with_cache(token_ids, cache, cache_index)` for incremental decoding.
    - `"seq2seq"`: an encoder and a decoder with cross-attention: `encode`, `init_cache`,
      `init_self_cache`, `cross_cache` and `call_decoder_with_cache`.

    Every backbone also has `features(token_ids, padding_mask, segment_ids=None)`, one
    text's hidden states (the input of classification and span heads) whatever its kind,
    and `token_logits(hidden)`, tied-embedding vocabulary logits.

    Example:
    >>> from kerlm import models
    >>> sorted(models.EncoderDecoderBackbone.capabilities)
    ['encode', 'seq2seq']
    >>> "encode" in models.DecoderBackbone.capabilities
    False
    """

    capabilities = frozenset()

    @classmethod
    def from_preset(cls, preset, **overrides):
        """Build a backbone from a preset name or load one from a directory.

        `preset` is a name from `kerlm.models.list_presets()` (random weights), or a
        directory: a kerlm save (`save_to_preset`), a keras-hub preset directory or a
        Hugging Face checkpoint (`config.json` + `model.safetensors`), whose weights are
        loaded. `overrides` replace config entries (e.g. `vocabulary_size`, `dropout`).

        Example:
        >>> backbone = Backbone.from_preset("encoder_tiny", vocabulary_size=100)
        >>> backbone.num_layers
        2
        """
        backbone = presets.load(preset, **overrides)
        if cls is not Backbone and not isinstance(backbone, cls):
            raise ValueError(f"Preset {preset!r} builds a {type(backbone).__name__}, "
                             f"not a {cls.__name__}")
        return backbone

    def save_to_preset(self, directory):
        """Save in keras-hub's preset layout; `Backbone.from_preset(directory)` loads it back.

        Writes `config.json` (the serialized backbone), `model.weights.h5` and
        `metadata.json` (kerlm and Keras versions, parameter count).

        Example:
        >>> import tempfile
        >>> backbone = Backbone.from_preset("decoder_tiny", vocabulary_size=100)
        >>> directory = tempfile.mkdtemp()
        >>> backbone.save_to_preset(directory)
        >>> Backbone.from_preset(directory).count_params() == backbone.count_params()
        True
        """
        os.makedirs(directory, exist_ok=True)
        config = keras.saving.serialize_keras_object(self)
        for key in ("compile_config", "build_config"):
            config.pop(key, None)
        config["config"].pop("trainable", None)  # a frozen backbone loads trainable again
        metadata = {"kerlm_version": __version__, "keras_version": keras.version(),
                    "parameter_count": self.count_params()}
        for name, content in (("config.json", config), ("metadata.json", metadata)):
            with open(os.path.join(directory, name), "w", encoding="utf-8") as f:
                json.dump(content, f, indent=2)
        self.save_weights(os.path.join(directory, "model.weights.h5"))

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def features(self, token_ids, padding_mask, segment_ids=None):
        """One text's hidden states: `{"sequence_output": [batch, length, hidden_dim]}`,
        plus `"pooled_output"` `[batch, hidden_dim]` where the backbone has a pooler.

        An encoder's own outputs (`segment_ids` are fed when it embeds segments, zeros if
        None), a decoder's causal hidden states, an encoder-decoder's `encode` (its decoder
        unused). Works on symbolic inputs (to build a head) and on tensors.

        Example:
        >>> import numpy as np
        >>> backbone = Backbone.from_preset("decoder_tiny", vocabulary_size=50)
        >>> out = backbone.features(np.array([[5, 6, 7]]), np.ones((1, 3), "int32"))
        >>> list(out), tuple(out["sequence_output"].shape)
        (['sequence_output'], (1, 3, 128))
        """
        raise NotImplementedError(f"{type(self).__name__} does not implement features")

    def _remember(self, config):
        """Store the constructor's config (see `constructor_config`) as config and attributes."""
        self._backbone_config = config
        for key, value in config.items():
            setattr(self, key, value)

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable,
                "dtype": keras.dtype_policies.serialize(self.dtype_policy),
                **self._backbone_config}

    def token_logits(self, hidden):
        """Logits over the vocabulary from hidden states, with the tied token embedding.

        One 2-D matmul over `[batch × length, hidden]`: a 3-D einsum becomes a broadcast
        batched matmul whose embedding gradient is one product per example plus a sum (12 %
        slower for an LM head's forward and backward here).
        """
        embeddings = ops.cast(self.token_embedding.embeddings, hidden.dtype)
        shape = ops.shape(hidden)
        logits = ops.einsum("nd,vd->nv", ops.reshape(hidden, (-1, shape[-1])), embeddings)
        return ops.reshape(logits, tuple(shape[:-1]) + (-1,))


def constructor_config(arguments):
    """A backbone's config from its constructor's `locals()`: every argument but `dtype`
    (serialized with the dtype policy) and `**kwargs` (name, trainable)."""
    return {k: v for k, v in arguments.items()
            if k not in ("self", "kwargs", "dtype", "__class__")}


def initializer(stddev=0.02):
    """The truncated-normal initializer BERT and GPT-2 use for every weight."""
    return keras.initializers.TruncatedNormal(stddev=stddev)


def block_options(config):
    """The keyword arguments of `TransformerEncoder`/`TransformerDecoder` from a backbone config."""
    return dict(
        num_heads=config["num_heads"], intermediate_dim=config["intermediate_dim"],
        dropout=config["dropout"], activation=config["activation"], gated=config["gated_ffn"],
        norm=config["norm"], norm_first=config["norm_first"],
        layer_norm_epsilon=config["layer_norm_epsilon"],
        num_key_value_heads=config["num_key_value_heads"], head_dim=config["head_dim"],
        use_bias=config["use_bias"], scale_scores=config["scale_scores"],
        rotary_max_wavelength=(config["rotary_max_wavelength"]
                               if config["position"] == "rotary" else None),
        kernel_initializer=initializer())


class EmbeddingStack:
    """Token embeddings (possibly shared between stacks) + positions, scale, norm, dropout.

    `embedding_norm` adds a norm after the sum (BERT, BART); `scale_embeddings` multiplies
    token embeddings by `sqrt(hidden_dim)` (original Transformer). With
    `position="relative"`, `attention_bias` gives the T5 bias shared by all blocks.
    Not a layer: its layers belong to the backbone, so weight paths stay flat.
    """

    def __init__(self, config, token_embedding, prefix, dtype, bidirectional=True):
        position = config["position"]
        if position not in POSITIONS:
            raise ValueError(f"position must be one of {POSITIONS}, got {position!r}")
        self.token_embedding = token_embedding
        self.scale = math.sqrt(config["hidden_dim"]) if config["scale_embeddings"] else None
        self.position_embedding = None
        if position == "learned":
            self.position_embedding = PositionEmbedding(
                config["max_sequence_length"], initializer=initializer(), dtype=dtype,
                name=f"{prefix}position_embedding")
        elif position == "sinusoidal":
            self.position_embedding = SinusoidalPositionEncoding(
                dtype=dtype, name=f"{prefix}position_embedding")
        self.relative_bias = None
        if position == "relative":
            self.relative_bias = RelativePositionBias(
                config["num_heads"], bidirectional=bidirectional, dtype=dtype,
                name=f"{prefix}relative_position_bias")
        self.segment_embedding = None
        if config.get("num_segments"):
            self.segment_embedding = keras.layers.Embedding(
                config["num_segments"], config["hidden_dim"], embeddings_initializer=initializer(),
                dtype=dtype, name=f"{prefix}segment_embedding")
        self.norm = normalization(config["norm"], config["layer_norm_epsilon"], dtype,
                                  f"{prefix}embeddings_norm") if config["embedding_norm"] else None
        self.dropout = keras.layers.Dropout(config["dropout"], dtype=dtype,
                                            name=f"{prefix}embeddings_dropout")

    def __call__(self, token_ids, segment_ids=None, start_index=0, training=None):
        x = self.token_embedding(token_ids)
        if self.scale:
            x = x * ops.cast(self.scale, x.dtype)
        if self.position_embedding is not None:
            x = x + self.position_embedding(x, start_index=start_index)
        if self.segment_embedding is not None:
            if segment_ids is None:
                segment_ids = ops.zeros_like(token_ids)
            x = x + self.segment_embedding(segment_ids)
        if self.norm is not None:
            x = self.norm(x)
        return self.dropout(x, training=training)

    def attention_bias(self, x, key_length=None, start_index=0):
        """T5's relative position bias for queries `x`, or None for other position types."""
        if self.relative_bias is None:
            return None
        return self.relative_bias(x, key_length=key_length, start_index=start_index)


def token_embedding(config, dtype):
    """The `[vocabulary_size, hidden_dim]` token embedding layer of a backbone."""
    return keras.layers.Embedding(config["vocabulary_size"], config["hidden_dim"],
                                  embeddings_initializer=initializer(), dtype=dtype,
                                  name="token_embedding")


def apply_blocks(blocks, x, norm=None, **kwargs):
    """Run `x` through `blocks` (each called with `kwargs`), then `norm` if there is one."""
    for block in blocks:
        x = block(x, **kwargs)
    return x if norm is None else norm(x)


def final_norm(config, dtype, name="final_norm"):
    """The norm after the last pre-LN block (GPT-2, T5), or None for post-LN stacks."""
    if not config["norm_first"]:
        return None
    return normalization(config["norm"], config["layer_norm_epsilon"], dtype, name)
