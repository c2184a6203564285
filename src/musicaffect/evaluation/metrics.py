"""Evaluation metrics for genre classification and affect regression.

Every function returns plain Python types (``float``, ``int``, ``str``, lists and dicts),
so that results can be written with :func:`json.dump` as they are.

Regression metrics are computed once over the whole held-out set: Spearman's rho is a rank
statistic, and the mean of per-batch values is not the value over the set (it depends on the
batch size and order). Callers therefore gather all predictions before calling
:func:`regression_metrics`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import stats
from sklearn import metrics as skm

__all__ = [
    "ConstantInputWarning",
    "classification_metrics",
    "flatten_metrics",
    "pearson",
    "regression_metrics",
    "spearman",
]


class ConstantInputWarning(RuntimeWarning):
    """A correlation was asked of an input without variation; 0.0 was returned instead of NaN."""


def _as_vector(a, *, name: str) -> np.ndarray:
    """Convert ``a`` (array-like or tensor) to a 1-D float64 array; (N, 1) is accepted."""
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise ValueError(f"{name} must have shape (N,) or (N, 1), got {arr.shape}")
    return arr


def _paired(a, b) -> tuple[np.ndarray, np.ndarray]:
    x = _as_vector(a, name="first input")
    y = _as_vector(b, name="second input")
    if x.shape != y.shape:
        raise ValueError(f"inputs must have the same length, got {x.shape[0]} and {y.shape[0]}")
    keep = np.isfinite(x) & np.isfinite(y)
    if not keep.all():
        warnings.warn(f"ignoring {int((~keep).sum())} non-finite pair(s) of {x.shape[0]}",
                      RuntimeWarning, stacklevel=3)
    return x[keep], y[keep]


def _degenerate(x: np.ndarray, y: np.ndarray, what: str) -> bool:
    """True (after a warning) when a correlation of ``x`` and ``y`` is undefined."""
    if x.shape[0] < 2:
        warnings.warn(f"{what} of fewer than 2 values is undefined; returning nan",
                      ConstantInputWarning, stacklevel=3)
        return True
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        warnings.warn(f"{what} of a constant input is undefined; returning nan",
                      ConstantInputWarning, stacklevel=3)
        return True
    return False


def _defined_mean(values) -> float:
    """The mean of the defined (finite) values; nan when none is defined."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else math.nan


def spearman(a, b) -> float:
    """Spearman's rank correlation of two vectors, computed once over all values.

    Parameters
    ----------
    a, b : np.ndarray [shape=(N,) or (N, 1)]
        Paired values (array-likes or tensors). Non-finite pairs are dropped with a warning.

    Returns
    -------
    rho : float
        In [-1, 1]; equal to ``scipy.stats.spearmanr(a, b)[0]`` (ties get average ranks).
        When either input is constant or has fewer than 2 values, the correlation is
        undefined: nan is returned (logged as n/a; never 0.0, which would read as "no
        correlation") and a :class:`ConstantInputWarning` is issued.
    """
    x, y = _paired(a, b)
    if _degenerate(x, y, "Spearman's rho"):
        return math.nan
    rho = stats.spearmanr(x, y)[0]
    return float(rho) if math.isfinite(rho) else math.nan


def pearson(a, b) -> float:
    """Pearson's correlation of two vectors; like :func:`spearman`, nan when undefined.

    Parameters
    ----------
    a, b : np.ndarray [shape=(N,) or (N, 1)]

    Returns
    -------
    r : float
    """
    x, y = _paired(a, b)
    if _degenerate(x, y, "Pearson's r"):
        return math.nan
    r = stats.pearsonr(x, y)[0]
    return float(r) if math.isfinite(r) else math.nan


