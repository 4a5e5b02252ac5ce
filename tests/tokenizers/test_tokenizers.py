"""Tokenizers: the interface every registered tokenizer must pass (learn → save → load, special
ids, offsets, detokenize, tf.function, tf.data, Keras config, SavedModel without kerlm), then
what is particular to WordPiece (casing, checkpoint layouts, agreement with Hugging Face's
`tokenizers`) and to SentencePiece (offsets around "▁", extra ids for a mask and sentinels).

A new tokenizer class is covered by registering it (`kerlm.tokenizers.register`): the
conformance tests run over `tokenizers.registered()`.
"""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerlm import preprocessing, tokenizers
from kerlm.tokenizers import SentencePieceTokenizer, WordPieceTokenizer
from kerlm.tokenizers.word_piece import RESERVED_TOKENS

CORPUS = ["Tolstoy wrote War and Peace in 1869.", "The café naïve was born in Moscow.",
          "Café naïve à Paris, 42 ans!", "Who wrote War and Peace?", "When was it written?",
          "The battery is great", "Great value, great sound!", "Sound quality is poor",
          "She said: the film (not the book) was long; the end was sad."] * 20
TEXTS = ["Tolstoy wrote War and Peace in 1869.", "Café naïve à Paris, 42 ans!",
         "the battery is great", "Who wrote the book?", ""]
SPACED = "Tolstoy  wrote War and Peace in 1869.  Café naïve à Paris,   42 ans!"
WORDS = ["Tolstoy", "wrote", "1869", ".", "Café", "naïve", "à", "Paris", ",", "42", "ans", "!"]
CLASSES = tokenizers.registered()
_LEARNED = {}


def learned(cls):
    """A tokenizer of class `cls` learned on CORPUS (once per class)."""
    if cls not in _LEARNED:
        _LEARNED[cls] = cls.learn(CORPUS, 120)
    return _LEARNED[cls]


def ids_of(tokenizer, texts):
    return tokenizer.tokenize(tf.constant(texts)).to_list()


def offsets_of(tokenizer, texts):
    ids, start, end = tokenizer.tokenize_with_offsets(tf.constant(texts))
    return ids.to_list(), start.to_list(), end.to_list()


