"""Plots of spectrograms, chromagrams and class histograms (each returns a Figure).

Full-rate arrays are plotted against time in seconds (hop 512 at 22050 Hz, the dataset's
librosa defaults); beat-synchronous arrays against the beat index.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from musicaffect.features.params import FeatureParams

SR = FeatureParams.sr
HOP_LENGTH = FeatureParams.hop_length


def _axes(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.figure, ax
    fig = Figure(figsize=figsize, layout="tight")
    return fig, fig.add_subplot()


PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def hz_to_mel(f: np.ndarray) -> np.ndarray:
    """Slaney mel scale (librosa's default): linear below 1 kHz, logarithmic above."""
    f = np.asarray(f, dtype=float)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
    return np.where(f >= min_log_hz,
                    min_log_mel + np.log(np.maximum(f, 1e-12) / min_log_hz) / logstep, f / f_sp)


def mel_band_of(f: np.ndarray, *, n_mels: int = 128, sr: int = SR) -> np.ndarray:
    """Fractional mel band index of frequencies ``f`` (Hz) for ``n_mels`` bands on [0, sr/2]."""
    top = hz_to_mel(sr / 2)
    return hz_to_mel(f) / top * n_mels - 0.5


def plot_spectrogram(S: np.ndarray, *, kind: str = "mel", beat: bool = False,
                     sr: int = SR, hop_length: int = HOP_LENGTH, title: str | None = None,
                     ax: Axes | None = None) -> Figure:
    """Plot a mel spectrogram (dB) or a chromagram.

    Parameters
    ----------
    S : np.ndarray [shape=(n_mels, T) for mel, (12, T) for chroma]
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
    if kind not in ("mel", "chroma"):
        raise ValueError(f"kind must be 'mel' or 'chroma', got {kind!r}")
    if S.ndim != 2:
        raise ValueError(f"expected a 2-D (features, time) array, got shape {S.shape}")
    fig, ax = _axes(ax, (8, 3.2))
    n_rows, n_frames = S.shape
    if beat:
        extent = (-0.5, n_frames - 0.5, -0.5, n_rows - 0.5)
    else:
        extent = (0.0, n_frames * hop_length / sr, -0.5, n_rows - 0.5)
    img = ax.imshow(S, origin="lower", aspect="auto", interpolation="nearest", extent=extent,
                    cmap="magma" if kind == "mel" else "viridis",
                    vmin=-80 if kind == "mel" else 0, vmax=0 if kind == "mel" else 1)
    ax.set_xlabel("beat index (beat-synchronous frames)" if beat else "time (s)")
    if kind == "mel":
        freqs = np.array([0, 512, 1024, 2048, 4096, 8192])
        freqs = freqs[freqs < sr / 2]
        ax.set_yticks(np.maximum(mel_band_of(freqs, n_mels=n_rows, sr=sr), -0.5),
                      labels=[str(int(f)) for f in freqs])
        ax.set_ylabel("mel frequency (Hz)")
        fig.colorbar(img, ax=ax, format="%+2.0f dB", label="level (dB re max)")
    else:
        ax.set_yticks(np.arange(n_rows), labels=list(PITCH_CLASSES[:n_rows]))
        ax.set_ylabel("pitch class")
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
    height = 3.0 * len(arrays)
    fig = Figure(figsize=(9, height))  # fixed margins: a layout engine costs seconds here
    fig.subplots_adjust(left=0.1, right=0.98, top=1 - 0.35 / height, bottom=0.55 / height,
                        hspace=0.45)
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
