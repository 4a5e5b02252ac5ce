"""Retrieval metrics (recall@k, MRR) of score matrices, and Spearman's rank correlation.

Example:
>>> import numpy as np
>>> scores = np.array([[0.9, 0.1, 0.3],    # query 0: its target (0) first
...                    [0.8, 0.2, 0.5],    # query 1: target 1 third
...                    [0.1, 0.6, 0.6]])   # query 2: target 2 tied with 1: counts as second
>>> gold_ranks(scores, [0, 1, 2]).tolist()
[1, 3, 2]
>>> retrieval_report(gold_ranks(scores, [0, 1, 2]), ks=(1, 2))
{'recall@1': 0.3333333333333333, 'recall@2': 0.6666666666666666, 'mrr': 0.611111111111111}
>>> round(spearman([1, 2, 3, 4], [10, 20, 30, 25]), 4)
0.8
"""

import numpy as np


def gold_ranks(scores, gold):
    """1-based rank of each row's gold column among all columns of `scores` `[queries,
    pool]`; a tie counts against the gold (a query that scores everything alike ranks last)."""
    scores = np.asarray(scores)
    rows = np.arange(len(scores))
    gold_scores = scores[rows, np.asarray(gold)][:, None]
    return (scores >= gold_scores).sum(axis=1)


def blockwise_ranks(score_rows, gold, batch_size=1024):
    """`(gold_ranks, gold scores)` of a `[queries, pool]` score matrix made `batch_size`
    rows at a time: `score_rows(start, stop)` gives rows `start:stop` (e.g. a block of
    query vectors times the pool's), so the whole matrix is never held.

    >>> import numpy as np
    >>> vectors = np.eye(3)
    >>> ranks, scores = blockwise_ranks(lambda i, j: vectors[i:j] @ vectors.T, [0, 2, 2], 2)
    >>> ranks.tolist(), scores.tolist()
    ([1, 3, 1], [1.0, 0.0, 1.0])
    """
    gold = np.asarray(gold)
    ranks, scores = [], []
    for start in range(0, len(gold), batch_size):
        rows, wanted = score_rows(start, start + batch_size), gold[start:start + batch_size]
        ranks.append(gold_ranks(rows, wanted))
        scores.append(rows[np.arange(len(wanted)), wanted])
    return np.concatenate(ranks), np.concatenate(scores)


def retrieval_report(ranks, ks=(1, 10)):
    """`{"recall@k": fraction of ranks <= k, ..., "mrr": mean reciprocal rank}`."""
    ranks = np.asarray(ranks)
    report = {f"recall@{k}": float(np.mean(ranks <= k)) for k in ks}
    report["mrr"] = float(np.mean(1.0 / ranks))
    return report


def _average_ranks(values):
    """Ranks from 1, ties given the mean of the ranks they span."""
    values = np.asarray(values, "float64")
    order = np.argsort(values, kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(1, len(values) + 1)
    _, inverse = np.unique(values, return_inverse=True)
    return np.bincount(inverse, ranks)[inverse] / np.bincount(inverse)[inverse]


def spearman(x, y):
    """Spearman's rank correlation of two sequences (Pearson's of their average ranks)."""
    return float(np.corrcoef(_average_ranks(x), _average_ranks(y))[0, 1])
