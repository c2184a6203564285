"""What a model member predicts: :class:`Predictions` (per-clip genre probabilities and
target values), shared by the deep and classical members and the
:class:`~musicaffect.evaluation.predictor.Predictor` that combines them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from musicaffect.data.labels import CLASSES
from musicaffect.tasks import (
    CLASS_TASK,
    TaskSpec,
    is_class_task,
    multiclass,
    multiclass_task,
    target_spec,
)


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
    specs : dict[str, TaskSpec]
        The tasks' specs where the members know them (name -> spec).
    """

    ids: list[str]
    probs: np.ndarray | None = None
    values: dict[str, np.ndarray] = field(default_factory=dict)
    labels: dict[str, np.ndarray] = field(default_factory=dict)
    classes: list[str] = field(default_factory=lambda: list(CLASSES))
    specs: dict[str, TaskSpec] = field(default_factory=dict)

    @property
    def tasks(self) -> list[str]:
        """The multiclass task (when ``probs`` is set), then the scalar tasks."""
        name = multiclass_task(self.specs) or CLASS_TASK
        return ([name] if self.probs is not None else []) + list(self.values)

    def reorder(self, ids: Sequence[str]) -> Predictions:
        """The same predictions with rows in the order of ``ids`` (the same set of clips)."""
        pos = {c: i for i, c in enumerate(self.ids)}
        idx = np.array([pos[c] for c in ids], dtype=np.int64)
        return Predictions(list(ids), None if self.probs is None else self.probs[idx],
                           {t: v[idx] for t, v in self.values.items()},
                           {t: v[idx] for t, v in self.labels.items()}, list(self.classes),
                           dict(self.specs))

    def mean_rows(self) -> Predictions:
        """One row: the mean over all rows (song-level result of its windows)."""
        return Predictions(["mean"], None if self.probs is None else self.probs.mean(axis=0)[None],
                           {t: np.asarray(v).mean(axis=0, keepdims=True)
                            for t, v in self.values.items()}, {}, list(self.classes),
                           dict(self.specs))


def vocab_attributes(member, vocab, kinds=None, specs=None, *, bounded: bool = False
                     ) -> None:
    """Set a member's ``classes``, ``kinds``, ``ranges`` and ``specs`` from its data's
    vocabulary. ``specs`` (name -> TaskSpec, e.g.
    :func:`musicaffect.models.checkpoint.task_specs`) default to the vocabulary's specs of
    the member's tasks as trained before task specs (binary targets as regression, with
    ``bounded``)."""
    member.vocab = vocab
    member.classes = [str(c) for c in vocab.classes]
    targets = [t for t in member.tasks if t in vocab.targets]
    member.kinds = dict(kinds or {t: vocab.kind(t) for t in targets})
    member.ranges = {t: tuple(vocab.ranges[t]) for t in targets if t in vocab.ranges}
    if specs is None:
        specs = {t: (multiclass(t, member.classes) if is_class_task(t) else
                     target_spec(t, member.kinds.get(t, "continuous"), bounded=bounded,
                                 binary_as_regression=True)) for t in member.tasks}
    member.specs = dict(specs)
