"""BM25 and TF-IDF cosine against their formulas computed by hand."""

import math

import numpy as np
import pytest

from kerlm.baselines import BM25, TfIdf
from kerlm.baselines.bm25 import terms

POOL = ["The cat sat on the mat.", "Dogs chase cats!", "A cat and a dog", "nothing here"]


def test_bm25_equals_the_okapi_formula():
    k1, b = 1.2, 0.75
    lengths = [len(terms(d)) for d in POOL]
    mean = sum(lengths) / len(lengths)

    def term(tf, n, length):
        idf = math.log(1 + (len(POOL) - n + 0.5) / (n + 0.5))
        return idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * length / mean))

    expected = [term(1, 2, lengths[0]) + term(2, 1, lengths[0]), 0.0,
                term(1, 2, lengths[2]), 0.0]  # "cat" in docs 0 and 2; "the" twice in doc 0
    np.testing.assert_allclose(BM25(POOL).scores(["cat the"])[0], expected, rtol=1e-12)


def test_a_query_term_repeated_counts_twice_and_unknown_terms_nothing():
    bm25 = BM25(POOL)
    once, twice, unknown = bm25.scores(["dog", "dog dog", "zebra"])
    np.testing.assert_allclose(twice, 2 * once)
    assert not unknown.any()


def test_tfidf_cosine_equals_dense_vectors():
    vocabulary = sorted({t for d in POOL for t in terms(d)})
    counts = np.array([[terms(d).count(t) for t in vocabulary] for d in POOL], "float64")
    idf = np.log((1 + len(POOL)) / (1 + (counts > 0).sum(0))) + 1
    documents = counts * idf
    documents /= np.linalg.norm(documents, axis=1, keepdims=True)
    query = np.array([terms("cat on a mat mat").count(t) for t in vocabulary]) * idf
    query /= np.linalg.norm(query)
    np.testing.assert_allclose(TfIdf(POOL).scores(["cat on a mat mat"])[0], documents @ query,
                               rtol=1e-12)


@pytest.mark.parametrize("index", [BM25, TfIdf])
def test_an_exact_copy_ranks_first(index):
    scores = index(POOL).scores(POOL[:3])
    assert scores.argmax(1).tolist() == [0, 1, 2]
