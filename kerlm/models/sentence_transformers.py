"""How a sentence-transformers checkpoint turns its encoder's output into a sentence embedding.

A sentence-transformers directory is a Hugging Face checkpoint (`config.json`,
`model.safetensors`, tokenizer files: `kerlm.models.checkpoints` loads its backbone) plus
`modules.json`, the pipeline after the encoder: a `Pooling` module (its `config.json` says
mean, [CLS] or max pooling over the real tokens) and optionally a `Normalize` module (unit
L2 norm). `pooling(directory)` reads that pipeline, without sentence-transformers or
PyTorch; `sentence_bert_config.json`'s `max_seq_length` (the length the model was trained
with) comes along.

Example:
>>> import json, os, tempfile
>>> directory = tempfile.mkdtemp()
>>> os.makedirs(os.path.join(directory, "1_Pooling"))
>>> modules = [{"path": "", "type": "sentence_transformers.models.Transformer"},
...            {"path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
...            {"path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]
>>> with open(os.path.join(directory, "modules.json"), "w") as f:
...     json.dump(modules, f)
>>> with open(os.path.join(directory, "1_Pooling", "config.json"), "w") as f:
...     json.dump({"pooling_mode_mean_tokens": True, "pooling_mode_cls_token": False}, f)
>>> pooling(directory)
{'mode': 'mean', 'normalize': True, 'max_length': None}
>>> pooling(tempfile.mkdtemp()) is None  # not a sentence-transformers directory
True
"""

import json
import os

MODULES_FILE = "modules.json"
CONFIG_FILE = "config.json"  # a Pooling module's, in its directory
SENTENCE_CONFIG_FILE = "sentence_bert_config.json"
# sentence-transformers' Pooling options → kerlm's pooling modes
MODES = {"pooling_mode_mean_tokens": "mean", "pooling_mode_cls_token": "cls",
         "pooling_mode_max_tokens": "max"}
UNSUPPORTED_MODES = ("pooling_mode_mean_sqrt_len_tokens", "pooling_mode_weightedmean_tokens",
                     "pooling_mode_lasttoken")
# the modules kerlm runs (sentence_transformers.models.X), in order; Normalize is optional
MODULES = ("Transformer", "Pooling", "Normalize")


def _read_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except ValueError as e:
        raise ValueError(f"{path} is not valid JSON ({e})") from e


def _kind(module, path):
    kind = str(module.get("type", "")).rsplit(".", 1)[-1]
    if kind not in MODULES:
        raise ValueError(f"{path}: module {module.get('type')!r} is not supported; kerlm "
                         f"reads {', '.join(MODULES)} modules")
    return kind


def _mode(path):
    """"mean", "cls" or "max": the one pooling mode a Pooling config.json turns on."""
    config = _read_json(path)
    unsupported = [key for key in UNSUPPORTED_MODES if config.get(key)]
    modes = [mode for key, mode in MODES.items() if config.get(key)]
    if unsupported or len(modes) != 1:
        raise ValueError(f"{path}: pooling {unsupported + modes or 'none'} is not supported; "
                         f"kerlm pools with exactly one of {', '.join(MODES.values())}")
    return modes[0]


def pooling(directory):
    """`{"mode": "mean" | "cls" | "max", "normalize": bool, "max_length": int or None}` of
    the sentence-transformers checkpoint in `directory`, or None if it has no modules.json.
    A ValueError names the file of a module or pooling mode kerlm does not run."""
    path = os.path.join(directory, MODULES_FILE)
    if not os.path.isfile(path):
        return None
    modules = _read_json(path)
    if not isinstance(modules, list):
        raise ValueError(f"{path} is not a list of modules")
    kinds = [_kind(module, path) for module in modules]
    if kinds not in (list(MODULES[:2]), list(MODULES)):
        raise ValueError(f"{path} has the modules {kinds}; kerlm runs Transformer, Pooling "
                         "and optionally Normalize, in that order")
    mode = _mode(os.path.join(directory, modules[1].get("path", ""), CONFIG_FILE))
    sentence_config = os.path.join(directory, SENTENCE_CONFIG_FILE)
    max_length = (_read_json(sentence_config).get("max_seq_length")
                  if os.path.isfile(sentence_config) else None)
    return {"mode": mode, "normalize": "Normalize" in kinds, "max_length": max_length}
