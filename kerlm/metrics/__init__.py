"""Evaluation metrics computed outside the graph on whole evaluation sets."""

from kerlm.metrics.classification import classification_report
from kerlm.metrics.generation import bleu_chrf, generation_report, rouge
from kerlm.metrics.retrieval import (blockwise_ranks, gold_ranks, retrieval_report,
                                     spearman)
from kerlm.metrics.squad import squad_report

__all__ = ["classification_report", "bleu_chrf", "rouge", "generation_report",
           "squad_report", "blockwise_ranks", "gold_ranks", "retrieval_report", "spearman"]
