"""Word bigram language models: the baselines a neural LM's per-word perplexity is reported
beside.

- `words`, `count_words`: the word tokens of a text, and the denominator of per-word
  perplexity (words + one end-of-text token per text).
- `KneserNeyBigram`: interpolated Kneser-Ney smoothing (the baseline to report).
- `AddKBigram`: add-k smoothing (a weaker reference).

Words are whitespace-separated (`text.split()`, case kept); every text starts from the
context `<s>` and ends with `</s>`, which is predicted too. `count_words` is the denominator
for both a bigram and a subword model, so their per-word figures compare. Training words
seen fewer than `min_count` times become `<unk>`, and so do unseen test words: a bigram
scores an unknown word as the whole `<unk>` class, which favours it against an
open-vocabulary subword model that must spell the word out piece by piece.

>>> lm = KneserNeyBigram(min_count=1).fit(["the cat sat", "the dog sat"])
>>> round(math.fsum(math.exp(lm.log_prob("the", w)) for w in lm.vocabulary), 9)
1.0
>>> count_words(["the cat sat", "the dog"])
7
>>> lm.perplexity(["the cat sat"]) < lm.perplexity(["sat the cat"])
True
"""

import collections
import math

START, END, UNKNOWN = "<s>", "</s>", "<unk>"


def words(text):
    """The word tokens of `text`: whitespace-separated, case and punctuation kept.

    >>> words("The cat, sat.\\n")
    ['The', 'cat,', 'sat.']
    """
    return text.split()


def count_words(texts):
    """The predicted tokens of `texts`: their `words` plus one end-of-text token per text,
    the denominator of per-word perplexity.

    >>> count_words(["the cat sat", ""])
    5
    """
    return sum(len(words(text)) + 1 for text in texts)


class _Bigram:
    """Counting, the vocabulary and scoring shared by the bigram models; subclasses
    implement `_smooth()` (called at the end of `fit`) and `log_prob`."""

    def __init__(self, min_count):
        if min_count < 1:
            raise ValueError(f"min_count must be at least 1, got {min_count}")
        self.min_count = min_count

    def fit(self, texts):
        """Learns from `texts`, an iterable of strings read once (a generator will do);
        returns self."""
        unigrams, bigrams = collections.Counter(), collections.Counter()
        for text in texts:
            tokens = words(text)
            unigrams.update(tokens)
            bigrams.update(zip([START] + tokens, tokens + [END]))
        if not bigrams:
            raise ValueError("no training texts")
        keep = {w for w, c in unigrams.items() if c >= self.min_count and w != START}
        self.vocabulary = sorted(keep | {END, UNKNOWN})  # what a prediction can be
        self._known = frozenset(self.vocabulary)
        self.bigrams = collections.Counter()  # c(a b), rare words as <unk>
        for (a, b), c in bigrams.items():
            self.bigrams[(a if a in keep or a == START else UNKNOWN,
                          b if b in keep or b == END else UNKNOWN)] += c
        self.context_counts = collections.Counter()  # c(a ·)
        for (a, _), c in self.bigrams.items():
            self.context_counts[a] += c
        self._smooth()
        return self

    def _word(self, word):
        return word if word in self._known else UNKNOWN

    def _context(self, previous):
        return START if previous == START else self._word(previous)

    def log_likelihood(self, texts):
        """`(summed natural-log likelihood, predicted tokens)` of `texts`, the tokens being
        every word and one `</s>` per text (as `count_words` counts them)."""
        total, count = 0.0, 0
        for text in texts:
            tokens = words(text) + [END]
            for previous, word in zip([START] + tokens[:-1], tokens):
                total += self.log_prob(previous, word)
            count += len(tokens)
        return total, count

    def perplexity(self, texts):
        """Per-word perplexity of `texts`, exp(-log-likelihood / tokens)."""
        total, count = self.log_likelihood(texts)
        return math.exp(-total / count)


class KneserNeyBigram(_Bigram):
    """Interpolated Kneser-Ney bigram (Chen & Goodman 1998) with absolute `discount` D:

        P(b | a) = max(c(a b) - D, 0) / c(a ·) + D N(a ·) / c(a ·) P_cont(b)
        P_cont(b) = (max(N(· b) - D, 0) + D N(b: N(· b) > 0) / V) / N(· ·)

    where N counts distinct bigram types and V is the vocabulary size (`</s>` and `<unk>`
    included, `<s>` not): the continuation unigram is interpolated with the uniform
    distribution, so no word has zero probability. A context never seen in training
    (`</s>`, or `<unk>` when nothing was pruned) predicts with P_cont alone.

    >>> lm = KneserNeyBigram().fit(["a b", "a b", "b a c"])
    >>> lm.vocabulary
    ['</s>', '<unk>', 'a', 'b']
    >>> lm.log_prob("a", "c") == lm.log_prob("a", "zebra") == lm.log_prob("a", "<unk>")
    True
    """

    def __init__(self, discount=0.75, min_count=2):
        if not 0 < discount <= 1:
            raise ValueError(f"discount must be in (0, 1], got {discount}")
        super().__init__(min_count)
        self.discount = discount

    def _smooth(self):
        d = self.discount
        self.followers = collections.Counter(a for a, _ in self.bigrams)  # N(a ·)
        continuation = collections.Counter(b for _, b in self.bigrams)  # N(· b)
        types = len(self.bigrams)  # N(· ·)
        uniform = d * len(continuation) / len(self.vocabulary)
        self.unigram = {w: (max(continuation[w] - d, 0) + uniform) / types
                        for w in self.vocabulary}

    def log_prob(self, previous, word):
        """Natural log P(word | previous word), `<s>` being the context of a text's first
        word; words outside the vocabulary are scored as `<unk>`."""
        word, previous = self._word(word), self._context(previous)
        count = self.context_counts.get(previous, 0)
        if not count:
            return math.log(self.unigram[word])
        seen = max(self.bigrams.get((previous, word), 0) - self.discount, 0) / count
        backoff = self.discount * self.followers[previous] / count
        return math.log(seen + backoff * self.unigram[word])


class AddKBigram(_Bigram):
    """Add-k bigram: P(b | a) = (c(a b) + k) / (c(a ·) + k V), V the vocabulary size
    (`</s>` and `<unk>` included, `<s>` not).

    >>> lm = AddKBigram(k=1, min_count=1).fit(["a b", "a b"])
    >>> round(math.exp(lm.log_prob("a", "b")), 6)  # (2 + 1) / (2 + 4)
    0.5
    """

    def __init__(self, k=0.1, min_count=2):
        if not k > 0:
            raise ValueError(f"k must be positive, got {k}")
        super().__init__(min_count)
        self.k = k

    def _smooth(self):
        pass

    def log_prob(self, previous, word):
        """Natural log P(word | previous word), `<s>` being the context of a text's first
        word; words outside the vocabulary are scored as `<unk>`."""
        word, previous = self._word(word), self._context(previous)
        count = self.bigrams.get((previous, word), 0)
        return math.log((count + self.k) /
                        (self.context_counts.get(previous, 0) + self.k * len(self.vocabulary)))
