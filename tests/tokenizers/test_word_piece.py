"""WordPiece against BERT's tokenization as Hugging Face's `tokenizers` runs it, and the
tokenizer of small hand-made Hugging Face checkpoint directories: `tokenizer.json` only,
`vocab.txt` only, `tokenizer_config.json` settings (casing, special tokens, maximum
length), what is saved for a run, and one-line errors for what kerlm cannot run.
(tests/models/test_huggingface_checkpoint.py does the same on a real checkpoint.)"""

import json
import os

import keras
import pytest
import tensorflow as tf

from kerlm import tokenizers
from kerlm.tokenizers import WordPieceTokenizer
from kerlm.tokenizers.word_piece import RESERVED_TOKENS, split_words

hf = pytest.importorskip("tokenizers", reason="Hugging Face tokenizers (the test extra) is "
                                              "not installed")

VOCABULARY = RESERVED_TOKENS + ["the", "film", "Film", "##s", "caf", "##e", "good", "!", ",",
                                "'", "don", "t", "中", "国", "a", "##a", "é", "##é", "ab", "e"]
TEXTS = ["The films, good!", "Café don't", "FILM film Film", "中国the", "a\x97b\tgood\u00a0film",
         "e\u0301 é É", "a" * 100, "a" * 101, "é" * 60, "é" * 101, "", "  \n "]
# Blocks on whose every code point BERT's normalization and split in TensorFlow equal
# `tokenizers`' (elsewhere a few hundred recent code points differ: see word_piece.py).
BLOCKS = [(0x0000, 0x0600), (0x2000, 0x2C00), (0x3000, 0xA000), (0xE000, 0x10000),
          (0x1F000, 0x20000)]


def hf_tokenizer(vocabulary=VOCABULARY, lowercase=True, strip_accents=None, special=None):
    """A Hugging Face BERT tokenizer (`tokenizers.Tokenizer`) over `vocabulary`."""
    special = {**dict(zip(("pad", "unk", "cls", "sep", "mask"), RESERVED_TOKENS)),
               **(special or {})}
    ids = {token: i for i, token in enumerate(vocabulary)}
    tokenizer = hf.Tokenizer(hf.models.WordPiece(ids, unk_token=special["unk"]))
    tokenizer.normalizer = hf.normalizers.BertNormalizer(lowercase=lowercase,
                                                         strip_accents=strip_accents)
    tokenizer.pre_tokenizer = hf.pre_tokenizers.BertPreTokenizer()
    tokenizer.post_processor = hf.processors.BertProcessing(
        (special["sep"], ids[special["sep"]]), (special["cls"], ids[special["cls"]]))
    tokenizer.add_special_tokens(list(special.values()))
    tokenizer.enable_padding(pad_id=ids[special["pad"]], pad_token=special["pad"])
    return tokenizer


def write(directory, files):
    """`files`: name → text, JSON-able object or `tokenizers.Tokenizer`."""
    os.makedirs(directory, exist_ok=True)
    for name, content in files.items():
        path = os.path.join(directory, name)
        if isinstance(content, hf.Tokenizer):
            content.save(path)
        else:
            with open(path, "w", encoding="utf-8") as f:
                f.write(content if isinstance(content, str) else json.dumps(content))
    return str(directory)


def vocab_txt(vocabulary=VOCABULARY):
    return "".join(token + "\n" for token in vocabulary)


def ids_of(tokenizer, texts):
    return tokenizer.tokenize(tf.constant(texts)).to_list()


def hf_ids_of(tokenizer, texts):
    tokenizer.no_padding()
    return [e.ids for e in tokenizer.encode_batch(texts, add_special_tokens=False)]


def listing(directory):
    return sorted((name, os.stat(os.path.join(directory, name)).st_mtime_ns)
                  for name in os.listdir(directory))


# BERT's tokenization ------------------------------------------------------------------------
@pytest.mark.parametrize("lowercase, strip_accents", [(True, None), (True, False),
                                                      (False, None), (False, True)])
def test_normalization_and_split_equal_bert_on_every_code_point_of_these_blocks(
        lowercase, strip_accents):
    normalizer = hf.normalizers.BertNormalizer(lowercase=lowercase, strip_accents=strip_accents)
    split = hf.pre_tokenizers.BertPreTokenizer()
    texts = [f"a{chr(c)}B" for lo, hi in BLOCKS for c in range(lo, hi)]
    ours = split_words(tf.constant(texts), lowercase, strip_accents).to_list()
    different = []
    for text, words in zip(texts, ours):
        theirs = [w for w, _ in split.pre_tokenize_str(normalizer.normalize_str(text))]
        if [w.decode("utf-8") for w in words] != theirs:
            different.append((hex(ord(text[1])), theirs))
    assert not different, f"{len(different)} code points differ, e.g. {different[:5]}"


