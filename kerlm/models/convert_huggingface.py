"""Load Hugging Face BERT and GPT-2 checkpoints (`config.json` + safetensors) without PyTorch.

`load(directory)` maps the Hugging Face config to a kerlm config (BERT → `EncoderBackbone`,
GPT-2 → `DecoderBackbone`), reads `model.safetensors` (or the shards listed in
`model.safetensors.index.json`) as numpy, and copies each tensor by name: BERT's `Linear`
weights are `[out, in]` and are transposed, GPT-2's `Conv1D` weights are already
`[in, out]`, query/key/value go into kerlm's fused projection. The key prefix of task models
(`bert.`, `transformer.`) is detected; pretraining and task heads (`cls.*`, `lm_head.*`, ...)
and buffers (`position_ids`, `attn.bias`) are skipped; any other tensor the mapping does not
use, any missing tensor and any shape mismatch is an error naming the tensor.

Example:
>>> config = gpt2_config({"model_type": "gpt2", "n_embd": 64, "n_layer": 2, "n_head": 4})
>>> config["intermediate_dim"], config["activation"]
(256, 'gelu_approximate')
"""

import contextlib
import json
import os

from kerlm.models import registry
from kerlm.models.convert_weights import FLAT, SAME, Checkpoint, dense, linear, transfer

WEIGHTS_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
# What to do with a checkpoint of PyTorch (or TensorFlow, Flax) weights.
CONVERT = ("convert it where PyTorch and transformers are installed: "
           "transformers.AutoModel.from_pretrained({0!r}).save_pretrained({0!r}, "
           "safe_serialization=True) writes {1} beside the other weights")
# Hugging Face `hidden_act` / `activation_function` names -> kerlm activations.
ACTIVATIONS = {"gelu": "gelu", "gelu_new": "gelu_approximate",
               "gelu_pytorch_tanh": "gelu_approximate", "relu": "relu", "silu": "silu",
               "swish": "silu"}


