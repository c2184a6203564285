"""Evaluation figures: confusion matrices, learning curves, scatter plots, activation maps.

Every function builds a :class:`matplotlib.figure.Figure` directly (no ``pyplot`` state, so
it works headless and figures are freed when dropped) and returns it; the caller saves it,
e.g. ``fig.savefig(path, dpi=120)``.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from musicaffect.errors import DataError
from musicaffect.evaluation.metrics import spearman

__all__ = [
    "plot_activation_maps",
    "plot_class_histogram",
    "plot_comparison_bars",
    "plot_confusion",
    "plot_learning_curves",
    "plot_overfit_curve",
    "plot_scatter",
    "read_history",
]

_OURS_COLOR = "#1f6fb2"
_REF_COLOR = "#b0b7c3"


def _to_numpy(a) -> np.ndarray:
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    return np.asarray(a)


def plot_confusion(cm, classes: Sequence[str], *, normalize: bool = True,
                   title: str = "Confusion matrix") -> Figure:
    """Confusion matrix as a heat map with the value of each cell written in it.

    Parameters
    ----------
    cm : np.ndarray [shape=(C, C)] or list of lists
        Counts; rows = true class, columns = predicted class.
    classes : sequence of str [length C]
    normalize : bool
        Show each row divided by its sum (the recall of each class on the diagonal);
        empty rows stay 0.
    title : str

    Returns
    -------
    fig : Figure
        One image axis and its colour bar.
    """
    counts = np.asarray(cm, dtype=np.float64)
    n = len(classes)
    if counts.shape != (n, n):
        raise ValueError(f"confusion matrix has shape {counts.shape}, expected ({n}, {n})")
    if normalize:
        rows = counts.sum(axis=1, keepdims=True)
        values = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
    else:
        values = counts
    size = max(4.0, 0.55 * n + 2.0)
    fig = Figure(figsize=(size + 1.0, size), layout="constrained")
    ax = fig.add_subplot()
    im = ax.imshow(values, cmap="Blues", vmin=0.0, vmax=1.0 if normalize else None)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04,
                 label="fraction of true class" if normalize else "clips")
    ax.set_xticks(range(n), labels=list(classes), rotation=45, ha="right")
    ax.set_yticks(range(n), labels=list(classes))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    high = 1.0 if normalize else (values.max() if values.size else 0.0)
    for i in range(n):
        for j in range(n):
            v = values[i, j]
            text = f"{v:.2f}" if normalize else f"{int(v)}"
            ax.text(j, i, text, ha="center", va="center", fontsize=8,
                    color="white" if high > 0 and v > 0.55 * high else "black")
    return fig


def read_history(path: str | os.PathLike) -> list[dict]:
    """Read a per-epoch metrics CSV (``epoch, train_loss, val_loss, val_*...``).

    Parameters
    ----------
    path : str or PathLike

    Returns
    -------
    history : list[dict[str, float]]
        One dict per row; empty or non-numeric cells become NaN.
    """
    try:
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as err:
        raise DataError(f"cannot read the metrics file ({err.strerror}); check that the run "
                        "folder holds metrics.csv", path=path) from err
    history = []
    for row in rows:
        parsed = {}
        for key, value in row.items():
            if key is None:
                continue
            try:
                parsed[key] = float(value)
            except (TypeError, ValueError):
                parsed[key] = float("nan")
        history.append(parsed)
    return history


def plot_learning_curves(history: Sequence[Mapping[str, float]] | str | os.PathLike, *,
                         title: str = "Learning curves") -> Figure:
    """Training and validation loss per epoch, and the validation metrics if any.

    Parameters
    ----------
    history : list[dict] or path to a CSV file
        One record per epoch with ``epoch``, ``train_loss``, ``val_loss`` (and any
        ``train_loss*`` / ``val_loss*`` per-task loss, drawn with them), optionally any other
        ``val_*`` metric (e.g. ``val_accuracy``, ``val_macro_f1``, ``val_spearman_mean``).
        Missing values (NaN, absent keys) are skipped.
    title : str

    Returns
    -------
    fig : Figure
        One axis for the losses, plus one for the validation metrics when there are some.
    """
    if isinstance(history, (str, os.PathLike)):
        history = read_history(history)
    history = list(history)
    if not history:
        raise ValueError("the training history is empty: nothing to plot")
    keys: list[str] = []
    for rec in history:
        keys.extend(k for k in rec if k not in keys)

    def column(key: str) -> np.ndarray:
        out = []
        for rec in history:
            try:
                out.append(float(rec.get(key, math.nan)))
            except (TypeError, ValueError):
                out.append(math.nan)
        return np.asarray(out, dtype=np.float64)

    epochs = column("epoch") if "epoch" in keys else np.arange(1, len(history) + 1, dtype=float)
    losses = [k for k in keys if k.startswith(("train_loss", "val_loss"))]
    metrics = [k for k in keys if k.startswith("val_") and not k.startswith("val_loss")
               and np.isfinite(column(k)).any()]
    n_axes = 2 if metrics else 1
    fig = Figure(figsize=(5.0 * n_axes + 1.0, 4.0), layout="constrained")
    axes = [fig.add_subplot(1, n_axes, i + 1) for i in range(n_axes)]
    for key in losses:
        y = column(key)
        ok = np.isfinite(y) & np.isfinite(epochs)
        axes[0].plot(epochs[ok], y[ok], marker="o", markersize=3, label=key.replace("_", " "))
    axes[0].set_xlabel("epoch")
    axes[0].set_ylabel("loss")
    axes[0].set_title("loss")
    axes[0].grid(alpha=0.3)
    if losses:
        axes[0].legend()
    if metrics:
        for key in metrics:
            y = column(key)
            ok = np.isfinite(y) & np.isfinite(epochs)
            axes[1].plot(epochs[ok], y[ok], marker="o", markersize=3, label=key[4:])
        axes[1].set_xlabel("epoch")
        axes[1].set_title("validation metrics")
        axes[1].grid(alpha=0.3)
        axes[1].legend(fontsize=8)
    fig.suptitle(title)
    return fig


def plot_scatter(y_true: Mapping[str, np.ndarray], y_pred: Mapping[str, np.ndarray], *,
                 title: str = "Predicted vs true") -> Figure:
    """Predicted against true value, one panel per target, with the identity line.

    Parameters
    ----------
    y_true : dict[str, np.ndarray [shape=(N,)]]
    y_pred : dict[str, np.ndarray [shape=(N,)]]
        Predictions for every target of ``y_true``.
    title : str

    Returns
    -------
    fig : Figure
        One axis per target, titled with the target and its Spearman's rho.
    """
    targets = list(y_true)
    if not targets:
        raise ValueError("no target to plot")
    n = len(targets)
    fig = Figure(figsize=(4.0 * n, 4.2), layout="constrained")
    for i, target in enumerate(targets):
        ax = fig.add_subplot(1, n, i + 1)
        if target not in y_pred:
            raise ValueError(f"no prediction for target {target!r}")
        t = _to_numpy(y_true[target]).astype(np.float64).reshape(-1)
        p = _to_numpy(y_pred[target]).astype(np.float64).reshape(-1)
        if t.shape != p.shape:
            raise ValueError(f"target {target!r}: {t.size} true values, {p.size} predictions")
        rho = spearman(t, p)
        alpha = 0.7 if t.size <= 200 else max(0.15, 0.7 * math.sqrt(200 / t.size))
        ax.scatter(t, p, s=10, alpha=alpha, color=_OURS_COLOR, edgecolors="none")
        finite = np.concatenate([t[np.isfinite(t)], p[np.isfinite(p)]])
        lo = min(0.0, float(finite.min())) if finite.size else 0.0
        hi = max(1.0, float(finite.max())) if finite.size else 1.0
        ax.plot([lo, hi], [lo, hi], color="0.4", linestyle="--", linewidth=1)
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_aspect("equal")
        ax.set_xlabel(f"true {target}")
        ax.set_ylabel(f"predicted {target}")
        ax.set_title(f"{target}: Spearman rho = {rho:.3f}")
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    return fig


def plot_overfit_curve(losses: Sequence[float], *, threshold: float | None = None,
                       title: str = "Overfitting a few batches") -> Figure:
    """Training loss per step (or epoch) of an overfit-a-batch check.

    Parameters
    ----------
    losses : sequence of float
    threshold : float, optional
        The "near zero" level the check expects, drawn as a horizontal line.
    title : str

    Returns
    -------
    fig : Figure
        One axis, log scale when every loss is positive.
    """
    y = np.asarray([float(v) for v in losses], dtype=np.float64)
    if y.size == 0:
        raise ValueError("no loss value to plot")
    fig = Figure(figsize=(6.0, 4.0), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(np.arange(1, y.size + 1), y, color=_OURS_COLOR, linewidth=1.5)
    if threshold is not None:
        ax.axhline(threshold, color="#c0392b", linestyle="--", linewidth=1,
                   label=f"target {threshold:g}")
        ax.legend()
    finite = y[np.isfinite(y)]
    if finite.size and (finite > 0).all() and (threshold is None or threshold > 0):
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    return fig


def plot_class_histogram(counts: Mapping[str, int], *, title: str = "Clips per class") -> Figure:
    """Bar chart of the number of clips of each class.

    Parameters
    ----------
    counts : dict[str, int]
        Class name -> count, drawn in the dict's order.
    title : str

    Returns
    -------
    fig : Figure
        One axis.
    """
    names = [str(k) for k in counts]
    values = [int(v) for v in counts.values()]
    fig = Figure(figsize=(max(5.0, 0.45 * len(names) + 2.0), 4.0), layout="constrained")
    ax = fig.add_subplot()
    bars = ax.bar(range(len(names)), values, color=_OURS_COLOR)
    ax.bar_label(bars, fontsize=8)
    ax.set_xticks(range(len(names)), labels=names, rotation=45, ha="right")
    ax.set_ylabel("clips")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    return fig


def plot_activation_maps(maps: Sequence[np.ndarray], *, title: str = "CNN activation maps",
                         n_channels: int = 8, block_names: Sequence[str] | None = None) -> Figure:
    """The first channels of each convolutional block's output, as images.

    Parameters
    ----------
    maps : list of np.ndarray [shape=(C, H, W)], one per block
        Activations of one clip (a leading batch axis of size 1 is dropped; a 2-D map is one
        channel). Tensors are accepted.
    title : str
    n_channels : int > 0
        Channels shown per block (fewer when a block has fewer).
    block_names : sequence of str, optional
        Row labels (default ``block 1``, ``block 2``, ...).

    Returns
    -------
    fig : Figure
        ``len(maps) x min(n_channels, max C)`` axes (cells past a block's channel count are
        left blank). Each image is scaled to its own range; the vertical axis is the
        map's first spatial axis, drawn bottom-up.
    """
    if n_channels < 1:
        raise ValueError(f"n_channels must be >= 1, got {n_channels}")
    arrays = []
    for k, m in enumerate(maps):
        a = _to_numpy(m).astype(np.float32)
        if a.ndim == 4 and a.shape[0] == 1:
            a = a[0]
        if a.ndim == 2:
            a = a[None]
        if a.ndim != 3:
            raise ValueError(f"activation map {k} has shape {a.shape}, expected (C, H, W)")
        arrays.append(a)
    if not arrays:
        raise ValueError("no activation map to plot")
    n_rows = len(arrays)
    n_cols = min(n_channels, max(a.shape[0] for a in arrays))
    names = list(block_names) if block_names is not None else [
        f"block {i + 1}" for i in range(n_rows)]
    fig = Figure(figsize=(1.9 * n_cols + 0.6, 1.8 * n_rows + 0.6), layout="constrained")
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    for r, a in enumerate(arrays):
        for c in range(n_cols):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c >= a.shape[0]:
                ax.set_axis_off()
                continue
            ax.imshow(a[c], origin="lower", aspect="auto", cmap="magma", interpolation="nearest")
            if r == 0:
                ax.set_title(f"channel {c}", fontsize=8)
            if c == 0:
                ax.set_ylabel(f"{names[r]}\n{a.shape[1]}x{a.shape[2]}", fontsize=8)
    fig.suptitle(title)
    return fig


def plot_comparison_bars(table: Sequence[Mapping], metric: str, *,
                         reference: Mapping[str, float] | Sequence[Mapping] | None = None,
                         label_key: str = "experiment", title: str | None = None) -> Figure:
    """Our value of ``metric`` per experiment, next to the published (reference) value.

    Parameters
    ----------
    table : list of dict
        Our results, one row per experiment: ``{label_key: "LSTM beat mel", metric: 0.41}``.
    metric : str
        The column to compare (e.g. ``"accuracy"``, ``"macro_f1"``, ``"spearman_mean"``).
    reference : dict[str, float] or list of dict, optional
        Public numbers: label -> value, or rows with ``label_key`` and ``metric``. Labels
        without a reference get only our bar; reference labels without a row of ours are
        shown alone.
    label_key : str
    title : str, optional

    Returns
    -------
    fig : Figure
        One axis with grouped horizontal bars and their values.
    """
    ref: dict[str, float] = {}
    if isinstance(reference, Mapping):
        ref = {str(k): float(v) for k, v in reference.items() if v is not None}
    elif reference is not None:
        for row in reference:
            value = row.get(metric)
            if isinstance(value, (int, float)) and math.isfinite(value):
                ref[str(row[label_key])] = float(value)
    ours: dict[str, float] = {}
    for row in table:
        if label_key not in row:
            raise ValueError(f"row {dict(row)} has no {label_key!r} key; pass label_key=")
        value = row.get(metric)
        ours[str(row[label_key])] = (float(value) if isinstance(value, (int, float))
                                     else math.nan)
    labels = list(ours) + [k for k in ref if k not in ours]
    if not labels:
        raise ValueError("nothing to compare: the table and the reference are empty")
    y = np.arange(len(labels), dtype=np.float64)
    height = 0.38
    fig = Figure(figsize=(7.5, 0.55 * len(labels) + 1.6), layout="constrained")
    ax = fig.add_subplot()
    ours_v = np.asarray([ours.get(k, math.nan) for k in labels])
    ref_v = np.asarray([ref.get(k, math.nan) for k in labels])
    b1 = ax.barh(y - height / 2, np.nan_to_num(ours_v), height, color=_OURS_COLOR, label="ours")
    b2 = ax.barh(y + height / 2, np.nan_to_num(ref_v), height, color=_REF_COLOR,
                 label="reference")
    ax.bar_label(b1, labels=["" if math.isnan(v) else f"{v:.3f}" for v in ours_v],
                 fontsize=8, padding=2)
    ax.bar_label(b2, labels=["" if math.isnan(v) else f"{v:.2f}" for v in ref_v],
                 fontsize=8, padding=2)
    ax.set_yticks(y, labels=labels)
    ax.invert_yaxis()
    ax.set_xlabel(metric.replace("_", " "))
    finite = np.concatenate([ours_v[np.isfinite(ours_v)], ref_v[np.isfinite(ref_v)]])
    ax.set_xlim(min(0.0, float(finite.min())) if finite.size else 0.0,
                max(1.0, float(finite.max()) * 1.15) if finite.size else 1.0)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(loc="lower right")
    ax.set_title(title or f"{metric.replace('_', ' ')}: ours vs reference")
    return fig
