"""Simple baselines that the seq2seq tasks (translation, summarization) report beside the model.

- `copy_source`: the output is the input (translation).
- `WordByWord`: each source word replaced by its Dice-best target word (translation).
- `lead_words` / `choose_lead_n`: the first n words of the document (summarization).
"""

import re

import numpy as np

from kerlm.metrics.generation import rouge

# A word is a run of letters/digits, with inner apostrophes ("don't", "God’s"); every other
# non-space character is a token of its own.
_TOKEN_RE = re.compile(r"\w+(?:['’]\w+)*|[^\w\s]")
_WORD_RE = re.compile(r"\w")
# Punctuation that opens: attached to the following token instead of the preceding one.
_OPENING = set("([{¿¡“‘«")
# Joiners ("twenty-seven", "and/or"): attached to both neighbours.
_JOINING = set("-–—/")


def tokenize(text):
    """Words and punctuation marks of `text`, in order, case kept.

    >>> tokenize("Hello, world! Don't (stop).")
    ['Hello', ',', 'world', '!', "Don't", '(', 'stop', ')', '.']
    """
    return _TOKEN_RE.findall(text)


def _is_word(token):
    return bool(_WORD_RE.match(token))


def detokenize(tokens):
    """Joins tokens with spaces, attaching punctuation to the preceding token.

    Opening brackets, quotes and Spanish ¿ ¡ attach to the following token instead; hyphens,
    dashes and slashes to both.

    >>> detokenize(["Hello", ",", "world", "."])
    'Hello, world.'
    >>> detokenize(["He", "said", "“", "¿", "why", "?", "”", "(", "x", "-", "ray", ")", "."])
    'He said “¿why?” (x-ray).'
    """
    out, glue_next = [], True
    for token in tokens:
        if out and not glue_next and (_is_word(token) or token in _OPENING):
            out.append(" ")
        out.append(token)
        glue_next = token in _OPENING or token in _JOINING
    return "".join(out)


def copy_source(sources):
    """The copy-source translation baseline: every output is its source, unchanged.

    >>> copy_source(["Hola mundo."])
    ['Hola mundo.']
    """
    return list(sources)


