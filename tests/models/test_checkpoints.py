"""Loading backbones from directories: kerlm saves, keras-hub backbones and presets, Hugging Face
checkpoints, with parity against keras-hub on random weights and clear errors."""

import json
import os

import keras
import keras_hub
import numpy as np
import pytest
import safetensors.numpy

from kerlm.models import Backbone, checkpoints
from kerlm.models.convert_keras_hub import from_keras_hub

ATOL = 1e-4
DIMS = dict(vocabulary_size=100, num_layers=2, num_heads=2, hidden_dim=32, intermediate_dim=64,
            max_sequence_length=16)
V, D, FF, P, LAYERS = 100, 32, 64, 16, 2  # the same dimensions, for Hugging Face tensors

TOKENS = np.array([[2, 17, 45, 9, 81, 3, 0, 0], [2, 5, 63, 3, 0, 0, 0, 0]], "int32")
MASK = (TOKENS != 0).astype("int32")
ENCODER_INPUTS = {"token_ids": TOKENS, "padding_mask": MASK,
                  "segment_ids": np.array([[0, 0, 0, 1, 1, 1, 0, 0]] * 2, "int32")}
DECODER_INPUTS = {"token_ids": TOKENS, "padding_mask": MASK}
SEQ2SEQ_INPUTS = {"encoder_token_ids": TOKENS, "encoder_padding_mask": MASK,
                  "decoder_token_ids": TOKENS[:, :5], "decoder_padding_mask": MASK[:, :5]}
KERAS_HUB = {"bert": (keras_hub.models.BertBackbone, "EncoderBackbone", ENCODER_INPUTS),
             "gpt2": (keras_hub.models.GPT2Backbone, "DecoderBackbone", DECODER_INPUTS),
             "bart": (keras_hub.models.BartBackbone, "EncoderDecoderBackbone", SEQ2SEQ_INPUTS)}


def outputs(model, inputs):
    return keras.tree.map_structure(keras.ops.convert_to_numpy, model(inputs, training=False))


def max_difference(a, b):
    return max(float(np.abs(x - y).max())
               for x, y in zip(keras.tree.flatten(a), keras.tree.flatten(b)))


def randomize(model, seed=0):
    """Non-trivial weights: norms' scales around 1, everything else N(0, 0.2)."""
    rng = np.random.default_rng(seed)
    for w in model.weights:
        value = rng.normal(0.0, 0.2, w.shape) + (1.0 if w.path.endswith("gamma") else 0.0)
        w.assign(value.astype("float32"))
    return model


def keras_hub_backbone(kind):
    cls, _, inputs = KERAS_HUB[kind]
    return randomize(cls(**DIMS)), inputs


# kerlm saves


