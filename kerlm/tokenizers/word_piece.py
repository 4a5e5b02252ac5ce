"""WordPiece (BERT's tokenizer): vocabulary learning, in-graph tokenization with offsets, and
the tokenizer of a Hugging Face or keras-hub checkpoint directory.

Tokenization is BERT's as Hugging Face's `tokenizers` runs it (`BertNormalizer`,
`BertPreTokenizer`, `WordPiece`), in TensorFlow ops: `normalize` drops control characters,
U+0000 and U+FFFD, makes whitespace a space, puts spaces around CJK ideographs, strips
accents (NFD without nonspacing marks) and lower-cases character by character;
`split_words` splits on whitespace and keeps each punctuation character as a word; then
tensorflow-text's `FastWordpieceTokenizer` cuts each word into pieces, a word of more than
100 characters being `[UNK]`. So the ids are the same eagerly, in `tf.data` and in
SavedModels, and the same as Hugging Face's (tests/models/test_huggingface_checkpoint.py
checks a real checkpoint) except on characters on which the Unicode tables of the two
differ (marks, punctuation and letters of recent Unicode versions: 684 of the 1.1 M code
points, in rare scripts). `learn` splits text the same way.

Offsets: tensorflow-text's offsets point into the normalized (case-folded, accent-stripped)
text, which drifts from the original on accented letters. So for offsets the original text
is split into words (with offsets), each word is normalized and cut into pieces on its own,
and a piece's offsets are mapped back into its word: a word's first piece starts where the
word starts and its last piece ends where the word ends.

That split is the one kerlm's QA features have always used, kept so that they (and the QA
results measured with them) stay the same: it also splits on non-ASCII symbols (`\\p{S}`:
"°", "½"), but not on CJK ideographs, no-break spaces or control characters, and it
case-folds (NFKC_Casefold: "…" is "...", "ς" is "σ") before it strips accents. So
`tokenize_with_offsets` gives `tokenize`'s ids except on text with such characters (2.1% of
the distinct texts of the embedded QA and sentiment data).

Checkpoints: `from_directory` reads `vocab.txt` (Hugging Face, kerlm), a keras-hub preset's
`assets/tokenizer/vocabulary.txt` or, without either, the WordPiece vocabulary of a Hugging
Face `tokenizer.json` (its tokens ordered by id), and the settings of the Hugging Face files
beside it (`hugging_face_settings`: casing, accents, special tokens, maximum length). `save`
writes `vocab.txt`, and `tokenizer_config.json` (Hugging Face's keys) where the settings are
not the ones the vocabulary alone implies.
"""

import json
import os

import keras_hub
import tensorflow as tf
import tensorflow_text

from kerlm.tokenizers.base import Tokenizer, register, select_ids

RESERVED_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
# kerlm's names of the special tokens and BERT's tokens (Hugging Face's tokenizer_config.json
# keys are f"{name}_token"): pad, unknown, start ([CLS]), end ([SEP]), mask.
SPECIAL_TOKENS = dict(zip(("pad", "unk", "cls", "sep", "mask"), RESERVED_TOKENS))
VOCABULARY_FILE = "vocab.txt"
# Where a keras-hub preset keeps its WordPiece vocabulary (a Hugging Face checkpoint has
# VOCABULARY_FILE or TOKENIZER_FILE).
KERAS_HUB_VOCABULARY_FILE = os.path.join("assets", "tokenizer", "vocabulary.txt")
TOKENIZER_FILE = "tokenizer.json"  # Hugging Face `tokenizers`' file
CONFIG_FILE = "tokenizer_config.json"  # Hugging Face `transformers`' tokenizer options
MODEL_CONFIG_FILE = "config.json"  # a Hugging Face model's: max_position_embeddings
MAX_WORD_LENGTH = 100  # characters (BERT's max_input_chars_per_word): a longer word is [UNK]
_UNSET_LENGTH = 10 ** 12  # transformers saves model_max_length=int(1e30) when it has none

