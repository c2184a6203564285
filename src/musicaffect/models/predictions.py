"""What a model member predicts: :class:`Predictions` (per-clip genre probabilities and
target values), shared by the deep and classical members and the
:class:`~musicaffect.evaluation.predictor.Predictor` that combines them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from musicaffect.data.labels import CLASSES, GENRE_TASK


@dataclass
class Predictions:
    """Per-clip predictions of one member or of a whole Predictor.

    Attributes
    ----------
    ids : list of str
        Clip ids, in the order of the rows below.
    probs : np.ndarray [shape=(N, C)] or None
        Genre class probabilities (None when no member predicts genre).
    values : dict[str, np.ndarray [shape=(N,)]]
        Regression target -> predicted values on the target's scale.
    labels : dict[str, np.ndarray [shape=(N,)]]
        True labels by task, where the data has them.
    classes : list of str
        Names of the columns of ``probs``.
    """

    ids: list[str]
    probs: np.ndarray | None = None
    values: dict[str, np.ndarray] = field(default_factory=dict)
    labels: dict[str, np.ndarray] = field(default_factory=dict)
    classes: list[str] = field(default_factory=lambda: list(CLASSES))

    @property
    def tasks(self) -> list[str]:
        return ([GENRE_TASK] if self.probs is not None else []) + list(self.values)

    def reorder(self, ids: Sequence[str]) -> Predictions:
        """The same predictions with rows in the order of ``ids`` (the same set of clips)."""
        pos = {c: i for i, c in enumerate(self.ids)}
        idx = np.array([pos[c] for c in ids], dtype=np.int64)
        return Predictions(list(ids), None if self.probs is None else self.probs[idx],
                           {t: v[idx] for t, v in self.values.items()},
                           {t: v[idx] for t, v in self.labels.items()}, list(self.classes))

    def mean_rows(self) -> Predictions:
        """One row: the mean over all rows (song-level result of its windows)."""
        return Predictions(["mean"], None if self.probs is None else self.probs.mean(axis=0)[None],
                           {t: np.asarray(v).mean(axis=0, keepdims=True)
                            for t, v in self.values.items()}, {}, list(self.classes))


def vocab_attributes(member, vocab, kinds=None) -> None:
    """Set a member's ``classes``, ``kinds`` and ``ranges`` from its data's vocabulary."""
    member.vocab = vocab
    member.classes = [str(c) for c in vocab.classes]
    targets = [t for t in member.tasks if t != GENRE_TASK]
    member.kinds = dict(kinds or {t: vocab.kind(t) for t in targets})
    member.ranges = {t: tuple(vocab.ranges[t]) for t in targets if t in vocab.ranges}