@pytest.mark.parametrize("lowercase", [True, False])
def test_ids_equal_hugging_face(lowercase):
    ours = WordPieceTokenizer(VOCABULARY, lowercase=lowercase)
    theirs = hf_tokenizer(lowercase=lowercase)
    texts = TEXTS + ["ΟΔΟΣ Σ", "ﬁlm", "Ｆｉｌｍ", "x²", "straße", "İ", "ab\u00adab", "a\x00b"]
    assert ids_of(ours, texts) == hf_ids_of(theirs, texts)


def test_words_of_more_than_100_characters_are_unknown():
    tokenizer = WordPieceTokenizer(VOCABULARY, lowercase=True)
    unk, index = tokenizer.unk_id, VOCABULARY.index
    ids = ids_of(tokenizer, ["a" * 100, "a" * 101, "é" * 60, "é" * 101])
    assert ids[0] == [index("a")] + [index("##a")] * 99 and ids[1] == [unk]
    e = [index("e")] + [index("##e")] * 59
    assert ids[2] == e and ids[3] == [unk]  # characters, not bytes (60 "é" are 120)
    offsets = tokenizer.tokenize_with_offsets(tf.constant(["é" * 60 + " " + "é" * 101]))
    assert offsets[0].to_list() == [e + [unk]]
    assert offsets[1].to_list()[0][-1] == 121 and offsets[2].to_list()[0][-1] == 323


def test_learn_splits_text_as_tokenize_does():
    tokenizer = WordPieceTokenizer.learn(["a\x97b good\u00a0film, good"] * 20, 60)
    assert {"ab", "good", "film"} <= set(tokenizer.vocabulary)  # the control character drops
    assert ids_of(tokenizer, ["a\x97b"])[0] == [tokenizer.vocabulary.index("ab")]


# Hugging Face directories -------------------------------------------------------------------
def test_tokenizer_json_only(tmp_path):
    """The vocabulary comes from tokenizer.json's WordPiece model, by id (whatever the order
    of its JSON object), casing from its normalizer; nothing is written into the directory."""
    path = tmp_path / "tokenizer.json"
    hf_tokenizer().save(str(path))
    spec = json.loads(path.read_text())
    spec["model"]["vocab"] = dict(reversed(spec["model"]["vocab"].items()))
    path.write_text(json.dumps(spec))
    before = listing(tmp_path)
    tokenizer = tokenizers.load(str(tmp_path))
    assert listing(tmp_path) == before
    assert isinstance(tokenizer, WordPieceTokenizer) and tokenizer.vocabulary == VOCABULARY
    assert tokenizer.lowercase and tokenizer.strip_accents and tokenizer.max_length is None
    assert (tokenizer.pad_id, tokenizer.unk_id, tokenizer.start_id, tokenizer.end_id,
            tokenizer.mask_id) == (0, 1, 2, 3, 4)
    assert ids_of(tokenizer, TEXTS) == hf_ids_of(hf.Tokenizer.from_file(str(path)), TEXTS)


def test_vocab_txt_only(tmp_path):
    """vocab.txt and config.json: casing from the vocabulary, max_length the positions."""
    directory = write(tmp_path, {"vocab.txt": vocab_txt([t for t in VOCABULARY if t != "Film"]),
                                 "config.json": {"model_type": "bert",
                                                 "max_position_embeddings": 64}})
    tokenizer = tokenizers.load(directory)
    assert tokenizer.lowercase and tokenizer.strip_accents and tokenizer.max_length == 64
    cased = tokenizers.load(write(tmp_path / "cased", {"vocab.txt": vocab_txt()}))
    assert not cased.lowercase and not cased.strip_accents and cased.max_length is None


def test_tokenizer_config_lowercase_false(tmp_path):
    """do_lower_case false is kept though the vocabulary looks uncased; it is saved with the
    run's vocabulary and read back; model_max_length is capped by the model's positions."""
    vocabulary = [t for t in VOCABULARY if t != "Film"]  # uncased
    directory = write(tmp_path / "hf", {
        "vocab.txt": vocab_txt(vocabulary),
        "tokenizer_config.json": {"do_lower_case": False, "strip_accents": None,
                                  "model_max_length": 1000000000000000019884624838656},
        "config.json": {"max_position_embeddings": 32}})
    tokenizer = tokenizers.load(directory)
    assert not tokenizer.lowercase and not tokenizer.strip_accents
    assert tokenizer.max_length == 32
    texts = ["The film", "FILM film", "Café É é"]
    assert ids_of(tokenizer, texts) == hf_ids_of(hf_tokenizer(vocabulary, lowercase=False),
                                                 texts)
    run = str(tmp_path / "run")
    tokenizer.save(run)
    assert sorted(os.listdir(run)) == ["tokenizer_config.json", "vocab.txt"]
    again = tokenizers.load(run)
    assert (again.lowercase, again.strip_accents, again.max_length) == (False, False, 32)
    assert ids_of(again, texts) == ids_of(tokenizer, texts)
    config = keras.layers.deserialize(keras.layers.serialize(tokenizer))
    assert (config.lowercase, config.max_length) == (False, 32)
    WordPieceTokenizer(vocabulary).save(run)  # the vocabulary's own settings: no config file
    assert os.listdir(run) == ["vocab.txt"] and tokenizers.load(run).lowercase