# BERT's normalization and split (Hugging Face's BertNormalizer, BertPreTokenizer) in RE2.
_CONTROL = r"[\x00\x{FFFD}]|[^\P{C}\t\n\r]"  # dropped
_SPACE = r"[\t\n\r\p{Z}]"  # made " "
_CJK = (r"[\x{4E00}-\x{9FFF}\x{3400}-\x{4DBF}\x{20000}-\x{2A6DF}\x{2A700}-\x{2B73F}"
        r"\x{2B740}-\x{2B81F}\x{2B920}-\x{2CEAF}\x{F900}-\x{FAFF}\x{2F800}-\x{2FA1F}]")
_WHITESPACE = r"[\t\n\v\f\r\p{Z}\x{85}]"
_BERT_PUNCTUATION = r"[!-/]|[:-@]|[\[-`]|[{-~]|\p{P}"
# The word split of `tokenize_with_offsets`: whitespace, and punctuation and symbols kept as
# words (keras-hub's ASCII ranges plus Unicode punctuation and symbols).
_PUNCTUATION = _BERT_PUNCTUATION + r"|\p{S}"
_DELIMITERS = r"\s|" + _PUNCTUATION


def normalize(texts, lowercase=True, strip_accents=None):
    """BERT's normalization of strings (Hugging Face's `BertNormalizer`): control characters,
    U+0000 and U+FFFD dropped, whitespace made a space, spaces put around CJK ideographs,
    accents stripped (`strip_accents`, by default `lowercase`) and each character
    lower-cased (`lowercase`).

    >>> [t.decode() for t in normalize(tf.constant(["Ça\\tVA\\x00 中文!"])).numpy()]
    ['ca va  中  文 !']
    """
    strip_accents = lowercase if strip_accents is None else strip_accents
    texts = tf.strings.regex_replace(texts, _CONTROL, "")
    texts = tf.strings.regex_replace(texts, _SPACE, " ")
    texts = tf.strings.regex_replace(texts, _CJK, r" \0 ")
    if strip_accents:
        texts = tf.strings.regex_replace(tensorflow_text.normalize_utf8(texts, "NFD"),
                                         r"\p{Mn}", "")
    if lowercase:  # character by character: ICU's final sigma rule ("ος") is not BERT's
        texts = tf.strings.lower(tf.strings.regex_replace(texts, "Σ", "σ"), encoding="utf-8")
    return texts


def split_words(texts, lowercase=True, strip_accents=None):
    """Strings `[batch]` (or one string) `normalize`d and split into words `[batch, None]`:
    on whitespace, each punctuation character a word (Hugging Face's `BertPreTokenizer`).

    >>> split_words(tf.constant(["Don't  STOP...now"])).to_list()
    [[b'don', b"'", b't', b'stop', b'.', b'.', b'.', b'now']]
    """
    texts = tf.convert_to_tensor(texts)
    if texts.shape.rank == 0:
        texts = texts[tf.newaxis]
    return tensorflow_text.regex_split(normalize(texts, lowercase, strip_accents),
                                       f"{_WHITESPACE}|{_BERT_PUNCTUATION}", _BERT_PUNCTUATION)


def is_cased(vocabulary, special=()):
    """True if the vocabulary has upper-case pieces (a cased checkpoint's): its input is then
    used as it is; otherwise (learned here, or uncased) input is lower-cased. Bracketed
    tokens (`[CLS]`) and the tokens in `special` do not count.

    >>> is_cased(RESERVED_TOKENS + ["film"]), is_cased(RESERVED_TOKENS + ["Film"])
    (False, True)
    """
    return any(token != token.lower() for token in vocabulary
               if not (token.startswith("[") and token.endswith("]")) and token not in special)


# Hugging Face files ---------------------------------------------------------------------------
def _read_json(path):
    """The JSON object in file `path`, or a ValueError naming it."""
    try:
        with open(path, encoding="utf-8") as f:
            spec = json.load(f)
    except ValueError as e:
        raise ValueError(f"{path} is not valid JSON ({e})") from e
    if not isinstance(spec, dict):
        raise ValueError(f"{path} holds a JSON {type(spec).__name__}, not an object")
    return spec


def _expect(path, key, value, needed):
    if value != needed:
        raise ValueError(f"{path}: {key} {value!r} is not supported; kerlm's WordPiece "
                         f"tokenizer runs BERT's ({needed!r})")


