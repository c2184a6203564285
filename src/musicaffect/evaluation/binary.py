"""Metrics of binary targets (labels in {0, 1}, e.g. EMOPIA's high/low valence and arousal).

A binary target is trained like any regression target; its prediction is a score on the
label's [0, 1] scale. Beside Spearman's rho (:func:`musicaffect.evaluation.metrics.spearman`),
such a target is judged as a detector: ROC-AUC of the scores, and balanced accuracy of the
decisions ``score >= threshold`` (0.5 by default).
"""

from __future__ import annotations

import numpy as np
from sklearn import metrics as skm

__all__ = ["binary_metrics", "binary_summary"]


def binary_metrics(y_true, y_score, *, threshold: float = 0.5) -> dict:
    """ROC-AUC, balanced accuracy and accuracy at ``threshold`` of one binary target.

    Parameters
    ----------
    y_true : np.ndarray [shape=(N,)]
        Labels 0 or 1 (non-finite pairs are dropped).
    y_score : np.ndarray [shape=(N,)]
        Predicted scores (higher = more likely 1).
    threshold : float
        Decision threshold of the balanced accuracy.

    Returns
    -------
    metrics : dict
        ``roc_auc`` (None when only one class is present), ``balanced_accuracy``,
        ``accuracy``, ``threshold``, ``n``, ``positives`` (plain Python types).

    Raises
    ------
    ValueError
        Labels other than 0 and 1, or shapes that differ.
    """
    true = np.asarray(y_true, dtype=np.float64).reshape(-1)
    score = np.asarray(y_score, dtype=np.float64).reshape(-1)
    if true.shape != score.shape:
        raise ValueError(f"y_true has {true.size} labels but y_score {score.size} scores")
    keep = np.isfinite(true) & np.isfinite(score)
    true, score = true[keep], score[keep]
    if not np.isin(true, (0.0, 1.0)).all():
        raise ValueError("binary metrics need labels 0 or 1")
    labels = true.astype(np.int64)
    pred = (score >= threshold).astype(np.int64)
    both = len(np.unique(labels)) == 2
    return {
        "roc_auc": float(skm.roc_auc_score(labels, score)) if both else None,
        "balanced_accuracy": (float(skm.balanced_accuracy_score(labels, pred))
                              if labels.size else None),
        "accuracy": float((pred == labels).mean()) if labels.size else None,
        "threshold": float(threshold),
        "n": int(labels.size),
        "positives": int(labels.sum()),
    }


def binary_summary(y_true: dict, y_score: dict, kinds: dict, *, threshold: float = 0.5
                   ) -> dict[str, dict]:
    """:func:`binary_metrics` of every target whose kind is ``"binary"``."""
    return {t: binary_metrics(y_true[t], y_score[t], threshold=threshold)
            for t in y_true if kinds.get(t) == "binary"}