# The interface, for every registered tokenizer -----------------------------------------------
def test_every_tokenizer_is_registered_by_its_file():
    assert {cls.__name__ for cls in CLASSES} >= {"WordPieceTokenizer", "SentencePieceTokenizer"}
    for cls in CLASSES:
        assert issubclass(cls, tokenizers.Tokenizer) and cls.file in tokenizers.files()
        assert keras.saving.get_registered_object(f"kerlm>{cls.__name__}") is cls


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_learn_save_load_round_trip(cls, tmp_path):
    tokenizer = learned(cls)
    tokenizer.save(str(tmp_path))
    assert os.path.isfile(tmp_path / cls.file)
    again = tokenizers.load(str(tmp_path))
    assert type(again) is cls
    assert again.vocabulary == tokenizer.vocabulary
    assert again.vocabulary_size == tokenizer.vocabulary_size == len(tokenizer.vocabulary)
    for name in ("pad_id", "unk_id", "start_id", "end_id", "mask_id", "sentinel_ids",
                 "special_ids"):
        assert getattr(again, name) == getattr(tokenizer, name), name
    assert ids_of(again, TEXTS) == ids_of(tokenizer, TEXTS)
    assert offsets_of(again, TEXTS + [SPACED]) == offsets_of(tokenizer, TEXTS + [SPACED])


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_ids_and_special_ids(cls):
    tokenizer = learned(cls)
    ids = tokenizer.tokenize(tf.constant(TEXTS))
    assert isinstance(ids, tf.RaggedTensor) and ids.dtype == tf.int32 and ids.shape[0] == 5
    assert ids[-1].shape[0] == 0  # "" has no tokens
    for name in ("pad_id", "unk_id", "start_id", "end_id"):  # what the input formats need
        assert getattr(tokenizer, name) is not None, name
    special = tokenizer.special_ids
    assert special == sorted(set(special)) and all(0 <= i < tokenizer.vocabulary_size
                                                   for i in special)
    assert {tokenizer.pad_id, tokenizer.start_id, tokenizer.end_id} <= set(special)
    if tokenizer.mask_id is not None:
        assert tokenizer.mask_id in special
    flat = [i for row in ids_of(tokenizer, CORPUS[:9] + TEXTS) for i in row]
    assert all(0 <= i < tokenizer.vocabulary_size for i in flat)
    # text never gives the start, end, padding, mask or sentinel ids
    assert not set(flat) & (set(special) - {tokenizer.unk_id})


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_offsets_point_at_the_text_of_each_token(cls):
    tokenizer = learned(cls)
    texts = TEXTS + [SPACED, "  leading and trailing  "]
    ids, starts, ends = offsets_of(tokenizer, texts)
    assert ids[:len(TEXTS)] == ids_of(tokenizer, TEXTS)  # the same ids as tokenize
    for text, row, start, end in zip(texts, ids, starts, ends):
        raw = text.encode("utf-8")
        assert len(row) == len(start) == len(end)
        kept = [(s, e) for s, e in zip(start, end) if s >= 0]
        assert all(s == e == -1 for s, e in zip(start, end) if s < 0 or e < 0)
        covered = set()
        for (s, e), (next_start, _) in zip(kept, kept[1:] + [(len(raw), len(raw))]):
            assert 0 <= s < e <= next_start <= len(raw)  # in order, not overlapping
            assert raw[s:e] == raw[s:e].strip()  # no whitespace at either end
            covered.update(range(s, e))
        # every byte of text is some token's, no whitespace is
        text_bytes = [i for i, c in enumerate(text) if not c.isspace()
                      for i in range(len(text[:i].encode()), len(text[:i + 1].encode()))]
        assert covered == set(text_bytes)
    raw = SPACED.encode("utf-8")
    start, end = starts[len(TEXTS)], ends[len(TEXTS)]
    for word in WORDS:  # accents, runs of spaces: words start and end on token offsets
        s = len(SPACED[:SPACED.index(word)].encode("utf-8"))
        assert s in start and s + len(word.encode("utf-8")) in end, word
        assert raw[s:s + len(word.encode("utf-8"))].decode("utf-8") == word


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_detokenize(cls):
    tokenizer = learned(cls)
    ids = tokenizer.tokenize(tf.constant(TEXTS))
    text = tokenizer.detokenize(ids).numpy()
    assert text.shape == (len(TEXTS),) and text[-1] == b""
    if tokenizer.reversible:  # spacing included (SentencePiece)
        assert [t.decode("utf-8") for t in text] == TEXTS
    # special tokens print as nothing, dense or ragged
    special = [i for i in tokenizer.special_ids if i != tokenizer.unk_id]
    rows = [[tokenizer.start_id, *row, tokenizer.end_id, *special] for row in ids.to_list()]
    assert tokenizer.detokenize(tf.ragged.constant(rows)).numpy().tolist() == text.tolist()
    dense = tf.ragged.constant(rows).to_tensor(tokenizer.pad_id)
    assert tokenizer.detokenize(dense).numpy().tolist() == text.tolist()


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_tf_function_tf_data_and_keras_config(cls):
    tokenizer = learned(cls)
    texts = tf.constant(TEXTS + [SPACED])
    expected = tokenizer.tokenize_with_offsets(texts)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def traced(t):
        ids, start, end = tokenizer.tokenize_with_offsets(t)
        return tokenizer(t).to_tensor(-1), start.to_tensor(-1), end.to_tensor(-1), \
            tokenizer.detokenize(ids)

    ids, start, end, text = traced(texts)
    np.testing.assert_array_equal(ids.numpy(), expected[0].to_tensor(-1).numpy())
    np.testing.assert_array_equal(start.numpy(), expected[1].to_tensor(-1).numpy())
    np.testing.assert_array_equal(end.numpy(), expected[2].to_tensor(-1).numpy())
    assert text.numpy().tolist() == tokenizer.detokenize(expected[0]).numpy().tolist()
    sentences = CORPUS[:9]
    ds = tf.data.Dataset.from_tensor_slices(sentences).batch(4).map(
        lambda t: tokenizer.tokenize(t).to_tensor(-1))
    for batch, i in zip(ds, range(0, 9, 4)):
        np.testing.assert_array_equal(
            batch.numpy(), tokenizer.tokenize(tf.constant(sentences[i:i + 4])).to_tensor(-1))
    config = json.loads(json.dumps(keras.layers.serialize(tokenizer)))
    again = keras.layers.deserialize(config)
    assert type(again) is cls and ids_of(again, TEXTS) == ids_of(tokenizer, TEXTS)


def _serving_function(tokenizer):
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def serve(texts):
        ids, start, _ = tokenizer.tokenize_with_offsets(texts)
        return {"ids": tokenizer.tokenize(texts).to_tensor(-1), "start": start.to_tensor(-1),
                "text": tokenizer.detokenize(ids)}
    return serve