def _json_special_tokens(spec):
    """The special tokens a tokenizer.json names: the model's unknown token, the padding's
    pad token, the post-processor's [CLS] and [SEP], an added special token with "mask"."""
    special = {"unk": spec["model"].get("unk_token"),
               "pad": (spec.get("padding") or {}).get("pad_token")}
    post = spec.get("post_processor") or {}
    if post.get("type") == "BertProcessing":
        special.update(cls=post["cls"][0], sep=post["sep"][0])
    elif post.get("type") == "TemplateProcessing":
        tokens = [p["SpecialToken"]["id"] for p in post.get("single", []) if "SpecialToken" in p]
        if len(tokens) == 2:
            special.update(cls=tokens[0], sep=tokens[1])
    special["mask"] = next((t["content"] for t in spec.get("added_tokens", [])
                            if t.get("special") and "mask" in t["content"].lower()), None)
    return {name: token for name, token in special.items() if token}


def _keras_hub_settings(path, spec):
    """The settings of a keras-hub preset's tokenizer.json (its vocabulary is an asset)."""
    config = spec.get("config") or {}
    if "suffix_indicator" not in config:
        raise ValueError(f"{path} holds a keras-hub {spec.get('class_name')}, not a WordPiece "
                         "tokenizer; kerlm's WordPiece tokenizer reads BERT-family presets")
    _expect(path, "suffix_indicator", config["suffix_indicator"], "##")
    return {"lowercase": config.get("lowercase", False),
            "strip_accents": config.get("strip_accents", False),
            "special_tokens": {"unk": config.get("oov_token", "[UNK]")}}


def read_tokenizer_json(path):
    """`(vocabulary, settings)` of a Hugging Face tokenizer.json of BERT's kind (WordPiece,
    BertNormalizer, BertPreTokenizer): its tokens ordered by id, and the `WordPieceTokenizer`
    arguments its normalizer and special tokens give (a keras-hub preset's tokenizer.json:
    no vocabulary, and its casing, accents and unknown token). A ValueError names the file
    and what it holds that kerlm cannot run."""
    spec = _read_json(path)
    if str(spec.get("registered_name")).startswith("keras_hub>"):
        return None, _keras_hub_settings(path, spec)
    model = spec.get("model") or {}
    if model.get("type") != "WordPiece":
        raise ValueError(f"{path} holds a {model.get('type')!r} tokenizer, not WordPiece; "
                         "kerlm's WordPiece tokenizer reads BERT-family checkpoints (a "
                         "WordPiece tokenizer.json or a vocab.txt): use one of those")
    for key, needed in (("continuing_subword_prefix", "##"),
                        ("max_input_chars_per_word", MAX_WORD_LENGTH)):
        _expect(path, f"model.{key}", model.get(key, needed), needed)
    normalizer = spec.get("normalizer") or {}
    _expect(path, "normalizer", normalizer.get("type"), "BertNormalizer")
    for key in ("clean_text", "handle_chinese_chars"):
        _expect(path, f"normalizer.{key}", normalizer.get(key, True), True)
    _expect(path, "pre_tokenizer", (spec.get("pre_tokenizer") or {}).get("type"),
            "BertPreTokenizer")
    added = {t["content"]: t["id"] for t in spec.get("added_tokens", [])}
    ids = {**model.get("vocab", {}), **added}
    vocabulary = [None] * (max(ids.values(), default=-1) + 1)
    for token, i in ids.items():
        vocabulary[i] = token
    gaps = [i for i, token in enumerate(vocabulary) if token is None]
    if gaps or not vocabulary:
        raise ValueError(f"{path}: the WordPiece vocabulary has no token for ids {gaps[:5]} "
                         f"(of {len(vocabulary)})")
    return vocabulary, {"lowercase": normalizer.get("lowercase", True),
                        "strip_accents": normalizer.get("strip_accents"),
                        "special_tokens": _json_special_tokens(spec)}


