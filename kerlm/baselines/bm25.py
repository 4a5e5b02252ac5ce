"""Lexical retrieval baselines over a pool of documents: Okapi BM25 and TF-IDF cosine.

Terms are lower-cased runs of letters and digits. Both keep an inverted index (term →
documents holding it, with their weights), so scoring a query touches only the documents
sharing a term with it; `scores(queries)` is a `[queries, documents]` matrix for
`kerlm.metrics.gold_ranks`.

Example:
>>> pool = ["the cat sat on the mat", "dogs chase cats", "a cat and a dog"]
>>> bm25 = BM25(pool)
>>> bm25.scores(["cat mat", "dog"]).round(3).tolist()
[[1.299, 0.0, 0.457], [0.0, 0.0, 0.953]]
>>> TfIdf(pool).scores(["cat mat"]).round(3).tolist()
[[0.456, 0.0, 0.179]]
"""

import collections
import math
import re

import numpy as np

_TERM = re.compile(r"\w+")


def terms(text):
    """The lower-cased words of `text`."""
    return _TERM.findall(text.lower())


def _postings(documents):
    """`({term: (document ids, term counts)}, document lengths)`."""
    found = collections.defaultdict(lambda: ([], []))
    lengths = []
    for i, document in enumerate(documents):
        counts = collections.Counter(terms(document))
        lengths.append(sum(counts.values()))
        for term, count in counts.items():
            found[term][0].append(i)
            found[term][1].append(count)
    return ({term: (np.array(ids), np.array(counts, "float64"))
             for term, (ids, counts) in found.items()}, np.array(lengths, "float64"))


class _Index:
    """Scores of queries from per-term document weights (`self.weights`) and per-query
    term weights (`query_weights`)."""

    def __init__(self, documents):
        self.size = len(documents)
        self.postings, self.lengths = _postings(documents)
        self.weights = {}

    def query_weights(self, query):
        raise NotImplementedError

    def scores(self, queries):
        """`[len(queries), len(documents)]` float64 scores."""
        out = np.zeros((len(queries), self.size))
        for row, query in zip(out, queries):
            for term, weight in self.query_weights(query).items():
                if term in self.weights:
                    ids, values = self.weights[term]
                    row[ids] += weight * values
        return out


class BM25(_Index):
    """Okapi BM25: `Σ over query terms of idf · tf (k1 + 1) / (tf + k1 (1 − b + b · len /
    mean len))`, with Lucene's never-negative `idf = log(1 + (N − n + 0.5) / (n + 0.5))`;
    a term repeated in the query counts each time."""

    def __init__(self, documents, k1=1.2, b=0.75):
        super().__init__(documents)
        mean_length = max(self.lengths.mean(), 1.0) if self.size else 1.0
        for term, (ids, tf) in self.postings.items():
            idf = math.log(1.0 + (self.size - len(ids) + 0.5) / (len(ids) + 0.5))
            norm = tf + k1 * (1.0 - b + b * self.lengths[ids] / mean_length)
            self.weights[term] = (ids, idf * tf * (k1 + 1.0) / norm)

    def query_weights(self, query):
        return collections.Counter(terms(query))


class TfIdf(_Index):
    """Cosine of TF-IDF vectors, `idf = log((1 + N) / (1 + n)) + 1` (scikit-learn's
    smoothed idf); query terms the pool lacks count in neither vector."""

    def __init__(self, documents):
        super().__init__(documents)
        self.idf = {term: math.log((1 + self.size) / (1 + len(ids))) + 1.0
                    for term, (ids, _) in self.postings.items()}
        norms = np.zeros(self.size)
        for term, (ids, tf) in self.postings.items():
            norms[ids] += (tf * self.idf[term]) ** 2
        norms = np.sqrt(np.maximum(norms, 1e-12))
        self.weights = {term: (ids, tf * self.idf[term] / norms[ids])
                        for term, (ids, tf) in self.postings.items()}

    def query_weights(self, query):
        weights = {term: count * self.idf[term]
                   for term, count in collections.Counter(terms(query)).items()
                   if term in self.idf}
        norm = math.sqrt(sum(w * w for w in weights.values())) or 1.0
        return {term: w / norm for term, w in weights.items()}