def classification_metrics(y_true, y_pred, *, classes: Sequence[str]) -> dict:
    """Accuracy, per-class and averaged precision/recall/F1, confusion matrix, text report.

    Parameters
    ----------
    y_true : np.ndarray [shape=(N,)], int
        True class indices in ``0 .. len(classes) - 1``.
    y_pred : np.ndarray [shape=(N,)] int, or [shape=(N, C)] float
        Predicted class indices, or per-class scores/probabilities (the arg-max is taken).
    classes : sequence of str
        Class names in index order (e.g. :data:`musicaffect.data.labels.CLASSES`).
        Every class appears in the result, also when absent from ``y_true`` and ``y_pred``.

    Returns
    -------
    metrics : dict
        ``accuracy``, ``n``, ``classes``; ``per_class[name] = {precision, recall, f1,
        support}``; ``macro``, ``micro``, ``weighted`` (each ``{precision, recall, f1,
        support}``); shortcuts ``macro_f1`` and ``weighted_f1``; ``confusion_matrix`` (list
        of C lists of C ints, rows = true class, columns = predicted class); ``report``
        (the text classification report). Undefined ratios count as 0 (``zero_division=0``).
        The macro, micro and weighted averages (and the report) are taken over the classes
        present in ``y_true`` or ``y_pred`` (scikit-learn's default), listed in
        ``averaged_classes``; ``absent_classes`` lists the others, which appear with zero
        scores in ``per_class`` but do not pull the macro average down. The report names both.
    """
    classes = [str(c) for c in classes]
    n_classes = len(classes)
    if n_classes == 0:
        raise ValueError("classes must not be empty")
    true = np.asarray(y_true.detach().cpu() if hasattr(y_true, "detach") else y_true)
    pred = np.asarray(y_pred.detach().cpu() if hasattr(y_pred, "detach") else y_pred)
    if pred.ndim == 2:
        if pred.shape[1] != n_classes:
            raise ValueError(f"y_pred scores have {pred.shape[1]} columns but there are "
                             f"{n_classes} classes")
        pred = pred.argmax(axis=1)
    true = true.reshape(-1).astype(np.int64)
    pred = pred.reshape(-1).astype(np.int64)
    if true.shape != pred.shape:
        raise ValueError(f"y_true has {true.shape[0]} labels but y_pred has {pred.shape[0]}")
    if true.size == 0:
        raise ValueError("cannot compute classification metrics of an empty set")
    for name, arr in (("y_true", true), ("y_pred", pred)):
        bad = (arr < 0) | (arr >= n_classes)
        if bad.any():
            raise ValueError(f"{name} holds class index {int(arr[bad][0])}, outside "
                             f"0..{n_classes - 1} for the {n_classes} classes given")

    labels = list(range(n_classes))
    prec, rec, f1, support = skm.precision_recall_fscore_support(
        true, pred, labels=labels, zero_division=0)
    per_class = {
        name: {"precision": float(prec[i]), "recall": float(rec[i]), "f1": float(f1[i]),
               "support": int(support[i])}
        for i, name in enumerate(classes)
    }
    # averages over the classes present in the labels or the predictions: a class absent
    # from both says nothing about the model and would count as an F1 of 0
    present = sorted(set(np.unique(true).tolist()) | set(np.unique(pred).tolist()))
    averages = {}
    for average in ("macro", "micro", "weighted"):
        p, r, f, _ = skm.precision_recall_fscore_support(
            true, pred, labels=present, average=average, zero_division=0)
        averages[average] = {"precision": float(p), "recall": float(r), "f1": float(f),
                             "support": int(true.size)}
    cm = skm.confusion_matrix(true, pred, labels=labels)
    averaged = [classes[i] for i in present]
    absent = [c for i, c in enumerate(classes) if i not in present]
    report = skm.classification_report(true, pred, labels=present,
                                       target_names=averaged, zero_division=0, digits=3)
    report += (f"\naverages over the {len(averaged)} of {n_classes} classes present in the "
               "test labels or predictions"
               + (f"; absent from both (not averaged): {', '.join(absent)}" if absent else "")
               + "\n")
    return {
        "accuracy": float(skm.accuracy_score(true, pred)),
        "n": int(true.size),
        "classes": classes,
        "per_class": per_class,
        **averages,
        "macro_f1": averages["macro"]["f1"],
        "weighted_f1": averages["weighted"]["f1"],
        "confusion_matrix": cm.astype(int).tolist(),
        "averaged_classes": averaged,
        "absent_classes": absent,
        "report": report,
    }