def test_tokenizer_config_casing_wins_over_tokenizer_json(tmp_path):
    """As in transformers (BertTokenizerFast rebuilds the normalizer from do_lower_case)."""
    directory = write(tmp_path, {"tokenizer.json": hf_tokenizer(lowercase=True),
                                 "tokenizer_config.json": {"do_lower_case": False}})
    assert not tokenizers.load(directory).lowercase
    os.remove(os.path.join(directory, "tokenizer_config.json"))
    assert tokenizers.load(directory).lowercase


def test_special_tokens_from_tokenizer_config_and_tokenizer_json(tmp_path):
    vocabulary = ["<pad>", "<s>", "</s>", "<unk>", "<mask>"] + VOCABULARY[5:]
    special = {"pad": "<pad>", "unk": "<unk>", "cls": "<s>", "sep": "</s>", "mask": "<mask>"}
    from_config = write(tmp_path / "config", {
        "vocab.txt": vocab_txt(vocabulary),
        "tokenizer_config.json": {"pad_token": "<pad>", "cls_token": "<s>", "sep_token": "</s>",
                                  "unk_token": {"content": "<unk>", "__type": "AddedToken"},
                                  "mask_token": "<mask>", "model_max_length": 128}})
    from_json = write(tmp_path / "json", {
        "tokenizer.json": hf_tokenizer(vocabulary, special=special)})
    for directory in (from_config, from_json):
        tokenizer = tokenizers.load(directory)
        assert tokenizer.special_tokens == special
        assert (tokenizer.pad_id, tokenizer.start_id, tokenizer.end_id, tokenizer.unk_id,
                tokenizer.mask_id) == (0, 1, 2, 3, 4)
        assert ids_of(tokenizer, ["the zebra", "a" * 101]) == [[5, 3], [3]]
    tokenizer.save(str(tmp_path / "run"))
    assert tokenizers.load(str(tmp_path / "run")).special_tokens == special
    assert tokenizers.load(from_config).max_length == 128


def test_keras_hub_preset_casing(tmp_path):
    import keras_hub
    vocabulary = [t for t in VOCABULARY if t != "Film"]
    keras_hub.models.BertTokenizer(vocabulary=vocabulary, lowercase=True).save_to_preset(
        str(tmp_path))
    tokenizer = tokenizers.load(str(tmp_path))  # tokenizer.json: keras-hub's config
    assert tokenizer.vocabulary == vocabulary and tokenizer.lowercase


def _bpe(path):
    tokenizer = hf.Tokenizer(hf.models.BPE({"a": 0, "b": 1, "ab": 2}, [("a", "b")]))
    tokenizer.save(path)
    return json.loads(open(path).read())


def _edited(tmp_path, edit):
    path = os.path.join(tmp_path, "tokenizer.json")
    hf_tokenizer().save(path)
    spec = json.loads(open(path).read())
    edit(spec)
    return spec


@pytest.mark.parametrize("files, message", [
    (lambda d: {"tokenizer.json": _bpe(os.path.join(d, "tokenizer.json"))},
     r"tokenizer\.json holds a 'BPE' tokenizer, not WordPiece; .*BERT-family checkpoints"),
    (lambda d: {"tokenizer.json": _edited(d, lambda s: s.update(
        normalizer={"type": "Sequence", "normalizers": [{"type": "NFD"}]}))},
     r"tokenizer\.json: normalizer 'Sequence' is not supported; .*'BertNormalizer'"),
    (lambda d: {"tokenizer.json": _edited(d, lambda s: s.update(
        pre_tokenizer={"type": "Whitespace"}))},
     r"tokenizer\.json: pre_tokenizer 'Whitespace' is not supported"),
    (lambda d: {"tokenizer.json": _edited(d, lambda s: s["model"].update(
        continuing_subword_prefix="@@"))},
     r"model\.continuing_subword_prefix '@@' is not supported"),
    (lambda d: {"tokenizer.json": "{not json"}, r"tokenizer\.json is not valid JSON"),
    (lambda d: {"vocab.txt": vocab_txt(), "tokenizer_config.json": {"tokenize_chinese_chars":
                                                                    False}},
     r"tokenizer_config\.json: tokenize_chinese_chars False is not supported"),
    (lambda d: {"vocab.txt": vocab_txt(), "tokenizer_config.json": {"cls_token": "<s>"}},
     r"vocab\.txt: the vocabulary lacks the special tokens \['<s>'\]"),
], ids=["bpe", "normalizer", "pre_tokenizer", "prefix", "json", "chinese", "special"])
def test_what_kerlm_cannot_run_is_a_one_line_error_naming_the_file(tmp_path, files, message):
    directory = write(tmp_path, files(str(tmp_path)))
    with pytest.raises(ValueError, match=message) as error:
        tokenizers.load(directory)
    assert str(tmp_path) in str(error.value) and "\n" not in str(error.value)