class WordByWord:
    """Word-by-word translation with a dictionary learned from parallel sentences.

    Each lower-cased source word s maps to the target word t of highest Dice coefficient
    `2 c(s, t) / (c(s) + c(t))`, where c counts sentences (pairs) containing the word(s);
    pairs seen in fewer than `min_count` sentences are ignored; ties go to the more frequent
    pair, then to the alphabetically first target word. Punctuation is kept, unknown words are
    copied, and a capitalized source word gives a capitalized translation.

    >>> en = ["The cat sleeps.", "The dog eats.", "A cat eats.", "A dog sleeps."]
    >>> es = ["El gato duerme.", "El perro come.", "Un gato come.", "Un perro duerme."]
    >>> model = WordByWord().fit(en, es)
    >>> model.dictionary["cat"], model.dictionary["sleeps"]
    ('gato', 'duerme')
    >>> model.translate(["The dog eats, Rex sleeps."])
    ['El perro come, Rex duerme.']
    """

    def __init__(self, min_count=2, chunk_size=2000):
        self.min_count = min_count
        self.chunk_size = chunk_size
        self.dictionary = {}

    def fit(self, source_texts, target_texts):
        """Learns `self.dictionary` from aligned sentence lists; returns self."""
        source_texts, target_texts = list(source_texts), list(target_texts)
        if len(source_texts) != len(target_texts):
            raise ValueError(f"{len(source_texts)} source but {len(target_texts)} target texts")
        src_sets = [{t.lower() for t in tokenize(x) if _is_word(t)} for x in source_texts]
        tgt_sets = [{t.lower() for t in tokenize(x) if _is_word(t)} for x in target_texts]
        # Target ids in alphabetical order, so that the smallest id breaks ties.
        src_vocab = sorted(set().union(*src_sets))
        tgt_vocab = sorted(set().union(*tgt_sets))
        if not src_vocab or not tgt_vocab:
            self.dictionary = {}
            return self
        src_id = {w: i for i, w in enumerate(src_vocab)}
        tgt_id = {w: i for i, w in enumerate(tgt_vocab)}
        num_tgt = len(tgt_vocab)
        # Pair keys s * num_tgt + t; 32 bits while they fit, halving memory.
        key_type = np.int32 if len(src_vocab) * num_tgt < 2**31 else np.int64
        src_ids = [np.fromiter((src_id[w] for w in s), key_type, len(s)) for s in src_sets]
        tgt_ids = [np.fromiter((tgt_id[w] for w in t), key_type, len(t)) for t in tgt_sets]
        src_count = np.bincount(np.concatenate(src_ids), minlength=len(src_vocab))
        tgt_count = np.bincount(np.concatenate(tgt_ids), minlength=num_tgt)

        # Sentence co-occurrence counts of the (s, t) pairs, as sorted unique keys and counts,
        # merged in chunk by chunk: memory holds one chunk's pairs plus the distinct pairs.
        keys, counts = np.zeros(0, key_type), np.zeros(0, np.int32)
        for start in range(0, len(src_ids), self.chunk_size):
            chunk = [(s[:, None] * key_type(num_tgt) + t[None, :]).ravel()
                     for s, t in zip(src_ids[start:start + self.chunk_size],
                                     tgt_ids[start:start + self.chunk_size])]
            chunk_keys, chunk_counts = np.unique(np.concatenate(chunk), return_counts=True)
            position = np.searchsorted(keys, chunk_keys)
            seen = position < len(keys)
            seen[seen] = keys[position[seen]] == chunk_keys[seen]
            counts[position[seen]] += chunk_counts[seen].astype(np.int32)
            keys = np.insert(keys, position[~seen], chunk_keys[~seen])
            counts = np.insert(counts, position[~seen], chunk_counts[~seen].astype(np.int32))
        keep = counts >= self.min_count
        keys, counts = keys[keep], counts[keep]
        s, t = keys // num_tgt, keys % num_tgt
        dice = 2.0 * counts / (src_count[s] + tgt_count[t])
        order = np.lexsort((t, -counts, -dice, s))  # by s, then best first
        s, t = s[order], t[order]
        first = np.ones(len(s), bool)
        first[1:] = s[1:] != s[:-1]
        self.dictionary = {src_vocab[i]: tgt_vocab[j] for i, j in zip(s[first], t[first])}
        return self

    def translate_token(self, token):
        """The translation of one token: punctuation and unknown words are kept as they are."""
        if not _is_word(token):
            return token
        translation = self.dictionary.get(token.lower())
        if translation is None:
            return token
        if token[0].isupper():
            translation = translation[0].upper() + translation[1:]
        return translation

    def translate(self, texts):
        """Detokenized word-by-word translations of `texts`."""
        return [detokenize([self.translate_token(t) for t in tokenize(x)]) for x in texts]


def lead_words(documents, n):
    """The first `n` whitespace-separated words of each document (the lead-n summary).

    >>> lead_words(["one two three four", "five"], 2)
    ['one two', 'five']
    """
    return [" ".join(d.split()[:n]) for d in documents]


def choose_lead_n(dev_documents, dev_summaries, candidates=range(2, 21)):
    """The lead length of best mean ROUGE-L F on the dev set: `(best_n, {n: rougeL})`.

    Ties go to the smallest n.

    >>> docs = ["a b c d e f", "g h i j k l"]
    >>> best, scores = choose_lead_n(docs, ["a b c d", "g h i j"], candidates=[2, 4, 6])
    >>> best, {n: round(s, 1) for n, s in scores.items()}
    (4, {2: 66.7, 4: 100.0, 6: 80.0})
    """
    dev_documents, dev_summaries = list(dev_documents), list(dev_summaries)
    scores = {n: rouge(lead_words(dev_documents, n), dev_summaries)["rougeL"]
              for n in candidates}
    if not scores:
        raise ValueError("no candidate lengths")
    best = max(scores, key=lambda n: (scores[n], -n))
    return best, scores