def _activation(name, key):
    if name not in ACTIVATIONS:
        raise ValueError(f"Hugging Face {key}={name!r} is not supported; kerlm supports "
                         f"{sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]


def _unsupported(config, checks):
    """A ValueError for the first `(key, supported value, default)` the config sets otherwise."""
    for key, value, default in checks:
        if config.get(key, default) != value:
            raise ValueError(f"Hugging Face {config['model_type']} option {key}="
                             f"{config.get(key)!r} is not supported (kerlm needs {value!r})")


def bert_config(config):
    """kerlm `EncoderBackbone` arguments from a Hugging Face BERT `config.json` dict."""
    _unsupported(config, [("position_embedding_type", "absolute", "absolute"),
                          ("add_cross_attention", False, False)])
    return dict(vocabulary_size=config.get("vocab_size", 30522),
                num_layers=config.get("num_hidden_layers", 12),
                hidden_dim=config.get("hidden_size", 768),
                num_heads=config.get("num_attention_heads", 12),
                intermediate_dim=config.get("intermediate_size", 3072),
                max_sequence_length=config.get("max_position_embeddings", 512),
                num_segments=config.get("type_vocab_size", 2),
                layer_norm_epsilon=config.get("layer_norm_eps", 1e-12),
                activation=_activation(config.get("hidden_act", "gelu"), "hidden_act"),
                dropout=config.get("hidden_dropout_prob", 0.1))


def gpt2_config(config):
    """kerlm `DecoderBackbone` arguments from a Hugging Face GPT-2 `config.json` dict."""
    _unsupported(config, [("scale_attn_by_inverse_layer_idx", False, False),
                          ("add_cross_attention", False, False)])
    hidden = config.get("n_embd", 768)
    return dict(vocabulary_size=config.get("vocab_size", 50257),
                num_layers=config.get("n_layer", 12), hidden_dim=hidden,
                num_heads=config.get("n_head", 12),
                intermediate_dim=config.get("n_inner") or 4 * hidden,
                max_sequence_length=config.get("n_positions", 1024),
                layer_norm_epsilon=config.get("layer_norm_epsilon", 1e-5),
                activation=_activation(config.get("activation_function", "gelu_new"),
                                       "activation_function"),
                scale_scores=config.get("scale_attn_weights", True),
                dropout=config.get("resid_pdrop", 0.1))


def _norm(kerlm, hf, names=("weight", "bias")):
    return [(f"{kerlm}/gamma", f"{hf}.{names[0]}", SAME, None),
            (f"{kerlm}/beta", f"{hf}.{names[1]}", SAME, None)]


def _projection(kerlm, hf, layout):
    return [(f"{kerlm}/kernel", f"{hf}.weight", layout, None),
            (f"{kerlm}/bias", f"{hf}.bias", FLAT, None)]


def bert_plan(num_layers, prefix, names):
    """The kerlm weight ← BERT tensor mapping; `names` is the checkpoint's tensor names."""
    e = f"{prefix}embeddings."
    # Original BERT checkpoints name LayerNorm parameters gamma/beta, later ones weight/bias.
    ln = ("gamma", "beta") if f"{e}LayerNorm.gamma" in names else ("weight", "bias")
    plan = [("token_embedding/embeddings", f"{e}word_embeddings.weight", SAME, None),
            ("position_embedding/embeddings", f"{e}position_embeddings.weight", SAME, None),
            ("segment_embedding/embeddings", f"{e}token_type_embeddings.weight", SAME, None),
            *_norm("embeddings_norm", f"{e}LayerNorm", ln)]
    for i in range(num_layers):
        hf, k = f"{prefix}encoder.layer.{i}.", f"transformer_layer_{i}/"
        for j, part in enumerate(("query", "key", "value")):
            plan += [(f"{k}self_attention/qkv/kernel", f"{hf}attention.self.{part}.weight",
                      linear(1), (slice(None), j)),
                     (f"{k}self_attention/qkv/bias", f"{hf}attention.self.{part}.bias", FLAT, j)]
        plan += _projection(f"{k}self_attention/attention_output", f"{hf}attention.output.dense",
                            linear(2))
        plan += _norm(f"{k}self_attention_norm", f"{hf}attention.output.LayerNorm", ln)
        plan += _projection(f"{k}ffn/ffn_inner", f"{hf}intermediate.dense", linear(1))
        plan += _projection(f"{k}ffn/ffn_outer", f"{hf}output.dense", linear(1))
        plan += _norm(f"{k}ffn_norm", f"{hf}output.LayerNorm", ln)
    return plan + _projection("pooled_dense", f"{prefix}pooler.dense", linear(1))


def gpt2_plan(num_layers, prefix, names):
    """The kerlm weight ← GPT-2 tensor mapping (Conv1D weights are `[in, out]`)."""
    plan = [("token_embedding/embeddings", f"{prefix}wte.weight", SAME, None),
            ("position_embedding/embeddings", f"{prefix}wpe.weight", SAME, None)]
    for i in range(num_layers):
        hf, k = f"{prefix}h.{i}.", f"transformer_layer_{i}/"
        plan += _norm(f"{k}self_attention_norm", f"{hf}ln_1")
        plan += _projection(f"{k}self_attention/qkv", f"{hf}attn.c_attn", dense(1))
        plan += _projection(f"{k}self_attention/attention_output", f"{hf}attn.c_proj", dense(2))
        plan += _norm(f"{k}ffn_norm", f"{hf}ln_2")
        plan += _projection(f"{k}ffn/ffn_inner", f"{hf}mlp.c_fc", dense(1))
        plan += _projection(f"{k}ffn/ffn_outer", f"{hf}mlp.c_proj", dense(1))
    return plan + _norm("final_norm", f"{prefix}ln_f")


# model_type -> (kerlm class, config function, plan function, a tensor every checkpoint has,
# names that are not backbone weights: heads of task models and buffers)
MODELS = {
    "bert": ("EncoderBackbone", bert_config, bert_plan, "embeddings.word_embeddings.weight",
             ["cls.*", "classifier.*", "qa_outputs.*", "*position_ids"]),
    "gpt2": ("DecoderBackbone", gpt2_config, gpt2_plan, "wte.weight",
             ["lm_head.*", "score.*", "multiple_choice_head.*", "*.attn.bias",
              "*.attn.masked_bias"]),
}


def read_safetensors(directory, stack):
    """`{name: reader}` for the checkpoint's tensors; files stay open until `stack` closes."""
    import safetensors  # noqa: PLC0415 (only needed for Hugging Face checkpoints)
    index = os.path.join(directory, INDEX_FILE)
    if os.path.isfile(index):
        with open(index, encoding="utf-8") as f:
            weight_map = json.load(f)["weight_map"]
    elif os.path.isfile(os.path.join(directory, WEIGHTS_FILE)):
        weight_map = None
    else:
        found = sorted(f for f in os.listdir(directory)
                       if f.endswith((".bin", ".h5", ".msgpack", ".safetensors")))
        raise ValueError(f"Hugging Face checkpoint {directory} has no {WEIGHTS_FILE} or "
                         f"{INDEX_FILE} (weight files found: {found or 'none'}); kerlm reads "
                         f"safetensors only: {CONVERT.format(directory, WEIGHTS_FILE)}")
    files = {}

    def handle(filename):
        if filename not in files:
            files[filename] = stack.enter_context(
                safetensors.safe_open(os.path.join(directory, filename), framework="np"))
        return files[filename]

    if weight_map is None:
        return {name: (lambda name=name: handle(WEIGHTS_FILE).get_tensor(name))
                for name in handle(WEIGHTS_FILE).keys()}
    return {name: (lambda name=name, filename=filename: handle(filename).get_tensor(name))
            for name, filename in weight_map.items()}


def _prefix(names, anchor, model_type, directory):
    """The key prefix of the backbone's tensors: "" for base models, e.g. "bert." for tasks."""
    prefixes = sorted((n[:-len(anchor)] for n in names if n == anchor or n.endswith("." + anchor)),
                      key=len)
    if not prefixes:
        raise ValueError(f"{directory} does not look like a Hugging Face {model_type} "
                         f"checkpoint: no tensor named {anchor!r} (with or without a prefix); "
                         f"its tensors start with {sorted(names)[:5]}")
    return prefixes[0]


def load(directory, config=None, **overrides):
    """The kerlm backbone of the Hugging Face checkpoint in `directory`, weights loaded.

    `config` is the parsed `config.json` (read from `directory` if None); `overrides`
    replace kerlm config entries (e.g. `dropout`, `dtype`).
    """
    if config is None:
        with open(os.path.join(directory, "config.json"), encoding="utf-8") as f:
            config = json.load(f)
    model_type = config.get("model_type")
    if model_type not in MODELS:
        raise ValueError(f"Hugging Face checkpoint {directory} has model_type {model_type!r}; "
                         f"kerlm loads {', '.join(sorted(MODELS))} (BERT-family encoders saved "
                         "as model_type bert, e.g. MiniLM; GPT-2): use a checkpoint of one "
                         "of those")
    class_name, make_config, make_plan, anchor, ignore = MODELS[model_type]
    model = registry.backbone_class(class_name)(**{**make_config(config), **overrides})
    with contextlib.ExitStack() as stack:
        tensors = read_safetensors(directory, stack)
        prefix = _prefix(tensors, anchor, model_type, directory)
        plan = make_plan(model.num_layers, prefix, tensors)
        transfer(model, plan, Checkpoint(tensors, f"Hugging Face {model_type} checkpoint "
                                         f"{directory}", ignore))
    return model