@pytest.mark.parametrize("preset", ["encoder_tiny", "decoder_tiny", "encoder_decoder_tiny"])
def test_save_to_preset_round_trip(tmp_path, preset):
    """save_to_preset writes keras-hub's layout; from_preset(dir) gives identical outputs."""
    backbone = randomize(Backbone.from_preset(preset, vocabulary_size=V))
    backbone.save_to_preset(str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == ["config.json", "metadata.json", "model.weights.h5"]
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["registered_name"] == f"kerlm>{type(backbone).__name__}"
    metadata = json.loads((tmp_path / "metadata.json").read_text())
    assert metadata["parameter_count"] == backbone.count_params()
    assert metadata["keras_version"] == keras.version()

    restored = Backbone.from_preset(str(tmp_path))
    assert type(restored) is type(backbone)
    assert restored.get_config() == backbone.get_config()
    inputs = {"encoder_tiny": ENCODER_INPUTS, "decoder_tiny": DECODER_INPUTS,
              "encoder_decoder_tiny": SEQ2SEQ_INPUTS}[preset]
    inputs = {k: v for k, v in inputs.items() if k in backbone.input}
    keras.tree.map_structure(np.testing.assert_array_equal, outputs(backbone, inputs),
                             outputs(restored, inputs))
    assert Backbone.from_preset(str(tmp_path), dropout=0.0).get_config()["dropout"] == 0.0


# keras-hub backbones and preset directories


@pytest.mark.parametrize("kind", sorted(KERAS_HUB))
def test_from_keras_hub_parity(kind):
    """Same config and weights as a random keras-hub backbone: same outputs, padding included."""
    theirs, inputs = keras_hub_backbone(kind)
    ours = from_keras_hub(theirs)
    assert type(ours).__name__ == KERAS_HUB[kind][1]
    assert ours.count_params() == theirs.count_params()
    expected = outputs(theirs, inputs)
    assert max_difference(outputs(ours, inputs), expected) <= ATOL
    fresh = type(ours)(**ours._backbone_config)  # same config, its own random weights
    assert max_difference(outputs(fresh, inputs), expected) > 0.1


@pytest.mark.parametrize("kind", sorted(KERAS_HUB))
def test_keras_hub_preset_directory(tmp_path, kind):
    """A directory written by keras-hub's save_to_preset loads into the matching kerlm backbone."""
    theirs, inputs = keras_hub_backbone(kind)
    theirs.save_to_preset(str(tmp_path))
    ours = Backbone.from_preset(str(tmp_path))
    assert type(ours).__name__ == KERAS_HUB[kind][1]
    assert max_difference(outputs(ours, inputs), outputs(theirs, inputs)) <= ATOL


def test_keras_hub_preset_wordpiece_vocabulary(tmp_path):
    vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "film"]
    keras_hub.models.BertTokenizer(vocabulary=vocabulary).save_to_preset(str(tmp_path))
    path = checkpoints.wordpiece_vocabulary(str(tmp_path))
    assert path == os.path.join(str(tmp_path), "assets", "tokenizer", "vocabulary.txt")
    assert open(path, encoding="utf-8").read().split() == vocabulary


# Hugging Face checkpoints, written from random numpy weights with the real names and shapes


def hf_bert(rng, prefix="", norm_names=("weight", "bias")):
    tensors = {}

    def add(name, *shape, offset=0.0):
        tensors[prefix + name] = (offset + rng.normal(0.0, 0.2, shape)).astype("float32")

    def norm(name):
        add(f"{name}.{norm_names[0]}", D, offset=1.0)
        add(f"{name}.{norm_names[1]}", D)

    def linear(name, out, inputs):  # PyTorch layout: [out, in]
        add(f"{name}.weight", out, inputs)
        add(f"{name}.bias", out)

    add("embeddings.word_embeddings.weight", V, D)
    add("embeddings.position_embeddings.weight", P, D)
    add("embeddings.token_type_embeddings.weight", 2, D)
    norm("embeddings.LayerNorm")
    for i in range(LAYERS):
        layer = f"encoder.layer.{i}."
        for part in ("query", "key", "value"):
            linear(f"{layer}attention.self.{part}", D, D)
        linear(f"{layer}attention.output.dense", D, D)
        norm(f"{layer}attention.output.LayerNorm")
        linear(f"{layer}intermediate.dense", FF, D)
        linear(f"{layer}output.dense", D, FF)
        norm(f"{layer}output.LayerNorm")
    linear("pooler.dense", D, D)
    config = {"model_type": "bert", "architectures": ["BertModel"], "vocab_size": V,
              "hidden_size": D, "num_hidden_layers": LAYERS, "num_attention_heads": 2,
              "intermediate_size": FF, "max_position_embeddings": P, "type_vocab_size": 2,
              "layer_norm_eps": 1e-12, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
              "position_embedding_type": "absolute"}
    return config, tensors


def hf_gpt2(rng, prefix=""):
    tensors = {}

    def add(name, *shape, offset=0.0):
        tensors[prefix + name] = (offset + rng.normal(0.0, 0.2, shape)).astype("float32")

    def norm(name):
        add(f"{name}.weight", D, offset=1.0)
        add(f"{name}.bias", D)

    def conv1d(name, inputs, out):  # GPT-2's Conv1D layout: [in, out]
        add(f"{name}.weight", inputs, out)
        add(f"{name}.bias", out)

    add("wte.weight", V, D)
    add("wpe.weight", P, D)
    for i in range(LAYERS):
        norm(f"h.{i}.ln_1")
        conv1d(f"h.{i}.attn.c_attn", D, 3 * D)
        conv1d(f"h.{i}.attn.c_proj", D, D)
        tensors[f"{prefix}h.{i}.attn.bias"] = np.tril(np.ones((P, P), "float32"))[None, None]
        norm(f"h.{i}.ln_2")
        conv1d(f"h.{i}.mlp.c_fc", D, 4 * D)
        conv1d(f"h.{i}.mlp.c_proj", 4 * D, D)
    norm("ln_f")
    config = {"model_type": "gpt2", "architectures": ["GPT2Model"], "vocab_size": V,
              "n_embd": D, "n_layer": LAYERS, "n_head": 2, "n_positions": P, "n_inner": None,
              "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5,
              "resid_pdrop": 0.1, "embd_pdrop": 0.1, "attn_pdrop": 0.1}
    return config, tensors


