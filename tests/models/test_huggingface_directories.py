"""Small hand-made Hugging Face checkpoint directories: a BERT with `tokenizer.json` only
through `--model=DIR`, sentence-transformers pooling (`kerlm.models.sentence_transformers`),
and one-line errors that say what to do (PyTorch weights only, an unknown `model_type`, a
tokenizer kerlm's WordPiece cannot run). The real checkpoint: test_huggingface_checkpoint.py.
"""

import json
import os

import numpy as np
import pytest
import safetensors.numpy
import tensorflow as tf

from kerlm import tasks, tokenizers
from kerlm.config import ConfigError
from kerlm.models import Backbone, checkpoints, sentence_transformers
from kerlm.tokenizers.word_piece import RESERVED_TOKENS

VOCABULARY = RESERVED_TOKENS + ["the", "film", "good", "bad", "great", "!"] + \
    [f"w{i}" for i in range(53)]
V, D, FF, P = len(VOCABULARY), 16, 32, 32
BERT_CONFIG = {"model_type": "bert", "architectures": ["BertModel"], "vocab_size": V,
               "hidden_size": D, "num_hidden_layers": 1, "num_attention_heads": 2,
               "intermediate_size": FF, "max_position_embeddings": P, "type_vocab_size": 2,
               "hidden_act": "gelu", "layer_norm_eps": 1e-12}


def bert_tensors(seed=0):
    """A one-layer BertModel's tensors (PyTorch names and [out, in] layouts), random."""
    rng = np.random.default_rng(seed)
    shapes = {"embeddings.word_embeddings.weight": (V, D),
              "embeddings.position_embeddings.weight": (P, D),
              "embeddings.token_type_embeddings.weight": (2, D), "pooler.dense.weight": (D, D),
              "pooler.dense.bias": (D,)}
    for norm in ("embeddings.LayerNorm", "encoder.layer.0.attention.output.LayerNorm",
                 "encoder.layer.0.output.LayerNorm"):
        shapes.update({f"{norm}.weight": (D,), f"{norm}.bias": (D,)})
    for name, (out, inputs) in {"attention.self.query": (D, D), "attention.self.key": (D, D),
                                "attention.self.value": (D, D),
                                "attention.output.dense": (D, D),
                                "intermediate.dense": (FF, D),
                                "output.dense": (D, FF)}.items():
        shapes.update({f"encoder.layer.0.{name}.weight": (out, inputs),
                       f"encoder.layer.0.{name}.bias": (out,)})
    return {name: rng.normal(0.0, 0.2, shape).astype("float32") for name, shape in shapes.items()}


def hf_wordpiece_json(vocabulary=VOCABULARY, model_type="WordPiece"):
    """A tokenizer.json as Hugging Face's `tokenizers` writes BERT's (hand-made: the parts
    kerlm reads)."""
    ids = {token: i for i, token in enumerate(vocabulary)}
    return {"version": "1.0", "truncation": None, "padding": None,
            "added_tokens": [{"id": ids[t], "content": t, "special": True}
                             for t in RESERVED_TOKENS],
            "normalizer": {"type": "BertNormalizer", "clean_text": True,
                           "handle_chinese_chars": True, "strip_accents": None,
                           "lowercase": True},
            "pre_tokenizer": {"type": "BertPreTokenizer"},
            "post_processor": {"type": "BertProcessing", "sep": ["[SEP]", 3],
                               "cls": ["[CLS]", 2]},
            "model": {"type": model_type, "unk_token": "[UNK]",
                      "continuing_subword_prefix": "##", "max_input_chars_per_word": 100,
                      "vocab": ids}}


def write_checkpoint(directory, files=None, tensors=True, config=BERT_CONFIG):
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(config, f)
    if tensors:
        safetensors.numpy.save_file(bert_tensors(), os.path.join(directory, "model.safetensors"))
    for name, content in (files or {}).items():
        os.makedirs(os.path.dirname(os.path.join(directory, name)), exist_ok=True)
        with open(os.path.join(directory, name), "w", encoding="utf-8") as f:
            f.write(content if isinstance(content, str) else json.dumps(content))
    return str(directory)


def listing(directory):
    return sorted((os.path.relpath(os.path.join(root, name), directory),
                   os.stat(os.path.join(root, name)).st_mtime_ns)
                  for root, _, names in os.walk(directory) for name in names)


def classification(directory):
    return tasks.get_task(tasks.default_config("classification", {
        "model.preset": directory, "classification.sequence_length": 16}))


# --model=DIR --------------------------------------------------------------------------------
def test_a_bert_with_tokenizer_json_only_through_the_model_flag(tmp_path):
    directory = write_checkpoint(tmp_path / "hf", {
        "tokenizer.json": hf_wordpiece_json(),
        "tokenizer_config.json": {"do_lower_case": False, "model_max_length": 512}})
    before = listing(directory)
    assert checkpoints.wordpiece_vocabulary(directory) == os.path.join(directory,
                                                                       "tokenizer.json")
    task = classification(directory)
    run = str(tmp_path / "run")
    task.prepare(task.read("train")[:20], run)
    tokenizer = task.preprocessor.tokenizer
    assert tokenizer.vocabulary == VOCABULARY and not tokenizer.lowercase
    assert tokenizer.max_length == P  # model_max_length capped by max_position_embeddings
    model = task.new_model()
    assert model(task.preprocessor(tf.constant(["the good film", "bad"]))).shape[0] == 2
    assert listing(directory) == before  # nothing written into the checkpoint
    again = tokenizers.load(run)  # the run's copy, which `restore` reads
    assert (again.vocabulary, again.lowercase, again.max_length) == (VOCABULARY, False, P)


