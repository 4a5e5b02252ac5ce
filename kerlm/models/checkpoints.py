"""Load a backbone from a directory: a kerlm save, a keras-hub preset or a Hugging Face checkpoint.

`load_directory(path)` reads `path/config.json` to tell the formats apart, as keras-hub
does: `"registered_name": "kerlm>..."` is a kerlm save (`Backbone.save_to_preset`),
`"keras_hub>BertBackbone"` (or GPT-2, BART) a keras-hub preset (converted with
`convert_keras_hub`), `"model_type": "bert"` or `"gpt2"` a Hugging Face checkpoint (read with
`convert_huggingface`). `wordpiece_vocabulary(path)` finds the WordPiece vocabulary file a
directory carries, to tokenize text for its backbone (`kerlm.tokenizers.load(path)` reads
it with its casing and special tokens: a Hugging Face BERT-family directory's `vocab.txt`
or `tokenizer.json`, and `tokenizer_config.json`; a sentence-transformers directory's
pooling is `kerlm.models.sentence_transformers.pooling(path)`).

Example:
>>> import tempfile
>>> from kerlm.models import Backbone
>>> directory = tempfile.mkdtemp()
>>> Backbone.from_preset("encoder_tiny", vocabulary_size=100).save_to_preset(directory)
>>> type(load_directory(directory, dropout=0.0)).__name__, wordpiece_vocabulary(directory)
('EncoderBackbone', None)
"""

import hashlib
import json
import os

import keras

from kerlm.models import convert_huggingface, convert_keras_hub, registry

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.weights.h5"
KERAS_HUB_BACKBONES = [f"keras_hub>{name}" for name in convert_keras_hub.supported()]
VOCABULARY_FILES = ("vocab.txt", os.path.join("assets", "tokenizer", "vocabulary.txt"))
TOKENIZER_FILE = "tokenizer.json"  # Hugging Face `tokenizers`' file (or keras-hub's config)
SUPPORTED = ("a kerlm save (Backbone.save_to_preset), a keras-hub preset of "
             f"{', '.join(convert_keras_hub.supported())}, or a Hugging Face checkpoint "
             f"(config.json + model.safetensors) of model_type "
             f"{', '.join(sorted(convert_huggingface.MODELS))}")


def _load_kerlm(path, config, overrides):
    config = {**config, "config": {**config["config"], **overrides}}
    backbone = keras.saving.deserialize_keras_object(config)
    if not registry.is_backbone(backbone):
        raise ValueError(f"{path}: config.json describes a {type(backbone).__name__}, "
                         "not a kerlm backbone")
    backbone.load_weights(os.path.join(path, WEIGHTS_FILE))
    return backbone


def load_directory(path, **overrides):
    """The backbone saved or converted from directory `path`, weights loaded.

    `overrides` replace config entries (e.g. `dropout`, `dtype`); a ValueError names the
    directory and what it holds when the format, model type or a weight does not fit.
    """
    config_path = os.path.join(path, CONFIG_FILE)
    if not os.path.isfile(config_path):
        raise ValueError(f"{path} has no {CONFIG_FILE}; kerlm loads {SUPPORTED}")
    with open(config_path, encoding="utf-8") as f:
        config = json.load(f)
    if not isinstance(config, dict):
        raise ValueError(f"{config_path} is not a JSON object; kerlm loads {SUPPORTED}")
    registered = config.get("registered_name")
    if isinstance(registered, str) and registered.startswith("kerlm>"):
        return _load_kerlm(path, config, overrides)
    if registered in KERAS_HUB_BACKBONES:
        import keras_hub  # noqa: PLC0415 (heavy; only needed here)
        return convert_keras_hub.from_keras_hub(keras_hub.models.Backbone.from_preset(path),
                                                **overrides)
    if registered is not None:
        raise ValueError(f"{path} holds a Keras preset of {registered!r}; kerlm loads "
                         f"{SUPPORTED}")
    if "model_type" in config:
        return convert_huggingface.load(path, config, **overrides)
    raise ValueError(f"{config_path} has neither 'registered_name' (Keras) nor 'model_type' "
                     f"(Hugging Face); its keys are {sorted(config)[:10]}; kerlm loads {SUPPORTED}")


def _is_wordpiece(path):
    """True if `path` is a Hugging Face tokenizer.json of a WordPiece model."""
    try:
        with open(path, encoding="utf-8") as f:
            spec = json.load(f)
    except ValueError:
        return False
    return isinstance(spec, dict) and (spec.get("model") or {}).get("type") == "WordPiece"


def wordpiece_vocabulary(path):
    """The WordPiece vocabulary file in directory `path` (Hugging Face `vocab.txt`, keras-hub
    `assets/tokenizer/vocabulary.txt`, else a Hugging Face WordPiece `tokenizer.json`), or
    None."""
    for name in VOCABULARY_FILES:
        if os.path.isfile(os.path.join(path, name)):
            return os.path.join(path, name)
    tokenizer = os.path.join(path, TOKENIZER_FILE)
    return tokenizer if os.path.isfile(tokenizer) and _is_wordpiece(tokenizer) else None


def fingerprint(path):
    """SHA-256 (hex) of checkpoint directory `path` as it is on disk, cheap to compute: its
    `config.json`'s bytes, and the relative path, size and mtime of every file in it (the
    weights file included, without reading it: a changed or replaced file changes the
    fingerprint). A ValueError if `path` has no `config.json`."""
    config_path = os.path.join(path, CONFIG_FILE)
    if not os.path.isfile(config_path):
        raise ValueError(f"{path} has no {CONFIG_FILE}; kerlm loads {SUPPORTED}")
    digest = hashlib.sha256()
    with open(config_path, "rb") as f:
        digest.update(f.read())
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            full = os.path.join(root, name)
            status = os.stat(full)
            digest.update(f"\n{os.path.relpath(full, path)}:{status.st_size}:"
                          f"{status.st_mtime_ns}".encode())
    return digest.hexdigest()