def read_tokenizer_config(path):
    """The `WordPieceTokenizer` arguments a Hugging Face tokenizer_config.json gives
    (`do_lower_case`, `strip_accents`, the `*_token`s, `model_max_length`)."""
    config = _read_json(path)
    for key in ("do_basic_tokenize", "tokenize_chinese_chars"):
        _expect(path, key, config.get(key, True), True)
    tokens = {name: config.get(f"{name}_token") for name in SPECIAL_TOKENS}
    tokens = {name: t.get("content") if isinstance(t, dict) else t for name, t in tokens.items()}
    settings = {"special_tokens": {name: token for name, token in tokens.items() if token}}
    if "do_lower_case" in config:  # strip_accents null: as lowercase
        settings["lowercase"] = bool(config["do_lower_case"])
        settings["strip_accents"] = config.get("strip_accents")
    elif config.get("strip_accents") is not None:
        settings["strip_accents"] = bool(config["strip_accents"])
    length = config.get("model_max_length")
    if isinstance(length, int) and 0 < length < _UNSET_LENGTH:
        settings["max_length"] = length
    return settings


def hugging_face_settings(directory):
    """`(vocabulary, settings)` from the Hugging Face files in `directory`: tokenizer.json's
    vocabulary (None without one) and `WordPieceTokenizer` arguments, `{}` without such files
    (a kerlm save). Casing and accents come from tokenizer_config.json where it sets
    `do_lower_case` (as in transformers, whose BertTokenizerFast rebuilds tokenizer.json's
    normalizer from it), else from tokenizer.json's normalizer; special tokens from
    tokenizer_config.json, else tokenizer.json; `max_length` from `model_max_length`, capped
    by (or, without it, from) config.json's `max_position_embeddings`.

    >>> import tempfile
    >>> hugging_face_settings(tempfile.mkdtemp())
    (None, {})
    """
    settings, vocabulary = {}, None
    path = os.path.join(directory, CONFIG_FILE)
    if os.path.isfile(path):
        settings = read_tokenizer_config(path)
    path = os.path.join(directory, TOKENIZER_FILE)
    if os.path.isfile(path):
        vocabulary, from_json = read_tokenizer_json(path)
        special = {**from_json.pop("special_tokens"), **settings.get("special_tokens", {})}
        if "lowercase" in settings:
            from_json = {}
        settings = {**settings, **from_json, "special_tokens": special}
    path = os.path.join(directory, MODEL_CONFIG_FILE)
    positions = _read_json(path).get("max_position_embeddings") if os.path.isfile(path) else None
    if isinstance(positions, int):
        settings["max_length"] = min(settings.get("max_length", positions), positions)
    if not settings.get("special_tokens", True):
        del settings["special_tokens"]
    return vocabulary, settings


