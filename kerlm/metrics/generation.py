"""Generation metrics: corpus BLEU and chrF (sacrebleu) and ROUGE F-measures (rouge-score).

All functions take detokenized strings, one reference per hypothesis, and return JSON-ready
dicts of floats on a 0-100 scale.
"""

import numpy as np

_METRICS = ("bleu", "rouge")


def _check_pairs(hypotheses, references):
    hypotheses, references = list(hypotheses), list(references)
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
    if not hypotheses:
        raise ValueError("no hypotheses to score")
    return hypotheses, references


def bleu_chrf(hypotheses, references):
    """Corpus BLEU (13a tokenization) and chrF of `hypotheses` against one reference each.

    The signatures identify the sacrebleu settings, to be reported beside the scores.

    >>> r = bleu_chrf(["the cat sat on the mat"], ["the cat sat on the mat"])
    >>> round(r["bleu"], 6), round(r["chrf"], 6)
    (100.0, 100.0)
    >>> r["bleu_signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a")
    True
    """
    from sacrebleu.metrics import BLEU, CHRF

    hypotheses, references = _check_pairs(hypotheses, references)
    bleu, chrf = BLEU(), CHRF()
    return {
        "bleu": float(bleu.corpus_score(hypotheses, [references]).score),
        "chrf": float(chrf.corpus_score(hypotheses, [references]).score),
        "bleu_signature": str(bleu.get_signature()),
        "chrf_signature": str(chrf.get_signature()),
    }


def rouge(hypotheses, references):
    """Mean ROUGE-1, ROUGE-2 and ROUGE-L F-measures (x 100), Porter stemming.

    rouge-score's tokenizer lower-cases and keeps only [a-z0-9] runs: it suits English only.

    >>> r = rouge(["the cat sat"], ["the cat sat on the mat"])  # unigrams: P = 1, R = 0.5
    >>> {k: round(v, 2) for k, v in r.items()}
    {'rouge1': 66.67, 'rouge2': 57.14, 'rougeL': 66.67}
    """
    from rouge_score.rouge_scorer import RougeScorer

    hypotheses, references = _check_pairs(hypotheses, references)
    keys = ("rouge1", "rouge2", "rougeL")
    scorer = RougeScorer(list(keys), use_stemmer=True)
    scores = [scorer.score(reference, hypothesis)  # score(target, prediction)
              for hypothesis, reference in zip(hypotheses, references)]
    return {k: float(100 * np.mean([s[k].fmeasure for s in scores])) for k in keys}


def generation_report(hypotheses, references, metrics=_METRICS):
    """The chosen metrics ("bleu": BLEU and chrF, "rouge": ROUGE) plus length statistics.

    >>> r = generation_report(["a b c d"], ["a b c d e f"], metrics=("bleu",))
    >>> sorted(r)  # doctest: +NORMALIZE_WHITESPACE
    ['bleu', 'bleu_signature', 'chrf', 'chrf_signature', 'mean_output_words',
     'mean_reference_words', 'num_examples']
    >>> r["num_examples"], r["mean_output_words"], r["mean_reference_words"]
    (1, 4.0, 6.0)
    """
    hypotheses, references = _check_pairs(hypotheses, references)
    unknown = set(metrics) - set(_METRICS)
    if unknown:
        raise ValueError(f"unknown metrics {sorted(unknown)}; choose from {_METRICS}")
    report = {}
    if "bleu" in metrics:
        report.update(bleu_chrf(hypotheses, references))
    if "rouge" in metrics:
        report.update(rouge(hypotheses, references))
    report.update(
        num_examples=len(hypotheses),
        mean_output_words=float(np.mean([len(h.split()) for h in hypotheses])),
        mean_reference_words=float(np.mean([len(r.split()) for r in references])))
    return report