def write_hf(directory, config, tensors, files=None):
    """A Hugging Face checkpoint directory: config.json, model.safetensors, tokenizer files."""
    directory = str(directory)
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(config, f)
    safetensors.numpy.save_file(tensors, os.path.join(directory, "model.safetensors"))
    for name, content in (files or {}).items():
        with open(os.path.join(directory, name), "w", encoding="utf-8") as f:
            f.write(content)
    return directory


BERT_VOCABULARY = "".join(f"{t}\n" for t in ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
                          + [f"w{i}" for i in range(V - 5)])
GPT2_TOKENIZER = {"vocab.json": json.dumps({"<|endoftext|>": 0, "a": 1, "b": 2, "ab": 3}),
                  "merges.txt": "#version: 0.2\na b\n"}


@pytest.mark.parametrize("prefix, norm_names, heads", [
    ("", ("weight", "bias"), {}),
    ("bert.", ("gamma", "beta"),  # a BertForPreTraining-style file: prefix, heads, buffers
     {"cls.predictions.bias": (V,), "cls.seq_relationship.weight": (2, D),
      "bert.embeddings.position_ids": (1, P)}),
])
def test_hugging_face_bert_parity_with_keras_hub_converter(tmp_path, prefix, norm_names, heads):
    config, tensors = hf_bert(np.random.default_rng(1), prefix, norm_names)
    tensors.update({name: np.zeros(shape, "float32") for name, shape in heads.items()})
    directory = write_hf(tmp_path, config, tensors, {"vocab.txt": BERT_VOCABULARY})

    theirs = keras_hub.models.Backbone.from_preset(directory)
    random = keras_hub.models.BertBackbone(**DIMS)
    expected = outputs(theirs, ENCODER_INPUTS)
    assert max_difference(outputs(random, ENCODER_INPUTS), expected) > 0.1  # weights loaded

    assert Backbone.from_preset(directory).get_config()["activation"] == "gelu"  # hidden_act
    # keras-hub's BertBackbone always uses the tanh approximation of GELU: compare with it.
    ours = Backbone.from_preset(directory, activation="gelu_approximate")
    assert max_difference(outputs(ours, ENCODER_INPUTS), expected) <= ATOL
    assert checkpoints.wordpiece_vocabulary(directory) == os.path.join(directory, "vocab.txt")


@pytest.mark.parametrize("prefix", ["", "transformer."])
def test_hugging_face_gpt2_parity_with_keras_hub_converter(tmp_path, prefix):
    config, tensors = hf_gpt2(np.random.default_rng(2), prefix)
    if prefix:  # a GPT2LMHeadModel-style file: the (tied) head is not a backbone weight
        tensors["lm_head.weight"] = tensors[f"{prefix}wte.weight"]
    directory = write_hf(tmp_path, config, tensors, GPT2_TOKENIZER)

    theirs = keras_hub.models.Backbone.from_preset(directory)
    random = keras_hub.models.GPT2Backbone(**DIMS)
    expected = outputs(theirs, DECODER_INPUTS)
    assert max_difference(outputs(random, DECODER_INPUTS), expected) > 0.1  # weights loaded

    ours = Backbone.from_preset(directory)
    assert type(ours).__name__ == "DecoderBackbone"
    assert ours.get_config()["activation"] == "gelu_approximate"
    assert max_difference(outputs(ours, DECODER_INPUTS), expected) <= ATOL
    assert checkpoints.wordpiece_vocabulary(directory) is None


