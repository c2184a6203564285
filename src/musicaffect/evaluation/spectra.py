"""Plots of spectrograms, chromagrams and class histograms (each returns a Figure).

Full-rate arrays are plotted against time in seconds (hop 512 at 22050 Hz, the dataset's
librosa defaults); beat-synchronous arrays against the beat index.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

SR = 22050
HOP_LENGTH = 512


def _axes(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.figure, ax
    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot()


def plot_spectrogram(S: np.ndarray, *, kind: str = "mel", beat: bool = False,
                     sr: int = SR, hop_length: int = HOP_LENGTH, title: str | None = None,
                     ax: Axes | None = None) -> Figure:
    """Plot a mel spectrogram (dB) or a chromagram.

    Parameters
    ----------
    S : np.ndarray [shape=(128, T) for mel, (12, T) for chroma]
        Feature-major, as stored in the dataset (time on axis 1).
    kind : {"mel", "chroma"}
    beat : bool
        The array is beat-synchronous: the x axis is the beat index, not time.
    sr, hop_length : int
        Sampling rate and hop of the full-rate frames (x axis in seconds).
    title : str, optional
    ax : matplotlib Axes, optional
        Draw into this axes (its figure is returned) instead of a new figure.

    Returns
    -------
    fig : matplotlib.figure.Figure
    """
    import librosa.display

    if kind not in ("mel", "chroma"):
        raise ValueError(f"kind must be 'mel' or 'chroma', got {kind!r}")
    if S.ndim != 2:
        raise ValueError(f"expected a 2-D (features, time) array, got shape {S.shape}")
    fig, ax = _axes(ax, (8, 3.2))
    img = librosa.display.specshow(
        S, ax=ax, sr=sr, hop_length=hop_length, x_axis=None if beat else "time",
        y_axis="mel" if kind == "mel" else "chroma",
        cmap="magma" if kind == "mel" else "viridis",
        vmin=-80 if kind == "mel" else 0, vmax=0 if kind == "mel" else 1)
    if beat:
        ticks = np.linspace(0, S.shape[1] - 1, num=min(S.shape[1], 8)).round().astype(int)
        ax.set_xticks(ticks + 0.5, labels=[str(t) for t in ticks])
        ax.set_xlabel("beat index (beat-synchronous frames)")
    else:
        ax.set_xlabel("time (s)")
    ax.set_ylabel("mel frequency (Hz)" if kind == "mel" else "pitch class")
    if kind == "mel":
        fig.colorbar(img, ax=ax, format="%+2.0f dB", label="level (dB re max)")
    else:
        fig.colorbar(img, ax=ax, label="chroma energy (normalised)")
    if title:
        ax.set_title(title)
    return fig


def plot_spectrogram_grid(arrays: Sequence[np.ndarray], titles: Sequence[str], *,
                          kind: str = "mel", beat: bool = False) -> Figure:
    """Several spectrograms (or chromagrams) stacked in one figure, one row each.

    Parameters
    ----------
    arrays : sequence of np.ndarray [shape=(F, T)]
    titles : sequence of str
    kind, beat : see :func:`plot_spectrogram`

    Returns
    -------
    fig : matplotlib.figure.Figure
    """
    fig = Figure(figsize=(9, 3.0 * len(arrays)), layout="constrained")
    axes = fig.subplots(len(arrays), 1, squeeze=False)[:, 0]
    for S, title, ax in zip(arrays, titles, axes):
        plot_spectrogram(S, kind=kind, beat=beat, title=title, ax=ax)
    return fig


def plot_class_histogram(counts: Mapping[str, int], *, title: str = "clips per class",
                         ax: Axes | None = None, dropped: Sequence[str] = ()) -> Figure:
    """Bar chart of the number of clips per class.

    Parameters
    ----------
    counts : mapping of str to int
        Class name -> number of clips, plotted in the mapping's order.
    title : str
    ax : matplotlib Axes, optional
    dropped : sequence of str
        Classes drawn in grey (e.g. the genres the lab's mapping drops).

    Returns
    -------
    fig : matplotlib.figure.Figure
    """
    fig, ax = _axes(ax, (max(5.0, 0.45 * len(counts) + 2), 3.6))
    names = list(counts)
    values = [counts[n] for n in names]
    colours = ["0.65" if n in dropped else "C0" for n in names]
    bars = ax.bar(range(len(names)), values, color=colours)
    ax.bar_label(bars, fontsize=7)
    ax.set_xticks(range(len(names)), labels=names, rotation=60, ha="right")
    ax.set_ylabel("clips")
    ax.set_title(title)
    return fig
