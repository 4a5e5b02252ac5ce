"""Generation metrics (BLEU, chrF, ROUGE) and the seq2seq baselines."""

import itertools

import pytest
import sacrebleu
from rouge_score import rouge_scorer

from kerlm.metrics import bleu_chrf, generation_report, rouge
from kerlm.baselines import (WordByWord, choose_lead_n, copy_source, detokenize, lead_words,
                             tokenize)

CORPUS = ["The quick brown fox jumps over the lazy dog.",
          "A journey of a thousand miles begins with a single step.",
          "All that glitters is not gold, they say."]


def test_bleu_of_identical_corpora_is_100():
    result = bleu_chrf(CORPUS, CORPUS)
    assert result["bleu"] == pytest.approx(100.0)
    assert result["chrf"] == pytest.approx(100.0)
    assert "tok:13a" in result["bleu_signature"]
    assert result["chrf_signature"].startswith("nrefs:1")


def test_bleu_of_disjoint_corpora_is_near_zero():
    disjoint = ["Zebras quietly munch purple turnips beside frozen lakes today.",
                "Seven violins hum under copper bridges every winter night here.",
                "Rusty engines sing loudly near empty harbors at dawn again."]
    result = bleu_chrf(disjoint, CORPUS)
    assert result["bleu"] < 5
    assert result["chrf"] < 30


def test_bleu_matches_sacrebleu():
    hypotheses = ["The quick brown fox jumped over a lazy dog.",
                  "A journey of thousand miles starts with one step.",
                  "Everything that glitters is not gold."]
    result = bleu_chrf(hypotheses, CORPUS)
    expected_bleu = sacrebleu.corpus_bleu(hypotheses, [CORPUS]).score
    expected_chrf = sacrebleu.corpus_chrf(hypotheses, [CORPUS]).score
    assert result["bleu"] == pytest.approx(expected_bleu)
    assert result["chrf"] == pytest.approx(expected_chrf)
    assert 10 < result["bleu"] < 90


def test_rouge_l_of_a_prefix():
    result = rouge(["the cat sat"], ["the cat sat on the mat"])
    # LCS = 3 words: P = 3/3, R = 3/6, F = 2PR / (P + R) = 2/3.
    assert result["rougeL"] == pytest.approx(200 / 3)
    assert result["rouge1"] == pytest.approx(200 / 3)
    direct = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True).score(
        "the cat sat on the mat", "the cat sat")["rougeL"]
    assert (direct.precision, direct.recall) == (1.0, 0.5)
    assert result["rougeL"] == pytest.approx(100 * direct.fmeasure)


def test_rouge_is_the_mean_over_examples():
    result = rouge(["the cat sat", "a b"], ["the cat sat on the mat", "a b"])
    assert result["rougeL"] == pytest.approx((200 / 3 + 100) / 2)


@pytest.mark.parametrize("metric", [bleu_chrf, rouge, generation_report])
def test_mismatched_or_empty_inputs_raise(metric):
    with pytest.raises(ValueError):
        metric(["one", "two"], ["one"])
    with pytest.raises(ValueError):
        metric([], [])


def test_generation_report():
    report = generation_report(["the cat sat on a mat"], ["the cat sat on the mat"])
    assert report["num_examples"] == 1
    assert report["mean_output_words"] == report["mean_reference_words"] == 6.0
    assert {"bleu", "chrf", "bleu_signature", "rouge1", "rouge2", "rougeL"} <= set(report)
    assert set(generation_report(["a"], ["a"], metrics=("rouge",))) == {
        "rouge1", "rouge2", "rougeL", "num_examples", "mean_output_words",
        "mean_reference_words"}
    with pytest.raises(ValueError):
        generation_report(["a"], ["a"], metrics=("meteor",))


LEXICON = {"gato": "cat", "perro": "dog", "caballo": "horse", "pájaro": "bird", "ratón": "mouse",
           "ve": "sees", "oye": "hears", "sigue": "follows", "busca": "seeks"}
NOUNS = ["gato", "perro", "caballo", "pájaro", "ratón"]
VERBS = ["ve", "oye", "sigue", "busca"]


def synthetic_corpus():
    """20 Spanish sentences "El N1 V el N2." and their word-for-word English translations."""
    spanish = [f"El {NOUNS[i % 5]} {VERBS[i // 5]} el {NOUNS[(i + 1 + i // 5) % 5]}."
               for i in range(20)]
    english = [" ".join(LEXICON.get(w, "the") for w in s.lower().rstrip(".").split()) + "."
               for s in spanish]
    return spanish, [e[0].upper() + e[1:] for e in english]


def test_word_by_word_learns_the_lexicon():
    spanish, english = synthetic_corpus()
    assert english[0] == "The cat sees the dog."
    model = WordByWord().fit(spanish, english)
    assert model.dictionary == {**LEXICON, "el": "the"}
    new = "El ratón busca el caballo, el gato oye el pájaro."
    assert new.split(",")[0] + "." not in spanish
    assert model.translate([new]) == ["The mouse seeks the horse, the cat hears the bird."]


def test_word_by_word_ignores_single_co_occurrences_and_copies_unknown_words():
    model = WordByWord().fit(["hola mundo", "hola amigo"], ["hello world", "hello friend"])
    assert model.dictionary == {"hola": "hello"}  # "mundo"-"world" seen once only
    assert model.translate(["¡Hola, Mundo!"]) == ["¡Hello, Mundo!"]
    assert WordByWord(min_count=1).fit(["hola mundo"], ["hello world"]).dictionary == {
        "hola": "hello", "mundo": "hello"}  # all ties: the alphabetically first target word


def test_word_by_word_tokens_and_punctuation():
    assert tokenize("Hello , world .") == ["Hello", ",", "world", "."]
    assert detokenize(tokenize("Hello , world .")) == "Hello, world."
    assert WordByWord().translate(["Hello , world ."]) == ["Hello, world."]
    assert detokenize(["Dijo", ":", "“", "¿", "Quién", "?", "”"]) == "Dijo: “¿Quién?”"
    assert detokenize(tokenize("forty-two (42) and/or more")) == "forty-two (42) and/or more"


def test_word_by_word_rejects_unaligned_corpora():
    with pytest.raises(ValueError):
        WordByWord().fit(["a", "b"], ["a"])


def test_copy_source():
    assert copy_source(("Hola mundo.", "Adiós.")) == ["Hola mundo.", "Adiós."]


def test_lead_words():
    assert lead_words(["one  two\nthree four", "five", ""], 3) == ["one two three", "five", ""]


def test_choose_lead_n_finds_the_summary_length():
    words = [f"w{i}" for i in range(40)]
    documents = [" ".join(words[i:i + 25]) for i in range(0, 15, 3)]
    summaries = lead_words(documents, 3)
    best, scores = choose_lead_n(documents, summaries)
    assert best == 3
    assert list(scores) == list(range(2, 21))
    assert scores[3] == pytest.approx(100.0)
    assert scores[3] == max(scores.values())
    # Lead-n against a 3-word summary: F = 2 * 3 / (n + 3) for n >= 3.
    assert scores[6] == pytest.approx(100 * 2 * 3 / 9)
    assert all(a > b for a, b in itertools.pairwise(list(scores.values())[1:]))