def test_a_bpe_tokenizer_for_a_wordpiece_task_is_one_line_naming_the_flag(tmp_path):
    bpe = hf_wordpiece_json(model_type="BPE")
    directory = write_checkpoint(tmp_path, {"tokenizer.json": bpe})
    assert checkpoints.wordpiece_vocabulary(directory) is None
    task = classification(directory)
    with pytest.raises(ConfigError, match=r"^--model: .*tokenizer\.json holds a 'BPE' "
                                          r"tokenizer, not WordPiece") as error:
        task.prepare(task.read("train")[:20], str(tmp_path / "run"))
    assert "\n" not in str(error.value)


# Errors that say what to do -----------------------------------------------------------------
def test_pytorch_weights_only(tmp_path):
    directory = write_checkpoint(tmp_path, {"pytorch_model.bin": ""}, tensors=False)
    with pytest.raises(ValueError) as error:
        Backbone.from_preset(directory)
    message = str(error.value)
    assert "has no model.safetensors" in message and "['pytorch_model.bin']" in message
    assert (f"transformers.AutoModel.from_pretrained({directory!r}).save_pretrained("
            f"{directory!r}, safe_serialization=True)") in message
    assert "\n" not in message


def test_unknown_model_type_lists_the_supported_ones(tmp_path):
    directory = write_checkpoint(tmp_path, config={**BERT_CONFIG, "model_type": "roberta"})
    with pytest.raises(ValueError, match=r"model_type 'roberta'; kerlm loads bert, gpt2 "
                                         r"\(BERT-family .*\): use a checkpoint of one"):
        Backbone.from_preset(directory)


# sentence-transformers ----------------------------------------------------------------------
def _modules(*kinds):
    paths = {"Transformer": "", "Pooling": "1_Pooling", "Normalize": "2_Normalize",
             "Dense": "2_Dense"}
    return [{"idx": i, "name": str(i), "path": paths[kind],
             "type": f"sentence_transformers.models.{kind}"} for i, kind in enumerate(kinds)]


def _pooling_config(**modes):
    return {"word_embedding_dimension": D, "pooling_mode_cls_token": False,
            "pooling_mode_mean_tokens": False, "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False, **modes}


@pytest.mark.parametrize("mode, normalize", [("cls", False), ("max", True), ("mean", False)])
def test_sentence_transformers_pooling(tmp_path, mode, normalize):
    kinds = ("Transformer", "Pooling") + (("Normalize",) if normalize else ())
    key = {"cls": "pooling_mode_cls_token"}.get(mode, f"pooling_mode_{mode}_tokens")
    directory = write_checkpoint(tmp_path, {
        "modules.json": _modules(*kinds), "1_Pooling/config.json": _pooling_config(**{key: True}),
        "sentence_bert_config.json": {"max_seq_length": 128, "do_lower_case": False}})
    assert sentence_transformers.pooling(directory) == {"mode": mode, "normalize": normalize,
                                                        "max_length": 128}


def test_not_a_sentence_transformers_directory(tmp_path):
    assert sentence_transformers.pooling(write_checkpoint(tmp_path)) is None


@pytest.mark.parametrize("modules, pooling, message", [
    (("Transformer", "Pooling", "Dense", "Normalize"), {"pooling_mode_mean_tokens": True},
     r"modules\.json: module 'sentence_transformers\.models\.Dense' is not supported; kerlm "
     r"reads Transformer, Pooling, Normalize modules"),
    (("Transformer", "Normalize"), {}, r"modules\.json has the modules \['Transformer', "
                                       r"'Normalize'\]; kerlm runs Transformer, Pooling"),
    (("Transformer", "Pooling"), {"pooling_mode_mean_sqrt_len_tokens": True},
     r"1_Pooling/config\.json: pooling \['pooling_mode_mean_sqrt_len_tokens'\] is not "
     r"supported; kerlm pools with exactly one of mean, cls, max"),
    (("Transformer", "Pooling"), {"pooling_mode_mean_tokens": True,
                                  "pooling_mode_max_tokens": True},
     r"pooling \['mean', 'max'\] is not supported"),
], ids=["dense", "no-pooling", "sqrt-len", "two-modes"])
def test_sentence_transformers_errors_name_the_file(tmp_path, modules, pooling, message):
    directory = write_checkpoint(tmp_path, {"modules.json": _modules(*modules),
                                            "1_Pooling/config.json": _pooling_config(**pooling)})
    with pytest.raises(ValueError, match=message) as error:
        sentence_transformers.pooling(directory)
    assert str(tmp_path) in str(error.value) and "\n" not in str(error.value)