def regression_metrics(y_true: Mapping[str, np.ndarray],
                       y_pred: Mapping[str, np.ndarray]) -> dict:
    """Spearman's rho, Pearson's r, MSE and MAE per target over the whole set, and their means.

    Parameters
    ----------
    y_true : dict[str, np.ndarray [shape=(N,)]]
        True values per target (e.g. ``{"valence": ..., "energy": ...}``).
    y_pred : dict[str, np.ndarray [shape=(N,) or (N, 1)]]
        Predictions for (at least) every target of ``y_true``, in the same clip order and
        already on the target's scale (see :func:`musicaffect.evaluation.inference.predict_transform`).

    Returns
    -------
    metrics : dict
        ``per_target[t] = {spearman, pearson, mse, mae, n}`` for each target of ``y_true``
        (in its order), ``targets`` (that order), and ``spearman_mean``, ``pearson_mean``,
        ``mse_mean``, ``mae_mean`` over the targets. Spearman is computed once over all N
        clips with :func:`spearman` (never averaged over batches).
    """
    if not y_true:
        raise ValueError("y_true holds no target")
    missing = [t for t in y_true if t not in y_pred]
    if missing:
        raise ValueError(f"y_pred has no prediction for target(s) {', '.join(missing)} "
                         f"(it has {', '.join(y_pred) or 'none'})")
    per_target = {}
    for target in y_true:
        true = _as_vector(y_true[target], name=f"y_true[{target!r}]")
        pred = _as_vector(y_pred[target], name=f"y_pred[{target!r}]")
        if true.shape != pred.shape:
            raise ValueError(f"target {target!r}: {true.shape[0]} true values but "
                             f"{pred.shape[0]} predictions")
        keep = np.isfinite(true) & np.isfinite(pred)
        err = pred[keep] - true[keep]
        per_target[target] = {
            "spearman": spearman(true, pred),
            "pearson": pearson(true, pred),
            "mse": float(np.mean(err ** 2)) if err.size else float("nan"),
            "mae": float(np.mean(np.abs(err))) if err.size else float("nan"),
            "n": int(keep.sum()),
        }
    out: dict = {"targets": list(y_true), "per_target": per_target}
    for key in ("spearman", "pearson", "mse", "mae"):
        out[f"{key}_mean"] = _defined_mean([m[key] for m in per_target.values()])
    return out


def flatten_metrics(metrics: Mapping, *, prefix: str = "", per_item: bool = True) -> dict[str, float]:
    """Scalar view of a metrics dict for CSV/TensorBoard logging.

    Nested dicts are joined with ``_``; the ``per_target`` and ``per_class`` levels are
    dropped from the names (``per_target.valence.spearman`` -> ``valence_spearman``).
    Strings, lists, booleans and ``None`` are skipped.

    Parameters
    ----------
    metrics : dict
        Output of :func:`classification_metrics` or :func:`regression_metrics`.
    prefix : str
        Prepended to every key (e.g. ``"val_"``).
    per_item : bool
        Keep the per-target / per-class values (False: only the overall ones).

    Returns
    -------
    flat : dict[str, float]
        E.g. ``{"val_accuracy": 0.4, "val_macro_f1": 0.3, ...}`` or
        ``{"val_spearman_mean": 0.5, "val_valence_spearman": 0.4, ...}``.
    """
    flat: dict[str, float] = {}
    for key, value in metrics.items():
        if isinstance(value, Mapping):
            if key in ("per_target", "per_class"):
                if per_item:
                    flat.update(flatten_metrics(value, prefix=prefix))
            else:
                flat.update(flatten_metrics(value, prefix=f"{prefix}{key}_"))
        elif isinstance(value, (bool, np.bool_)):
            continue
        elif isinstance(value, (int, float, np.integer, np.floating)):
            flat[f"{prefix}{key}"] = float(value)
    return flat