@register(VOCABULARY_FILE, CONFIG_FILE)
class WordPieceTokenizer(Tokenizer):
    """WordPiece over a vocabulary list with BERT's special tokens `[PAD]`, `[UNK]`, `[CLS]`
    (`start_id`), `[SEP]` (`end_id`) and, if present, `[MASK]` (`mask_id`); `special_tokens`
    (`{"pad", "unk", "cls", "sep", "mask"}` → token) names others.

    `lowercase` (default: unless the vocabulary `is_cased`) lower-cases the input,
    `strip_accents` (default: `lowercase`, as BERT's uncased models do) strips its accents.
    `max_length`: the longest input (in tokens) the checkpoint was made for, or None.
    `save` writes `vocab.txt` (one token a line), which Hugging Face checkpoints carry too;
    `from_directory` also reads a keras-hub preset's `assets/tokenizer/vocabulary.txt` and
    a Hugging Face checkpoint's `tokenizer.json` and `tokenizer_config.json`.

    Example:
    >>> WordPieceTokenizer.learn(["a good film", "a bad film"] * 10, 50).vocabulary[:6]
    ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', 'a']
    >>> tokenizer = WordPieceTokenizer(RESERVED_TOKENS + ["caf", "##e", "film", "!"])
    >>> tokenizer.mask_id, tokenizer.lowercase, tokenizer.strip_accents
    (4, True, True)
    >>> ids = tokenizer.tokenize(tf.constant(["Café  film!", "Tea"]))
    >>> ids.to_list()
    [[5, 6, 7, 8], [1]]
    >>> _, start, end = tokenizer.tokenize_with_offsets(tf.constant(["Café  film!"]))
    >>> start.to_list(), end.to_list()  # bytes of the original text: "é" is two
    ([[0, 3, 7, 11]], [[3, 5, 11, 12]])
    >>> tokenizer.detokenize(tf.constant([[2, 5, 6, 7, 3, 0]])).numpy().tolist()
    [b'cafe film']
    """

    def __init__(self, vocabulary, lowercase=None, strip_accents=None, special_tokens=None,
                 max_length=None, **kwargs):
        super().__init__(**kwargs)
        self._vocabulary = list(vocabulary)
        unknown = sorted(set(special_tokens or {}) - set(SPECIAL_TOKENS))
        if unknown:
            raise ValueError(f"unknown special token names {unknown}; kerlm's are "
                             f"{list(SPECIAL_TOKENS)}")
        self._special = {**SPECIAL_TOKENS, **(special_tokens or {})}
        index = {token: i for i, token in enumerate(self._vocabulary)}
        missing = [self._special[name] for name in ("pad", "unk", "cls", "sep")
                   if self._special[name] not in index]
        if missing:
            raise ValueError(f"the vocabulary lacks the special tokens {missing}")
        self.lowercase = (not is_cased(self._vocabulary, self._special.values())
                          if lowercase is None else bool(lowercase))
        self.strip_accents = self.lowercase if strip_accents is None else bool(strip_accents)
        self.max_length = max_length
        self.pad_id, self.unk_id = index[self._special["pad"]], index[self._special["unk"]]
        self.start_id, self.end_id = index[self._special["cls"]], index[self._special["sep"]]
        self.mask_id = index.get(self._special["mask"])
        self._wordpiece = tensorflow_text.FastWordpieceTokenizer(
            self._vocabulary, suffix_indicator="##", unknown_token=self._special["unk"],
            max_bytes_per_word=4 * MAX_WORD_LENGTH, token_out_type=tf.int32,
            no_pretokenization=True, support_detokenization=True)

    @property
    def special_tokens(self):
        """`{"pad", "unk", "cls", "sep", "mask"}` → the token (`mask`'s may be absent)."""
        return dict(self._special)

    @classmethod
    def learn(cls, texts, vocabulary_size, lowercase=True):
        """Learn a vocabulary (the special tokens first) from strings with keras-hub's
        `compute_word_piece_vocabulary`, on the words `tokenize` splits them into (accents
        stripped with `lowercase`). The tokenizer's casing is then the vocabulary's
        (`is_cased`), as `load` decides it."""
        data = tf.data.Dataset.from_tensor_slices(list(texts)).batch(1024)
        words = data.map(lambda batch: split_words(batch, lowercase))
        return cls(keras_hub.tokenizers.compute_word_piece_vocabulary(
            words, vocabulary_size, lowercase=False, strip_accents=False, split=False,
            reserved_tokens=RESERVED_TOKENS))

    @classmethod
    def reads(cls):
        return (VOCABULARY_FILE, KERAS_HUB_VOCABULARY_FILE, TOKENIZER_FILE)

    @classmethod
    def from_directory(cls, directory):
        """The tokenizer of a kerlm save, a keras-hub preset or a Hugging Face checkpoint in
        `directory` (see the module's docstring); nothing is written there.

        >>> import tempfile
        >>> directory = tempfile.mkdtemp()
        >>> WordPieceTokenizer(RESERVED_TOKENS + ["Film"], lowercase=True).save(directory)
        >>> sorted(os.listdir(directory))  # the casing is not the vocabulary's: saved
        ['tokenizer_config.json', 'vocab.txt']
        >>> WordPieceTokenizer.from_directory(directory).lowercase
        True
        """
        vocabulary, settings = hugging_face_settings(directory)
        path = next((os.path.join(directory, name)
                     for name in (VOCABULARY_FILE, KERAS_HUB_VOCABULARY_FILE)
                     if os.path.isfile(os.path.join(directory, name))), None)
        if path is None:
            path = os.path.join(directory, TOKENIZER_FILE)
            if vocabulary is None:
                raise ValueError(f"{directory} has no WordPiece vocabulary (looked for "
                                 f"{', '.join(cls.reads())})")
        else:
            with open(path, encoding="utf-8") as f:
                vocabulary = [line.rstrip("\n") for line in f]
        try:
            return cls(vocabulary, **settings)
        except ValueError as e:
            raise ValueError(f"{path}: {e}, which [CLS] text [SEP] packing needs") from e

    def hugging_face_config(self):
        """The tokenizer_config.json `save` writes (Hugging Face's `BertTokenizer` keys), or
        None where the vocabulary alone implies the settings."""
        if (self.lowercase == (not is_cased(self._vocabulary))
                and self.strip_accents == self.lowercase and self._special == SPECIAL_TOKENS
                and self.max_length is None):
            return None
        config = {"tokenizer_class": "BertTokenizer", "do_lower_case": self.lowercase,
                  "strip_accents": self.strip_accents,
                  **{f"{name}_token": token for name, token in self._special.items()}}
        if self.max_length is not None:
            config["model_max_length"] = self.max_length
        return config

    def save(self, directory):
        """`vocab.txt`, and `tokenizer_config.json` where `hugging_face_config` gives one (a
        stale one is removed otherwise, so that the directory reads back as this tokenizer)."""
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, VOCABULARY_FILE), "w", encoding="utf-8") as f:
            f.write("".join(token + "\n" for token in self._vocabulary))
        path, config = os.path.join(directory, CONFIG_FILE), self.hugging_face_config()
        if config is not None:
            with open(path, "w", encoding="utf-8") as f:
                json.dump(config, f, indent=1)
        elif os.path.exists(path):
            os.remove(path)

    @property
    def vocabulary(self):
        return list(self._vocabulary)

    def _unknown_if_long(self, words):
        """Words `[batch, None]` with those of more than MAX_WORD_LENGTH characters replaced
        by the unknown token (BERT's rule)."""
        values = words.flat_values
        long = tf.strings.length(values, unit="UTF8_CHAR") > MAX_WORD_LENGTH
        return words.with_flat_values(tf.where(long, self._special["unk"], values))

    def tokenize(self, texts):
        words = split_words(texts, self.lowercase, self.strip_accents)
        return self._wordpiece.tokenize(self._unknown_if_long(words)).merge_dims(-2, -1)

    def tokenize_with_offsets(self, texts):
        texts = tf.convert_to_tensor(texts)
        words, starts, ends = tensorflow_text.regex_split_with_offsets(
            texts, _DELIMITERS, _PUNCTUATION)
        normalized = words
        if self.lowercase:  # case folded, accents stripped (see the module's docstring)
            normalized = tensorflow_text.case_fold_utf8(normalized)
        if self.strip_accents:
            normalized = tensorflow_text.normalize_utf8(normalized, "NFD")
            normalized = tf.strings.regex_replace(normalized, r"\p{Mn}", "")
        pieces, piece_starts, piece_ends = self._wordpiece.tokenize_with_offsets(
            self._unknown_if_long(normalized))
        word_of_piece = pieces.values.value_rowids()  # index into the flat words
        word_start = tf.gather(starts.flat_values, word_of_piece)
        word_end = tf.gather(ends.flat_values, word_of_piece)
        word_length = word_end - word_start
        start = word_start + tf.minimum(piece_starts.flat_values, word_length)
        end = word_start + tf.minimum(piece_ends.flat_values, word_length)
        last = tf.equal(tf.range(tf.size(pieces.flat_values, tf.int64)),
                        tf.gather(pieces.values.row_limits() - 1, word_of_piece))
        end = tf.where(last, word_end, end)
        splits = pieces.merge_dims(1, 2).row_splits
        return (tf.RaggedTensor.from_row_splits(pieces.flat_values, splits),
                tf.RaggedTensor.from_row_splits(start, splits),
                tf.RaggedTensor.from_row_splits(end, splits))

    def detokenize(self, ids):
        """Words joined by spaces (`##` pieces glued to their word; WordPiece does not keep
        the spacing: "great sound !"); `[PAD]`, `[CLS]`, `[SEP]` and `[MASK]` print as
        nothing, `[UNK]` as itself."""
        drop = tf.constant([i for i in self.special_ids if i != self.unk_id], tf.int32)
        ids = select_ids(ids, lambda v: tf.reduce_all(v[:, None] != drop, axis=1))
        return self._wordpiece.detokenize(ids)

    def get_config(self):
        config = super().get_config()
        config.update(vocabulary=self._vocabulary, lowercase=self.lowercase,
                      strip_accents=self.strip_accents, special_tokens=self.special_tokens,
                      max_length=self.max_length)
        return config