def test_saved_models_load_with_tensorflow_and_tensorflow_text_alone(tmp_path):
    """Each tokenizer tracked by a tf.Module: its SavedModel tokenizes in a fresh process
    that imports TensorFlow and tensorflow-text only (no kerlm, keras-hub, sentencepiece)."""
    texts = TEXTS + [SPACED]
    expected = {}
    for cls in CLASSES:
        tokenizer = learned(cls)
        module = tf.Module()
        module.tokenizer = tokenizer
        module.serve = _serving_function(tokenizer)
        tf.saved_model.save(module, str(tmp_path / cls.__name__))
        out = module.serve(tf.constant(texts))
        expected[cls.__name__] = {"ids": out["ids"].numpy().tolist(),
                                  "start": out["start"].numpy().tolist(),
                                  "text": [t.decode() for t in out["text"].numpy()]}
    script = f"""
import json, sys
import tensorflow as tf
import tensorflow_text
out = {{}}
for name in {sorted(expected)!r}:
    got = tf.saved_model.load({str(tmp_path)!r} + "/" + name).serve(tf.constant({texts!r}))
    out[name] = {{"ids": got["ids"].numpy().tolist(), "start": got["start"].numpy().tolist(),
                 "text": [t.decode() for t in got["text"].numpy()]}}
assert not [m for m in sys.modules if m.startswith(("kerlm", "keras_hub", "sentencepiece"))]
print(json.dumps(out))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=str(tmp_path), timeout=300,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == expected


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_input_formats_take_it(cls):
    tokenizer = learned(cls)
    text = preprocessing.TextPreprocessor(tokenizer, 12)(tf.constant(TEXTS))
    assert text["token_ids"].shape == (5, 12) and text["token_ids"][0, 0] == tokenizer.start_id
    rows = preprocessing.QAPreprocessor(tokenizer, 12, max_query_length=4, doc_stride=2)(
        tf.constant(TEXTS[3:4]), tf.constant([SPACED]))
    assert rows["token_ids"].shape[1] == 12 and len(rows["example_index"]) > 1
    source = preprocessing.Seq2SeqPreprocessor(tokenizer, 16, 16)(tf.constant(TEXTS))
    assert source["encoder_token_ids"].shape[0] == 5


def test_load_errors_name_the_directory_and_the_files(tmp_path):
    with pytest.raises(ValueError, match=f"{tmp_path} has no tokenizer vocabulary "
                                         r"\(looked for sentencepiece.model, vocab.txt, "):
        tokenizers.load(str(tmp_path))
    learned(WordPieceTokenizer).save(str(tmp_path))
    learned(SentencePieceTokenizer).save(str(tmp_path))
    with pytest.raises(ValueError, match="several tokenizers.*sentencepiece.model, vocab.txt"):
        tokenizers.load(str(tmp_path))


# WordPiece ------------------------------------------------------------------------------------
def test_wordpiece_special_ids_casing_and_detokenize():
    tokenizer = WordPieceTokenizer(RESERVED_TOKENS + ["good", "film", "##s", "!"])
    assert (tokenizer.pad_id, tokenizer.unk_id, tokenizer.start_id, tokenizer.end_id,
            tokenizer.mask_id) == (0, 1, 2, 3, 4)
    assert tokenizer.lowercase and tokenizer.special_ids == [0, 1, 2, 3, 4]
    assert ids_of(tokenizer, ["Good films!", "bad"]) == [[5, 6, 7, 8], [1]]
    assert tokenizer.detokenize(tf.constant([[2, 5, 6, 7, 4, 1, 3, 0]])).numpy().tolist() == \
        [b"good films [UNK]"]
    without_mask = WordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "Good", "good"])
    assert without_mask.mask_id is None and not without_mask.lowercase  # a cased vocabulary
    assert ids_of(without_mask, ["Good good"]) == [[4, 5]]
    with pytest.raises(ValueError, match=r"lacks the special tokens \['\[SEP\]'\]"):
        WordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "a"])


def test_wordpiece_reads_hugging_face_and_keras_hub_checkpoints(tmp_path):
    import keras_hub
    vocabulary = RESERVED_TOKENS + ["the", "film", "Film"]
    keras_hub.models.BertTokenizer(vocabulary=vocabulary).save_to_preset(str(tmp_path / "kh"))
    tokenizer = tokenizers.load(str(tmp_path / "kh"))  # assets/tokenizer/vocabulary.txt
    assert tokenizer.vocabulary == vocabulary and not tokenizer.lowercase
    (tmp_path / "hf").mkdir()  # a Hugging Face directory: config.json, vocab.txt
    (tmp_path / "hf" / "config.json").write_text("{}")
    (tmp_path / "hf" / "vocab.txt").write_text("".join(t + "\n" for t in vocabulary[:-1]))
    tokenizer = tokenizers.load(str(tmp_path / "hf"))
    assert isinstance(tokenizer, WordPieceTokenizer) and tokenizer.lowercase
    (tmp_path / "hf" / "vocab.txt").write_text("[PAD]\n[UNK]\nfilm\n")
    with pytest.raises(ValueError, match=r"hf/vocab.txt: the vocabulary lacks the special "
                                         r"tokens \['\[CLS\]', '\[SEP\]'\]"):
        tokenizers.load(str(tmp_path / "hf"))


def test_wordpiece_ids_and_offsets_match_hugging_face_tokenizers():
    hf = pytest.importorskip("tokenizers")
    tokenizer = learned(WordPieceTokenizer)
    theirs = hf.BertWordPieceTokenizer(
        {t: i for i, t in enumerate(tokenizer.vocabulary)}, lowercase=True, strip_accents=True,
        clean_text=True, handle_chinese_chars=True)
    texts = [t for t in dict.fromkeys(CORPUS)] + [SPACED, "zebra QUALITY, unknown-words",
                                                  "naïve café", ""]
    ids, starts, ends = offsets_of(tokenizer, texts)
    for text, row, start, end in zip(texts, ids, starts, ends):
        encoding = theirs.encode(text, add_special_tokens=False)
        assert row == encoding.ids, text
        # Hugging Face counts characters, kerlm bytes
        chars = [len(text.encode("utf-8")[:s].decode("utf-8", "ignore")) for s in start]
        char_ends = [len(text.encode("utf-8")[:e].decode("utf-8", "ignore")) for e in end]
        assert list(zip(chars, char_ends)) == encoding.offsets, text


# SentencePiece --------------------------------------------------------------------------------
def test_sentencepiece_offsets_skip_the_whitespace_of_a_leading_marker():
    import tensorflow_text
    tokenizer = learned(SentencePieceTokenizer)
    ids, starts, ends = (t[0] for t in offsets_of(tokenizer, [SPACED]))
    tokens = [tokenizer.vocabulary[i] for i in ids]
    raw = SPACED.encode("utf-8")
    # tensorflow-text puts the whitespace before a word into its "▁word" piece
    _, tf_starts, _ = tensorflow_text.SentencepieceTokenizer(
        model=tokenizer.proto).tokenize_with_offsets(tf.constant([SPACED]))
    word = next(i for i, t in enumerate(tokens) if t.startswith("▁w"))  # "Tolstoy  wrote"
    assert raw[tf_starts[0, word]:starts[word]] == b"  "
    lone = [i for i, t in enumerate(tokens) if t == "▁"]  # whitespace only: no offsets
    assert all(starts[i] == ends[i] == -1 for i in lone)


def test_sentencepiece_extra_ids_keep_the_ids_of_text(tmp_path):
    plain = learned(SentencePieceTokenizer)
    pieces = plain.vocabulary_size
    assert plain.extra_ids == 0 and plain.mask_id is None and plain.sentinel_ids == ()
    extra = SentencePieceTokenizer(plain.proto, extra_ids=3)
    assert extra.vocabulary_size == pieces + 3 and extra.pieces == pieces
    assert extra.mask_id == pieces and extra.sentinel_ids == (pieces, pieces + 1, pieces + 2)
    assert extra.vocabulary[pieces:] == ["<extra_id_0>", "<extra_id_1>", "<extra_id_2>"]
    assert extra.special_ids == plain.special_ids + [pieces, pieces + 1, pieces + 2]
    assert ids_of(extra, CORPUS[:9] + TEXTS) == ids_of(plain, CORPUS[:9] + TEXTS)
    assert offsets_of(extra, [SPACED]) == offsets_of(plain, [SPACED])
    # detokenize drops the extra ids
    ids = ids_of(plain, TEXTS[:2])
    rows = [[pieces + 2, *ids[0][:3], pieces, *ids[0][3:]], [*ids[1], pieces + 1]]
    assert extra.detokenize(tf.ragged.constant(rows)).numpy().tolist() == \
        [t.encode() for t in TEXTS[:2]]
    # saved beside the model; an old directory (no sentencepiece.json) has none
    extra.save(str(tmp_path))
    with open(tmp_path / "sentencepiece.json") as f:
        assert json.load(f) == {"extra_ids": 3}
    again = tokenizers.load(str(tmp_path))
    assert again.extra_ids == 3 and again.mask_id == pieces
    assert keras.layers.deserialize(keras.layers.serialize(extra)).extra_ids == 3
    plain.save(str(tmp_path))  # a stale sentencepiece.json goes
    assert not os.path.exists(tmp_path / "sentencepiece.json")
    assert tokenizers.load(str(tmp_path)).mask_id is None
    assert SentencePieceTokenizer.learn(CORPUS, 120, extra_ids=2).vocabulary_size == pieces + 2
    # a model sized for the tokenizer embeds the extra ids
    assert preprocessing.TextPreprocessor(extra, 8).vocabulary_size == pieces + 3
    with pytest.raises(ValueError, match="extra_ids must be 0 or more"):
        SentencePieceTokenizer(plain.proto, extra_ids=-1)
