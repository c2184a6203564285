"""Per-feature statistics for input normalisation (fitted on the training split only)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from tqdm.auto import tqdm

from musicaffect.errors import DataError

#: lower bound of the returned standard deviation (constant features divide safely)
MIN_STD = 1e-6


def feature_stats(dataset, indices: Iterable[int] | None = None, *, progress: bool = False
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of each feature over the frames of some clips.

    Streams over the clips with float64 accumulators; only the true frames of each clip
    count (items are unpadded).

    Parameters
    ----------
    dataset : SpectrogramDataset (or any sequence of items with ``"x"`` of shape (T, F))
    indices : iterable of int, optional
        The clips to use (the training split); default all.
    progress : bool
        Show a progress bar.

    Returns
    -------
    mean, std : np.ndarray [shape=(F,), dtype=float32]
        ``std`` is at least ``MIN_STD``.
    """
    idx = range(len(dataset)) if indices is None else indices
    total = None
    total_sq = None
    n = 0
    for i in tqdm(idx, desc="feature statistics", unit="clip", disable=not progress or None):
        x = np.asarray(dataset[int(i)]["x"], dtype=np.float64)  # (T, F)
        if total is None:
            total = np.zeros(x.shape[1])
            total_sq = np.zeros(x.shape[1])
        total += x.sum(axis=0)
        total_sq += np.square(x).sum(axis=0)
        n += x.shape[0]
    if n == 0 or total is None:
        raise DataError("no frames to compute feature statistics from: the selection of "
                        "training clips is empty")
    mean = total / n
    var = np.maximum(total_sq / n - np.square(mean), 0.0)
    std = np.maximum(np.sqrt(var), MIN_STD)
    return mean.astype(np.float32), std.astype(np.float32)
