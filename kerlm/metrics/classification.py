"""Classification report: accuracy, macro-F1, per-class precision/recall/F1, confusion matrix."""

import numpy as np


def classification_report(y_true, y_pred, labels):
    """Metrics of integer predictions against integer targets, as a JSON-ready dict.

    `confusion_matrix[i][j]` counts examples of true class i predicted as class j.

    Example:
    >>> r = classification_report([0, 0, 1, 1], [0, 1, 1, 1], ["neg", "pos"])
    >>> r["accuracy"], round(r["macro_f1"], 4), r["confusion_matrix"]
    (0.75, 0.7333, [[1, 1], [0, 2]])
    >>> r["per_class"]["neg"]
    {'precision': 1.0, 'recall': 0.5, 'f1': 0.6666666666666666, 'support': 2}
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    n = len(labels)
    confusion = np.zeros((n, n), dtype=np.int64)
    np.add.at(confusion, (y_true, y_pred), 1)
    per_class = {}
    for i, label in enumerate(labels):
        tp = confusion[i, i]
        predicted, actual = confusion[:, i].sum(), confusion[i, :].sum()
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[label] = {"precision": float(precision), "recall": float(recall),
                            "f1": float(f1), "support": int(actual)}
    return {
        "accuracy": float(np.trace(confusion) / max(len(y_true), 1)),
        "macro_f1": float(np.mean([c["f1"] for c in per_class.values()])),
        "per_class": per_class,
        "labels": list(labels),
        "confusion_matrix": confusion.tolist(),
        "num_examples": int(len(y_true)),
    }
