"""Evaluation metrics computed outside the graph on whole evaluation sets."""

from kerlm.metrics.classification import classification_report

__all__ = ["classification_report"]
