"""Excerpt (chunk) windows: where to cut a clip, how to cut it, how to pool the window outputs.

Training on short excerpts and averaging over the song is the small-data recipe of music
tagging (Won et al. 2020, "short-chunk CNN"). Everything here is a small pure function so
training, evaluation, ``submit`` and ``predict`` cut and pool the same way:

- training: each epoch takes **one random window** of ``frames`` frames from every clip; its
  start is a pure function of ``(seed, epoch, clip index)`` (:func:`random_window_start`), so
  a resumed run sees the same windows as an uninterrupted one;
- inference: **evenly spaced, overlapping windows** over the whole clip
  (:func:`window_starts`, hop default half a window; the last window ends at the clip's end);
  the clip's prediction is the mean of the window predictions (:func:`mean_by_clip`):
  class probabilities (softmax, then mean) and regression values (after the output
  transform, then mean);
- a clip not longer than a window is used whole (one window, its own length).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def check_window(frames: int, hop: int | None = None) -> tuple[int, int]:
    """Validate a window length and hop (frames); returns ``(frames, hop)``.

    ``hop`` defaults to half a window (at least 1); it must be in ``[1, frames]`` so the
    windows cover the clip without gaps.
    """
    if isinstance(frames, bool) or not isinstance(frames, (int, np.integer)) or frames < 1:
        raise ValueError(f"a window must be a positive number of frames, got {frames!r}")
    frames = int(frames)
    if hop is None:
        hop = max(1, frames // 2)
    if isinstance(hop, bool) or not isinstance(hop, (int, np.integer)) or not 1 <= hop <= frames:
        raise ValueError(f"the window hop must be between 1 and the window length ({frames}) "
                         f"frames, got {hop!r}")
    return frames, int(hop)


def window_starts(length: int, frames: int, hop: int | None = None) -> list[int]:
    """Starts of the evenly spaced windows that cover a clip (inference).

    Parameters
    ----------
    length : int
        Frames of the clip (>= 1).
    frames : int
        Window length.
    hop : int, optional
        Step between window starts (default ``frames // 2``, half-overlapping).

    Returns
    -------
    list of int
        ``[0]`` when ``length <= frames`` (the clip is used whole); otherwise
        ``0, hop, 2 * hop, ...`` and, when the last of these does not reach the end, one more
        window ending exactly at ``length``. Every window ``[s, s + frames)`` lies inside the
        clip and together they cover every frame.
    """
    frames, hop = check_window(frames, hop)
    length = int(length)
    if length < 1:
        raise ValueError(f"a clip needs at least one frame, got length {length}")
    if length <= frames:
        return [0]
    last = length - frames
    starts = list(range(0, last + 1, hop))
    if starts[-1] != last:
        starts.append(last)
    return starts


def random_window_start(length: int, frames: int, *, seed: int, epoch: int, index: int) -> int:
    """Start of the training window of one clip in one epoch (a pure function).

    Uniform over ``[0, length - frames]``; 0 when the clip is not longer than a window.
    Depends only on ``(seed, epoch, index)`` and the lengths, so a resumed run (or a worker
    process) draws the same window.
    """
    frames, _ = check_window(frames)
    span = int(length) - frames
    if span <= 0:
        return 0
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, int(epoch), int(index)])
    return int(rng.integers(0, span + 1))


def cut(x, start: int, frames: int):
    """Frames ``[start, start + frames)`` of a time-major clip (T, F) (all of a short clip)."""
    return x[start:start + frames]


def plan_windows(lengths: Sequence[int], frames: int, hop: int | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The inference windows of a batch of clips.

    Parameters
    ----------
    lengths : sequence of int
        Frames of each clip.
    frames, hop : int
        Window length and hop (see :func:`window_starts`).

    Returns
    -------
    owner : np.ndarray [shape=(W,), int64]
        Clip index (position in ``lengths``) of each window, in clip order.
    starts : np.ndarray [shape=(W,), int64]
    window_lengths : np.ndarray [shape=(W,), int64]
        ``min(frames, length)`` of the window's clip.
    """
    owner, starts, wl = [], [], []
    for i, n in enumerate(lengths):
        for s in window_starts(int(n), frames, hop):
            owner.append(i)
            starts.append(s)
            wl.append(min(int(frames), int(n)))
    return (np.asarray(owner, dtype=np.int64), np.asarray(starts, dtype=np.int64),
            np.asarray(wl, dtype=np.int64))


def mean_by_clip(values: np.ndarray, owner: np.ndarray, n_clips: int) -> np.ndarray:
    """Mean of the window values of each clip.

    Parameters
    ----------
    values : np.ndarray [shape=(W, ...)]
        One row per window (probabilities (W, C) or values (W,)).
    owner : np.ndarray [shape=(W,)]
        Clip index of each window; every clip in ``range(n_clips)`` needs at least one.
    n_clips : int

    Returns
    -------
    np.ndarray [shape=(n_clips, ...)], float64
    """
    values = np.asarray(values, dtype=np.float64)
    owner = np.asarray(owner, dtype=np.int64)
    if values.shape[0] != owner.shape[0]:
        raise ValueError(f"{values.shape[0]} window values but {owner.shape[0]} owners")
    counts = np.bincount(owner, minlength=n_clips)
    if counts.shape[0] != n_clips or (counts == 0).any():
        raise ValueError("every clip needs at least one window")
    total = np.zeros((n_clips, *values.shape[1:]), dtype=np.float64)
    np.add.at(total, owner, values)
    return total / counts.reshape((-1,) + (1,) * (values.ndim - 1))
