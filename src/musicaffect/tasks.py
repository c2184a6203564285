"""Task specs: what kind of prediction each task is, and everything that follows from it.

A :class:`TaskSpec` says how one task (``genre``, ``valence``, an EMOPIA ``arousal`` ...) is
learned and scored. The data root's vocabulary gives each task its spec
(:meth:`musicaffect.data.vocab.Vocabulary.task_specs`); checkpoints store the specs they were
trained with (:func:`musicaffect.models.checkpoint.task_specs`). Heads
(:func:`musicaffect.models.heads.make_head`), losses
(:func:`musicaffect.training.losses.build_loss`), the output transform, label encoding and
metrics read the spec; no other module compares task names.

Kinds
-----
``multiclass``
    One label among ``classes``; head ``Linear(D, C)``; cross-entropy; softmax; accuracy,
    macro-F1. Labels are int64 class indices (-100: a clip without one, ignored).
``binary``
    A label in {0, 1}; head ``Linear(D, 1)`` squeezed to (B,); ``BCEWithLogitsLoss``;
    sigmoid (the prediction is the score P(label = 1)); Spearman, ROC-AUC, balanced accuracy.
``regression``
    A real value; head ``Linear(D, 1)`` squeezed; a pointwise loss (MSE, L1, Huber; optional
    rank term); identity, or sigmoid when ``bounded``; Spearman, Pearson, MAE.

``labels`` records the kind of the *labels* apart from the kind of training: a binary target
of a checkpoint written before binary targets trained with BCE is a ``regression`` task with
``labels="binary"`` (its outputs are read as they were trained, and it is still scored as a
detector).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from musicaffect.errors import ConfigError, DataError

MULTICLASS = "multiclass"
BINARY = "binary"
REGRESSION = "regression"
#: the task kinds (multilabel comes next: one sigmoid per tag)
KINDS: tuple[str, ...] = (MULTICLASS, BINARY, REGRESSION)
#: label kinds: class names, 0/1, real values
LABEL_KINDS: tuple[str, ...] = ("classes", "binary", "continuous")
#: the label used for a clip without a class label (cross-entropy's ignore_index)
IGNORE_CLASS = -100
#: the name of the multiclass task over a data root's genre classes (``data.labels.GENRE_TASK``)
CLASS_TASK = "genre"


def is_class_task(name) -> bool:
    """True for the name of the multiclass (genre) task. Before a data root's vocabulary is
    read (config validation, a task list given by a user), the name is all there is to tell
    a task's kind; afterwards read :class:`TaskSpec`."""
    return name == CLASS_TASK


def split_task_names(names) -> tuple[list[str], list[str]]:
    """``(class tasks, target tasks)`` of a list of task names, each in order."""
    names = list(names)
    return [t for t in names if is_class_task(t)], [t for t in names if not is_class_task(t)]


