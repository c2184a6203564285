"""Seeded splits: train/validation (the lab helper's rule by default, stratified, or
grouped), cross-validation folds, and the train/test split of a built dataset.

With groups (song, artist, source file: :func:`musicaffect.data.vocab.load_groups`) every
clip of a group is on one side of the split, and of every cross-validation fold.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np

from musicaffect.errors import ConfigError, DataError

log = logging.getLogger(__name__)


def train_val_split(n: int, *, val_fraction: float = 0.2, seed: int = 420,
                    stratify: np.ndarray | None = None, groups: np.ndarray | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
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
    groups : np.ndarray [shape=(n,)], optional
        Group of each item: a group is never split (scikit-learn's ``GroupShuffleSplit``,
        or with ``stratify`` the first fold of ``StratifiedGroupKFold`` with
        ``round(1 / val_fraction)`` folds). When every group has one item the split is the
        one without groups.

    Returns
    -------
    train_idx, val_idx : np.ndarray [shape=(n - n_val,)], [shape=(n_val,)], dtype int64
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"val_fraction must be in [0, 1), got {val_fraction}")
    n = int(n)
    if groups is not None and _has_shared_groups(groups, n):
        return _grouped_split(n, val_fraction=val_fraction, seed=seed, stratify=stratify,
                              groups=np.asarray(groups))
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
        # small data (a class with one clip, fewer validation clips than classes): the
        # seeded unstratified split still gives a usable validation part
        log.warning("cannot stratify the train/validation split (%s): using the "
                    "unstratified split", err)
        return train_val_split(n, val_fraction=val_fraction, seed=seed)
    return np.asarray(train_idx), np.asarray(val_idx)


def _has_shared_groups(groups, n: int) -> bool:
    g = np.asarray(groups)
    if g.shape != (n,):
        raise ConfigError(f"groups has shape {g.shape}, expected ({n},)")
    return len(np.unique(g)) < n


def _grouped_split(n: int, *, val_fraction: float, seed: int, stratify, groups: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import GroupShuffleSplit, StratifiedGroupKFold

    idx = np.arange(n, dtype=np.int64)
    if val_fraction == 0.0:
        return idx, np.empty(0, dtype=np.int64)
    n_groups = len(np.unique(groups))
    if n_groups < 2:
        raise ConfigError("every clip is in one group, so no split keeps groups apart: give "
                          "the clips more than one group (song, artist ...)")
    if stratify is not None:
        labels = np.asarray(stratify)
        if labels.shape != (n,):
            raise ConfigError(f"stratify has shape {labels.shape}, expected ({n},)")
        k = min(max(2, int(round(1.0 / val_fraction))), n_groups)
        try:
            folds = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
            train_idx, val_idx = next(iter(folds.split(idx, labels, groups)))
        except ValueError as err:
            log.warning("cannot stratify the grouped train/validation split (%s): using "
                        "the unstratified grouped split", err)
            return _grouped_split(n, val_fraction=val_fraction, seed=seed, stratify=None,
                                  groups=groups)
    else:
        splitter = GroupShuffleSplit(n_splits=1, test_size=val_fraction, random_state=seed)
        train_idx, val_idx = next(iter(splitter.split(idx, groups=groups)))
    return np.asarray(train_idx, dtype=np.int64), np.asarray(val_idx, dtype=np.int64)


def kfold_splits(n: int, *, k: int = 5, seed: int = 0, stratify: np.ndarray | None = None,
                 groups: np.ndarray | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """``k`` cross-validation folds ``(train_idx, val_idx)`` of ``range(n)``, seeded.

    With ``groups`` no group is split across a fold's sides (``GroupKFold`` /
    ``StratifiedGroupKFold``); with ``stratify`` the folds keep the class proportions.
    """
    from sklearn.model_selection import GroupKFold, KFold, StratifiedGroupKFold, StratifiedKFold

    if k < 2:
        raise ConfigError(f"cross-validation needs k >= 2 folds, got {k}")
    idx = np.arange(int(n), dtype=np.int64)
    try:
        if groups is not None and stratify is not None:
            it = StratifiedGroupKFold(k, shuffle=True, random_state=seed).split(
                idx, stratify, groups)
        elif groups is not None:
            g = np.asarray(groups)
            # GroupKFold has no shuffle: shuffle the group names with the seed instead
            names = np.unique(g)
            perm = dict(zip(names, np.random.default_rng(seed).permutation(len(names))))
            it = GroupKFold(k).split(idx, groups=np.array([perm[x] for x in g]))
        elif stratify is not None:
            it = StratifiedKFold(k, shuffle=True, random_state=seed).split(idx, stratify)
        else:
            it = KFold(k, shuffle=True, random_state=seed).split(idx)
        return [(np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)) for a, b in it]
    except ValueError as err:
        raise ConfigError(f"cannot make {k} folds of {n} clips: {err}") from err


def assign_splits(rows: Sequence, *, test_fraction: float = 0.2,
                  seed: int = 0) -> list[str]:
    """Train/test split of a label table's rows (``build-dataset``): seeded, stratified by
    genre, whole groups together.

    ``rows`` have the attributes of :class:`musicaffect.features.build.LabelRow`: ``key``,
    ``line``, ``genre``, ``targets``, ``split`` (given or None) and ``group`` (or None).

    Rows with a ``split`` keep it (and so do the other rows of their group); unlabelled rows
    are test clips. The other groups (a row without ``group`` is its own group) are shuffled
    per stratum (the group's most common genre; one stratum for affect-only rows) and taken
    into test while that does not take the stratum's test count further from
    ``round(test_fraction * n_clips)``.

    (scikit-learn's ``GroupShuffleSplit`` / ``StratifiedGroupKFold``, which
    :func:`train_val_split` uses, do not fit here: rows may come with their split fixed, which
    binds their whole group, and the test share is any fraction, not ``1 / k``; this rule
    keeps the splits of existing datasets unchanged.)

    Returns
    -------
    splits : list of str
        "train" or "test" per row.

    Raises
    ------
    ConfigError
        ``test_fraction`` not in [0, 1).
    DataError
        A group has rows with both splits given.
    """
    if not 0.0 <= test_fraction < 1.0:
        raise ConfigError(f"test_fraction must be in [0, 1), got {test_fraction}")
    groups: dict[str, list[int]] = defaultdict(list)
    for i, row in enumerate(rows):
        groups[row.group if row.group is not None else f"\0{row.key}"].append(i)
    out: list[str | None] = [None] * len(rows)
    strata: dict[str, list[str]] = defaultdict(list)
    for key, members in sorted(groups.items()):
        fixed = {rows[i].split for i in members if rows[i].split}
        fixed |= {"test" for i in members if not rows[i].genre and not rows[i].targets}
        if len(fixed) > 1:
            lines = ", ".join(str(rows[i].line) for i in members)
            raise DataError(f"group {key!r} (lines {lines}) has clips in both train and "
                            "test: a group stays on one side; fix its split values")
        if fixed:
            value = fixed.pop()
            for i in members:
                out[i] = value
            continue
        genres = Counter(rows[i].genre or "" for i in members)
        strata[genres.most_common(1)[0][0]].append(key)
    rng = np.random.default_rng(seed)
    for stratum in sorted(strata):
        keys = strata[stratum]
        order = rng.permutation(len(keys))
        total = sum(len(groups[k]) for k in keys)
        target = round(test_fraction * total)
        n_test = 0
        for j in order:
            members = groups[keys[j]]
            take = target > 0 and abs(n_test + len(members) - target) <= abs(n_test - target)
            n_test += len(members) if take else 0
            for i in members:
                out[i] = "test" if take else "train"
    return [s if s is not None else "train" for s in out]