def test_hugging_face_sharded_float16_checkpoint(tmp_path):
    """Shards listed in model.safetensors.index.json; float16 tensors load as float32."""
    config, tensors = hf_gpt2(np.random.default_rng(3))
    tensors = {name: value.astype("float16") for name, value in tensors.items()}
    names = sorted(tensors)
    shards = {"model-00001-of-00002.safetensors": names[: len(names) // 2],
              "model-00002-of-00002.safetensors": names[len(names) // 2:]}
    for filename, shard in shards.items():
        safetensors.numpy.save_file({n: tensors[n] for n in shard}, str(tmp_path / filename))
    index = {"metadata": {}, "weight_map": {n: f for f, shard in shards.items() for n in shard}}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    (tmp_path / "config.json").write_text(json.dumps(config))

    ours = Backbone.from_preset(str(tmp_path))
    assert ours.token_embedding.embeddings.dtype == "float32"
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(ours.token_embedding.embeddings),
                                  tensors["wte.weight"].astype("float32"))


# Errors


def test_mismatched_tensor_shape_names_tensor_and_both_shapes(tmp_path):
    config, tensors = hf_bert(np.random.default_rng(4))
    name = "encoder.layer.1.intermediate.dense.weight"
    tensors[name] = tensors[name][:-1]  # (63, 32) instead of (64, 32)
    with pytest.raises(ValueError) as error:
        Backbone.from_preset(write_hf(tmp_path, config, tensors))
    message = str(error.value)
    assert f"'{name}' has shape (63, 32)" in message
    assert ("'transformer_layer_1/ffn/ffn_inner/kernel' of shape (32, 64) needs (64, 32)"
            in message)
    assert str(tmp_path) in message


def test_missing_and_unused_tensors_are_named(tmp_path):
    config, tensors = hf_gpt2(np.random.default_rng(5))
    del tensors["h.1.mlp.c_fc.bias"]
    tensors["h.2.ln_1.weight"] = np.ones(D, "float32")  # a layer the config does not have
    with pytest.raises(ValueError) as error:
        Backbone.from_preset(write_hf(tmp_path, config, tensors))
    message = str(error.value)
    assert "tensors missing from the checkpoint: 'h.1.mlp.c_fc.bias'" in message
    assert "unused checkpoint tensors: 'h.2.ln_1.weight'" in message


def test_mismatched_keras_hub_config_is_reported():
    theirs, _ = keras_hub_backbone("gpt2")
    with pytest.raises(ValueError, match=r"'token_embedding/embeddings' has shape \(100, 32\), "
                                         r"but kerlm weight 'token_embedding/embeddings' of "
                                         r"shape \(50, 32\)"):
        from_keras_hub(theirs, vocabulary_size=50)


def test_unknown_model_type(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(ValueError, match=r"model_type 'llama'; kerlm loads bert, gpt2") as error:
        Backbone.from_preset(str(tmp_path))
    assert str(tmp_path) in str(error.value)


def test_unsupported_keras_preset(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"registered_name": "keras_hub>T5Backbone",
                                                      "config": {}}))
    with pytest.raises(ValueError, match=r"'keras_hub>T5Backbone'.*BertBackbone, GPT2Backbone"):
        Backbone.from_preset(str(tmp_path))


def test_directory_without_config_json(tmp_path):
    with pytest.raises(ValueError, match=r"has no config\.json; kerlm loads a kerlm save") as error:
        Backbone.from_preset(str(tmp_path))
    assert str(tmp_path) in str(error.value)


def test_hugging_face_directory_without_safetensors(tmp_path):
    config, _ = hf_bert(np.random.default_rng(6))
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "pytorch_model.bin").write_bytes(b"")
    with pytest.raises(ValueError,
                       match=r"no model\.safetensors.*pytorch_model\.bin.*safetensors only"):
        Backbone.from_preset(str(tmp_path))


def test_unsupported_hugging_face_option(tmp_path):
    config, tensors = hf_bert(np.random.default_rng(7))
    config["position_embedding_type"] = "relative_key"
    with pytest.raises(ValueError,
                       match=r"position_embedding_type='relative_key' is not supported"):
        Backbone.from_preset(write_hf(tmp_path, config, tensors))