@dataclass(frozen=True)
class TaskSpec:
    """How one task is learned, predicted and scored.

    Attributes
    ----------
    name : str
        Task name: the key of model outputs, batch targets and predictions.
    kind : {"multiclass", "binary", "regression"}
    classes : tuple of str
        Multiclass only: class names in index order.
    bounded : bool
        Regression only: the output goes through a sigmoid (in the loss and in prediction).
    labels : {"classes", "binary", "continuous"}
        Kind of the labels (see the module docstring).
    """

    name: str
    kind: str
    classes: tuple[str, ...] = ()
    bounded: bool = False
    labels: str = "continuous"

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ConfigError(f"task {self.name!r}: unknown kind {self.kind!r}; choose one of "
                              f"{', '.join(KINDS)}")
        if self.labels not in LABEL_KINDS:
            raise ConfigError(f"task {self.name!r}: unknown label kind {self.labels!r}")
        if self.kind == MULTICLASS and len(self.classes) < 2:
            raise ConfigError(f"task {self.name!r} is multiclass but has "
                              f"{len(self.classes)} class(es): it needs at least 2")

    # ------------------------------------------------------------------ what it is

    @property
    def is_multiclass(self) -> bool:
        """One label among classes: class probabilities (``Predictions.probs``)."""
        return self.kind == MULTICLASS

    @property
    def is_classification(self) -> bool:
        """Trained as a classifier (cross-entropy or BCE)."""
        return self.kind in (MULTICLASS, BINARY)

    @property
    def is_scalar(self) -> bool:
        """One number per clip (``Predictions.values``): binary scores, regression values."""
        return self.kind in (BINARY, REGRESSION)

    @property
    def has_binary_labels(self) -> bool:
        """Labels in {0, 1}: scored as a detector (ROC-AUC, balanced accuracy) too."""
        return self.labels == "binary"

    @property
    def n_outputs(self) -> int:
        """Size of the task's head: the number of classes, or 1."""
        return len(self.classes) if self.kind == MULTICLASS else 1

    @property
    def squashed(self) -> bool:
        """The prediction is the sigmoid of the output (binary, bounded regression)."""
        return self.kind == BINARY or (self.kind == REGRESSION and self.bounded)

    # ------------------------------------------------------------------ output transform

    def transform(self, output):
        """A raw model output on the task's scale.

        Parameters
        ----------
        output : torch.Tensor or np.ndarray [shape=(B, C) multiclass, (B,) otherwise]

        Returns
        -------
        Same type and shape: softmax probabilities (multiclass), the sigmoid (binary,
        bounded regression), or the output unchanged. Tensors are computed in float32,
        arrays in float64.
        """
        import torch

        is_tensor = isinstance(output, torch.Tensor)
        if self.kind == MULTICLASS:
            if is_tensor:
                return torch.softmax(output.float(), dim=-1)
            z = np.asarray(output, dtype=np.float64)
            z = np.exp(z - z.max(axis=-1, keepdims=True))
            return z / z.sum(axis=-1, keepdims=True)
        if not self.squashed:
            return output
        if is_tensor:
            return torch.sigmoid(output.float())
        from scipy.special import expit

        return expit(np.asarray(output, dtype=np.float64))

    def untransform(self, pred: np.ndarray) -> np.ndarray:
        """Back to the raw scale (float32): the log of probabilities (multiclass; softmax of
        it gives them back), the logit of a sigmoid score, or the value unchanged. Used for
        the mean over excerpt windows, which is taken on the prediction scale."""
        pred = np.asarray(pred)
        if self.kind == MULTICLASS:
            return np.log(np.maximum(pred, 1e-12)).astype(np.float32)
        if self.squashed:
            p = np.clip(pred, 1e-7, 1.0 - 1e-7)
            return np.log(p / (1.0 - p)).astype(np.float32)
        return pred.astype(np.float32)

    # ------------------------------------------------------------------ labels

    def encode(self, value) -> Any:
        """A clip's label as the training target: a class index (multiclass; ``value`` is
        the class name, None -> :data:`IGNORE_CLASS`), else a float (NaN: missing)."""
        if self.kind == MULTICLASS:
            if value is None:
                return IGNORE_CLASS
            try:
                return self.classes.index(value)
            except ValueError:
                raise DataError(f"genre class {value!r} is not in this vocabulary "
                                f"({', '.join(self.classes)})") from None
        return float(value)

    @property
    def label_dtype(self) -> str:
        """numpy dtype of the encoded labels."""
        return "int64" if self.kind == MULTICLASS else "float32"

    # ------------------------------------------------------------------ metrics

    def metrics(self, y_true, y_pred) -> dict:
        """Metrics of one task on predictions (the transformed outputs).

        multiclass: :func:`~musicaffect.evaluation.metrics.classification_metrics` of the
        argmax (clips labelled :data:`IGNORE_CLASS` left out); a scalar task: Spearman,
        Pearson, MAE, MSE (:func:`~musicaffect.evaluation.metrics.regression_metrics`), plus
        ``"binary"`` (ROC-AUC, balanced accuracy) when the labels are 0/1.
        """
        from musicaffect.evaluation.metrics import classification_metrics, regression_metrics

        y_true = np.asarray(y_true)
        if self.kind == MULTICLASS:
            keep = y_true >= 0
            return classification_metrics(y_true[keep], np.asarray(y_pred).argmax(axis=1)[keep],
                                          classes=self.classes)
        out = dict(regression_metrics({self.name: y_true}, {self.name: y_pred})
                   ["per_target"][self.name])
        if self.has_binary_labels:
            from musicaffect.evaluation.binary import binary_metrics

            out["binary"] = binary_metrics(y_true, y_pred)
        return out

    # ------------------------------------------------------------------ (de)serialise

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "classes": list(self.classes),
                "bounded": self.bounded, "labels": self.labels}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TaskSpec:
        return cls(name=str(d["name"]), kind=str(d["kind"]),
                   classes=tuple(str(c) for c in d.get("classes", ())),
                   bounded=bool(d.get("bounded", False)), labels=str(d.get("labels",
                                                                           "continuous")))


def multiclass(name: str, classes) -> TaskSpec:
    return TaskSpec(name, MULTICLASS, classes=tuple(str(c) for c in classes), labels="classes")


def target_spec(name: str, label_kind: str, *, bounded: bool = False,
                binary_as_regression: bool = False) -> TaskSpec:
    """The spec of a target whose labels are ``label_kind`` (``"binary"`` or
    ``"continuous"``): binary labels train as a binary task (BCE), unless
    ``binary_as_regression`` (how checkpoints written before the BCE change were trained)."""
    if label_kind == "binary" and not binary_as_regression:
        return TaskSpec(name, BINARY, labels="binary")
    return TaskSpec(name, REGRESSION, bounded=bounded,
                    labels="binary" if label_kind == "binary" else "continuous")


def specs_to_dict(specs: Mapping[str, TaskSpec]) -> list[dict]:
    """Plain types, in task order (for checkpoints)."""
    return [s.to_dict() for s in specs.values()]


def specs_from_dict(items) -> dict[str, TaskSpec]:
    """Inverse of :func:`specs_to_dict`."""
    specs = [TaskSpec.from_dict(d) for d in items]
    return {s.name: s for s in specs}


def multiclass_task(specs: Mapping[str, TaskSpec]) -> str | None:
    """The name of the first multiclass task, or None."""
    return next((t for t, s in specs.items() if s.is_multiclass), None)


def scalar_tasks(specs: Mapping[str, TaskSpec]) -> list[str]:
    """The tasks with one number per clip (binary and regression), in order."""
    return [t for t, s in specs.items() if s.is_scalar]


def spec_from_output(name: str, output, *, bounded: bool = False) -> TaskSpec:
    """The spec a raw output implies when no spec is known: a (B, C) output is multiclass
    (unnamed classes), a (B,) one regression (``bounded`` as the run's loss says)."""
    if np.ndim(output) == 2:
        return multiclass(name, [f"class {i}" for i in range(np.shape(output)[1])])
    return TaskSpec(name, REGRESSION, bounded=bounded)


def legacy_specs(tasks, *, classes, bounded: bool = False) -> dict[str, TaskSpec]:
    """Specs of plain task names, as runs read them before task specs (and as callers that
    pass no spec still do): the class task multiclass over ``classes``, any other task
    regression with ``bounded``."""
    return {t: (multiclass(t, classes) if is_class_task(t) else
                TaskSpec(t, REGRESSION, bounded=bounded)) for t in tasks}
