"""Seeded train/validation splits (the lab helper's rule by default, or stratified)."""

from __future__ import annotations

import numpy as np

from musicaffect.errors import ConfigError


def train_val_split(n: int, *, val_fraction: float = 0.2, seed: int = 420,
                    stratify: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Split ``range(n)`` into training and validation indices.

    By default this is the lab helper's rule: shuffle the indices with
    ``np.random.seed(seed); np.random.shuffle(indices)`` and take the first
    ``floor(val_fraction * n)`` as validation. With ``stratify`` (one label per item) the
    split keeps the class proportions (scikit-learn's stratified shuffle).

    Parameters
    ----------
    n : int
        Number of items.
    val_fraction : float
        Share of validation items, in [0, 1).
    seed : int
    stratify : np.ndarray [shape=(n,)], optional
        Labels to stratify by.

    Returns
    -------
    train_idx, val_idx : np.ndarray [shape=(n - n_val,)], [shape=(n_val,)], dtype int64
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"val_fraction must be in [0, 1), got {val_fraction}")
    n = int(n)
    if stratify is None:
        indices = np.arange(n, dtype=np.int64)
        np.random.RandomState(seed).shuffle(indices)
        n_val = int(np.floor(val_fraction * n))
        return indices[n_val:], indices[:n_val]
    from sklearn.model_selection import train_test_split

    labels = np.asarray(stratify)
    if labels.shape != (n,):
        raise ConfigError(f"stratify has shape {labels.shape}, expected ({n},)")
    if val_fraction == 0.0:
        return np.arange(n, dtype=np.int64), np.empty(0, dtype=np.int64)
    try:
        train_idx, val_idx = train_test_split(np.arange(n, dtype=np.int64),
                                              test_size=val_fraction, random_state=seed,
                                              stratify=labels)
    except ValueError as err:
        raise ConfigError(f"cannot stratify the split: {err}; use the unstratified split "
                          "or a larger validation fraction") from err
    return np.asarray(train_idx), np.asarray(val_idx)
