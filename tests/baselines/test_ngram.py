import math
import random

import pytest

from kerlm import baselines
from kerlm.baselines.ngram import END, START, UNKNOWN, AddKBigram, KneserNeyBigram, count_words

NOUNS = ["cat", "dog", "bird", "fish", "horse", "mouse"]
ADJECTIVES = ["big", "small", "red", "old"]
VERBS = ["sees", "chases", "likes", "finds"]


def sentences(n, seed):
    """Texts of a tiny grammar, so that word order carries information."""
    rng = random.Random(seed)
    return [" ".join(["the", rng.choice(ADJECTIVES), rng.choice(NOUNS), rng.choice(VERBS),
                      "a", rng.choice(NOUNS)] + (["today"] if rng.random() < 0.3 else []))
            for _ in range(n)]


CORPUS = sentences(300, seed=0) + ["a zebra once sees the cat"]  # "zebra", "once": rare


def total_probability(lm, previous):
    assert START not in lm.vocabulary
    return math.fsum(math.exp(lm.log_prob(previous, w)) for w in lm.vocabulary)


@pytest.mark.parametrize("model", [KneserNeyBigram, AddKBigram])
@pytest.mark.parametrize("previous", [START, "the", "cat", "today", END, UNKNOWN, "zebra",
                                      "never-seen"])
def test_probabilities_sum_to_one(model, previous):
    lm = model().fit(CORPUS)
    assert {END, UNKNOWN} <= set(lm.vocabulary)
    assert total_probability(lm, previous) == pytest.approx(1.0, abs=1e-9)


@pytest.mark.parametrize("discount", [0.1, 0.75, 1.0])
def test_kneser_ney_sums_to_one_without_pruning_and_any_discount(discount):
    lm = KneserNeyBigram(discount=discount, min_count=1).fit(CORPUS)
    for previous in [START, "the", "zebra", UNKNOWN]:  # <unk>: an unseen context here
        assert total_probability(lm, previous) == pytest.approx(1.0, abs=1e-9)


def test_kneser_ney_matches_a_hand_computation():
    lm = KneserNeyBigram(discount=0.75, min_count=1).fit(["a b", "a b", "b a"])
    # Bigram types: <s>a (2), ab (2), b</s> (2+1), <s>b (1), ba (1), a</s> (1): 6 types.
    # Continuation counts N(. w): a 2 (<s>, b), b 2 (<s>, a), </s> 2 (a, b), <unk> 0;
    # 3 words continue something, V = 4 (a, b, </s>, <unk>).
    p_cont_b = (2 - 0.75 + 0.75 * 3 / 4) / 6
    p_cont_unk = (0 + 0.75 * 3 / 4) / 6
    # Context a: c(a .) = 3 (ab twice, a</s> once), N(a .) = 2.
    p_b_given_a = (2 - 0.75) / 3 + 0.75 * 2 / 3 * p_cont_b
    assert math.exp(lm.log_prob("a", "b")) == pytest.approx(p_b_given_a, rel=1e-12)
    assert math.exp(lm.log_prob("a", "zebra")) == pytest.approx(0.75 * 2 / 3 * p_cont_unk,
                                                                rel=1e-12)
    # An unseen context (</s>) predicts with the continuation unigram alone.
    assert math.exp(lm.log_prob(END, "b")) == pytest.approx(p_cont_b, rel=1e-12)


def test_add_k_matches_a_hand_computation():
    lm = AddKBigram(k=0.5, min_count=1).fit(["a b", "a b", "b a"])
    assert math.exp(lm.log_prob("a", "b")) == pytest.approx((2 + 0.5) / (3 + 0.5 * 4))
    assert math.exp(lm.log_prob("a", "a")) == pytest.approx(0.5 / (3 + 0.5 * 4))


@pytest.mark.parametrize("model", [KneserNeyBigram, AddKBigram])
def test_perplexity_is_exp_of_the_mean_negative_log_likelihood(model):
    lm = model().fit(CORPUS)
    held_out = sentences(50, seed=1)
    total, tokens = lm.log_likelihood(held_out)
    assert tokens == count_words(held_out) == sum(len(t.split()) + 1 for t in held_out)
    assert total == pytest.approx(math.fsum(
        lm.log_prob(p, w) for t in held_out
        for p, w in zip([START] + t.split(), t.split() + [END])))
    assert lm.perplexity(held_out) == pytest.approx(math.exp(-total / tokens), rel=1e-12)


@pytest.mark.parametrize("model", [KneserNeyBigram, AddKBigram])
def test_held_out_text_is_likelier_than_shuffled_words(model):
    lm = model().fit(CORPUS)
    held_out = sentences(100, seed=2)
    rng = random.Random(3)
    shuffled = []
    for text in held_out:
        tokens = text.split()
        rng.shuffle(tokens)
        shuffled.append(" ".join(tokens))
    assert count_words(shuffled) == count_words(held_out)
    assert lm.perplexity(held_out) < 0.5 * lm.perplexity(shuffled)


def test_rare_and_unseen_words_are_unknown():
    lm = KneserNeyBigram(min_count=2).fit(CORPUS)
    assert "zebra" not in lm.vocabulary and "once" not in lm.vocabulary
    assert "cat" in lm.vocabulary
    unknown = lm.log_prob("the", UNKNOWN)
    assert lm.log_prob("the", "zebra") == lm.log_prob("the", "giraffe") == unknown
    assert lm.log_prob("zebra", "sees") == lm.log_prob("giraffe", "sees")
    # The rare training words were counted as <unk>: "a <unk>" was seen, "the <unk>" not.
    assert lm.bigrams[("a", UNKNOWN)] == 1 and lm.bigrams[(UNKNOWN, UNKNOWN)] == 1
    assert lm.log_prob("a", "giraffe") > lm.log_prob("the", "giraffe")
    # min_count=1 keeps every training word.
    assert "zebra" in KneserNeyBigram(min_count=1).fit(CORPUS).vocabulary


def test_count_words_counts_one_end_token_per_text():
    assert count_words([]) == 0
    assert count_words([""]) == 1
    assert count_words(["the cat sat", "", "  a\tb \n c "]) == 4 + 1 + 4
    assert count_words(iter(["x y"])) == 3
    assert baselines.count_words is count_words


@pytest.mark.parametrize("model", [KneserNeyBigram, AddKBigram])
def test_fits_from_a_generator(model):
    from_list = model().fit(CORPUS)
    from_generator = model().fit(text for text in CORPUS)
    assert from_generator.vocabulary == from_list.vocabulary
    held_out = sentences(20, seed=4)
    assert from_generator.log_likelihood(held_out) == from_list.log_likelihood(held_out)
    assert from_generator.log_likelihood(t for t in held_out) == from_list.log_likelihood(
        held_out)


def test_rejects_bad_settings_and_empty_training_text():
    with pytest.raises(ValueError, match="discount"):
        KneserNeyBigram(discount=1.5)
    with pytest.raises(ValueError, match="discount"):
        KneserNeyBigram(discount=0)
    with pytest.raises(ValueError, match="k must"):
        AddKBigram(k=0)
    with pytest.raises(ValueError, match="min_count"):
        KneserNeyBigram(min_count=0)
    with pytest.raises(ValueError, match="no training texts"):
        KneserNeyBigram().fit(iter([]))
