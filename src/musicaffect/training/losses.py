"""Loss modules for genre classification, affect regression and multitask learning.

Models return raw outputs (logits, unbounded regression values); every non-linearity that a
loss needs (softmax inside cross-entropy, the sigmoid of BCE and of a *bounded* regression
head) lives here and in :meth:`musicaffect.tasks.TaskSpec.transform`, never in a model's
``forward``. Each task's loss follows its :class:`~musicaffect.tasks.TaskSpec`: cross-entropy
(multiclass), ``BCEWithLogitsLoss`` (binary), a pointwise regression loss (regression).

Rank-aware term
---------------
Spearman's rho is the Pearson correlation of ranks, and ranks are piecewise constant. The
optional rank term replaces the ranks of the predictions by *soft ranks*,
``soft_rank_i = 0.5 + sum_j sigmoid((x_i - x_j) / temperature)``, where the temperature is in
the units of the output (targets are in [0, 1]; default 0.1); the targets get exact
(average-tie) ranks. The term is ``1 - pearson(soft_rank(pred), rank(target))``, in
[0, 2], 0 for perfectly ordered predictions, and it is differentiable everywhere. It costs
O(B^2) per batch. With ``temperature -> 0`` the soft ranks become the exact ranks.

Multitask weighting
-------------------
Fixed: ``total = sum_t w_t * L_t``. Learned (homoscedastic uncertainty, Kendall, Gal and
Cipolla 2018): one learnable log-variance ``s_t`` per task and
``total = sum_t exp(-s_t) * L_t + s_t`` (the variant without the 0.5 factors, used for both
classification and regression tasks). The effective weight of task t is ``exp(-s_t)``; a
task whose loss stays large gets a smaller weight. When fixed weights are also given, they
set the starting point: ``s_t = -log(w_t)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from musicaffect.data.labels import CLASSES, TARGETS
from musicaffect.errors import ConfigError
from musicaffect.tasks import (
    BINARY,
    CLASS_TASK,
    MULTICLASS,
    TaskSpec,
    legacy_specs,
)

__all__ = [
    "REGRESSION_KINDS",
    "task_loss",
    "MultiTaskLoss",
    "TaskLoss",
    "balanced_class_weights",
    "build_loss",
    "soft_rank",
    "soft_spearman_loss",
]

#: Pointwise regression losses accepted by :class:`TaskLoss`.
REGRESSION_KINDS: tuple[str, ...] = ("mse", "l1", "huber")
_KINDS = ("ce", "bce", *REGRESSION_KINDS)


def soft_rank(x: torch.Tensor, *, temperature: float = 0.1) -> torch.Tensor:
    """Differentiable ranks of a batch of scores.

    Parameters
    ----------
    x : torch.Tensor [shape=(B,)]
        Scores.
    temperature : float > 0
        Smoothness of the pairwise comparisons, in the units of ``x``: pairs closer than
        about ``temperature`` count as half-ordered.

    Returns
    -------
    ranks : torch.Tensor [shape=(B,)]
        ``0.5 + sum_j sigmoid((z_i - z_j) / temperature)``, between 1 and B, approximating
        1-based ranks (the self-comparison contributes 0.5).
    """
    diff = (x[:, None] - x[None, :]) / temperature  # (B, B): x_i - x_j
    return 0.5 + torch.sigmoid(diff).sum(dim=1)


def _exact_rank(x: torch.Tensor) -> torch.Tensor:
    """1-based ranks with ties averaged (like ``scipy.stats.rankdata``); not differentiable."""
    less = (x[None, :] < x[:, None]).sum(dim=1)  # (B,) values strictly below x_i
    equal = (x[None, :] == x[:, None]).sum(dim=1)  # (B,) values equal to x_i (self included)
    return less.to(x.dtype) + (equal.to(x.dtype) + 1.0) / 2.0


def _pearson(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    a = a - a.mean()
    b = b - b.mean()
    return (a * b).sum() / torch.sqrt((a * a).sum() * (b * b).sum() + eps)


def soft_spearman_loss(pred: torch.Tensor, target: torch.Tensor, *,
                       temperature: float = 0.1) -> torch.Tensor:
    """``1 - pearson(soft_rank(pred), rank(target))``: a differentiable Spearman surrogate.

    Parameters
    ----------
    pred : torch.Tensor [shape=(B,)]
    target : torch.Tensor [shape=(B,)]
    temperature : float

    Returns
    -------
    loss : torch.Tensor [shape=()]
        In [0, 2]; lower when ``pred`` orders the batch like ``target``. A batch of fewer
        than 2 clips or with constant targets carries no ordering: the loss is then 1 with a
        zero gradient.
    """
    if pred.shape[0] < 2:
        return pred.sum() * 0.0 + 1.0
    rp = soft_rank(pred, temperature=temperature)
    rt = _exact_rank(target.detach().to(pred.dtype))
    return 1.0 - _pearson(rp, rt)


class TaskLoss(nn.Module):
    """The loss of one task: classification or regression, with an optional rank term.

    Parameters
    ----------
    kind : {"ce", "bce", "mse", "l1", "huber"}
        ``"ce"``: cross-entropy on logits of shape (B, C) with int64 targets (B,);
        targets equal to -100 are ignored. Float targets of shape (B, C) are class
        probabilities (mixup's mixed one-hot targets). ``"bce"``: binary cross-entropy on
        logits (B,) or (B, 1) with targets in [0, 1] (B,) (``BCEWithLogitsLoss``). The
        others: pointwise regression losses on the same shapes. NaN targets are ignored
        (every kind but ``"ce"``).
    bounded : bool
        Regression only: pass the raw output through a sigmoid before the loss (targets are
        in [0, 1]). Use the same flag in
        :func:`musicaffect.evaluation.inference.predict_transform`.
    rank_weight : float >= 0
        Regression only: weight of :func:`soft_spearman_loss` added to the pointwise loss.
    label_smoothing : float in [0, 1)
        Classification only: label smoothing of the cross-entropy.
    huber_delta : float > 0
        Threshold of the Huber loss.
    rank_temperature : float > 0
        Temperature of the soft ranks.
    class_weights : sequence of float, optional
        Classification only: per-class weights of the cross-entropy (class balancing).

    Notes
    -----
    ``forward`` returns ``pointwise + rank_weight * rank``. Outputs are cast to float32 so
    the loss is computed in full precision under autocast.
    """

    def __init__(self, kind: str = "mse", *, bounded: bool = False, rank_weight: float = 0.0,
                 label_smoothing: float = 0.0, huber_delta: float = 1.0,
                 rank_temperature: float = 0.1, class_weights: Sequence[float] | None = None):
        super().__init__()
        kind = str(kind).lower()
        if kind not in _KINDS:
            raise ConfigError(f"unknown loss kind {kind!r}: choose one of {', '.join(_KINDS)}")
        if rank_weight < 0:
            raise ConfigError(f"rank_weight must be >= 0, got {rank_weight}")
        if not 0.0 <= label_smoothing < 1.0:
            raise ConfigError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        if huber_delta <= 0 or rank_temperature <= 0:
            raise ConfigError("huber_delta and rank_temperature must be > 0")
        if kind in ("ce", "bce") and (bounded or rank_weight > 0):
            raise ConfigError("bounded outputs and the rank term apply to regression only; "
                              "set bounded=false and rank_weight=0 for classification tasks")
        if kind != "ce" and label_smoothing > 0:
            raise ConfigError("label_smoothing applies to classification (genre) only")
        self.kind = kind
        self.bounded = bool(bounded)
        self.rank_weight = float(rank_weight)
        self.label_smoothing = float(label_smoothing)
        self.huber_delta = float(huber_delta)
        self.rank_temperature = float(rank_temperature)
        weight = None
        if class_weights is not None:
            if kind != "ce":
                raise ConfigError("class weights apply to classification (genre) only")
            weight = torch.as_tensor(np.asarray(class_weights, dtype=np.float32))
            if weight.ndim != 1 or not torch.isfinite(weight).all() or (weight < 0).any():
                raise ConfigError("class weights must be finite numbers >= 0, one per class")
        # recomputed from the data at every start, so not part of the saved state
        self.register_buffer("class_weights", weight, persistent=False)

    @property
    def is_classification(self) -> bool:
        return self.kind == "ce"

    def extra_repr(self) -> str:
        return (f"kind={self.kind!r}, bounded={self.bounded}, rank_weight={self.rank_weight}, "
                f"label_smoothing={self.label_smoothing}")

    def forward(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Loss of a batch.

        Parameters
        ----------
        output : torch.Tensor [shape=(B, C) for "ce", (B,) or (B, 1) otherwise]
            Raw model output (logits / unbounded values).
        target : torch.Tensor [shape=(B,)]
            int64 class indices for "ce", floats otherwise.

        Returns
        -------
        loss : torch.Tensor [shape=()]
        """
        output = output.float()
        if self.kind == "ce" and target.is_floating_point() and target.ndim == 2:
            if target.shape != output.shape:
                raise ValueError(f"class-probability targets must have the logits' shape "
                                 f"{tuple(output.shape)}, got {tuple(target.shape)}")
            return F.cross_entropy(output, target.float(), weight=self.class_weights,
                                   label_smoothing=self.label_smoothing)
        if self.kind == "ce":
            if output.ndim != 2 or target.shape != output.shape[:1]:
                raise ValueError(f"cross-entropy expects logits (B, C) and targets (B,), got "
                                 f"{tuple(output.shape)} and {tuple(target.shape)}")
            target = target.long()
            if not (target != -100).any():
                return output.sum() * 0.0
            return F.cross_entropy(output, target, weight=self.class_weights,
                                   label_smoothing=self.label_smoothing, ignore_index=-100)

        if output.ndim == 2 and output.shape[1] == 1:
            output = output[:, 0]
        if output.ndim != 1 or target.shape != output.shape:
            raise ValueError(f"regression expects outputs (B,) or (B, 1) and targets (B,), got "
                             f"{tuple(output.shape)} and {tuple(target.shape)}")
        pred = torch.sigmoid(output) if self.bounded else output
        target = target.to(pred.dtype)
        keep = torch.isfinite(target)
        if not keep.all():
            pred, target = pred[keep], target[keep]
        if pred.numel() == 0:
            return output.sum() * 0.0
        if self.kind == "bce":
            return F.binary_cross_entropy_with_logits(pred, target)
        if self.kind == "mse":
            loss = F.mse_loss(pred, target)
        elif self.kind == "l1":
            loss = F.l1_loss(pred, target)
        else:
            loss = F.huber_loss(pred, target, delta=self.huber_delta)
        if self.rank_weight > 0:
            loss = loss + self.rank_weight * soft_spearman_loss(
                pred, target, temperature=self.rank_temperature)
        return loss


class MultiTaskLoss(nn.Module):
    """Sum of per-task losses with fixed or learned (uncertainty) weights.

    Parameters
    ----------
    losses : dict[str, TaskLoss]
        One loss per task, keyed like the model outputs and the batch targets.
    weights : dict[str, float], optional
        Fixed weights (default 1 for every task; tasks not named get 1). With
        ``learn_weights`` they are the starting weights.
    learn_weights : bool
        Learn one log-variance per task (see the module docstring). The parameters are
        registered on this module, so the optimizer must include ``loss.parameters()``.

    Examples
    --------
    >>> loss = MultiTaskLoss({"valence": TaskLoss("mse"), "energy": TaskLoss("mse")},
    ...                      weights={"valence": 2.0})
    >>> total, parts = loss(model_outputs, batch["y"])  # doctest: +SKIP
    """

    def __init__(self, losses: Mapping[str, TaskLoss], *,
                 weights: Mapping[str, float] | None = None, learn_weights: bool = False):
        super().__init__()
        if not losses:
            raise ConfigError("a multitask loss needs at least one task")
        weights = dict(weights or {})
        unknown = sorted(set(weights) - set(losses))
        if unknown:
            raise ConfigError(f"loss weights given for unknown task(s) {', '.join(unknown)}; "
                              f"the tasks are {', '.join(losses)}")
        for task, w in weights.items():
            if not (isinstance(w, (int, float)) and math.isfinite(w) and w >= 0):
                raise ConfigError(f"loss weight of {task!r} must be a finite number >= 0, "
                                  f"got {w!r}")
            if learn_weights and w == 0:
                raise ConfigError(f"loss weight of {task!r} is 0, which learned weighting "
                                  "cannot start from; drop the task instead")
        self.tasks: tuple[str, ...] = tuple(losses)
        self.losses = nn.ModuleDict(dict(losses))
        self.learn_weights = bool(learn_weights)
        self.fixed_weights = {t: float(weights.get(t, 1.0)) for t in self.tasks}
        if self.learn_weights:
            self.log_vars = nn.ParameterDict({
                t: nn.Parameter(torch.tensor(-math.log(self.fixed_weights[t])))
                for t in self.tasks
            })

    def forward(self, outputs: Mapping[str, torch.Tensor],
                targets: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, dict]:
        """Weighted total loss and the unweighted loss of each task.

        Parameters
        ----------
        outputs : dict[str, torch.Tensor]
            Model outputs; keys other than the tasks (e.g. ``"embedding"``) are ignored.
        targets : dict[str, torch.Tensor [shape=(B,)]]
            Batch targets for every task.

        Returns
        -------
        total : torch.Tensor [shape=()]
        parts : dict[str, torch.Tensor [shape=()]]
            ``TaskLoss`` value of each task, before weighting.
        """
        parts: dict[str, torch.Tensor] = {}
        total = None
        for task in self.tasks:
            if task not in outputs or task not in targets:
                where = "model outputs" if task not in outputs else "batch targets"
                raise ValueError(f"task {task!r} is missing from the {where}; the loss expects "
                                 f"{', '.join(self.tasks)}")
            value = self.losses[task](outputs[task], targets[task])
            parts[task] = value
            if self.learn_weights:
                s = self.log_vars[task]
                term = torch.exp(-s) * value + s
            else:
                term = self.fixed_weights[task] * value
            total = term if total is None else total + term
        return total, parts

    def current_weights(self) -> dict[str, float]:
        """Effective weight of each task: the fixed weight, or ``exp(-s_t)`` when learned."""
        if not self.learn_weights:
            return dict(self.fixed_weights)
        return {t: float(torch.exp(-self.log_vars[t].detach())) for t in self.tasks}


def task_loss(spec: TaskSpec, *, regression: str = "mse", rank_weight: float = 0.0,
              label_smoothing: float = 0.0,
              class_weights: Sequence[float] | None = None) -> TaskLoss:
    """The loss of one task from its spec: cross-entropy (multiclass, with
    ``label_smoothing`` and ``class_weights``), BCE on logits (binary), ``regression`` with
    the spec's ``bounded`` and ``rank_weight`` (regression)."""
    if spec.kind == MULTICLASS:
        return TaskLoss("ce", label_smoothing=label_smoothing, class_weights=class_weights)
    if spec.kind == BINARY:
        return TaskLoss("bce")
    return TaskLoss(regression, bounded=spec.bounded, rank_weight=rank_weight)


def build_loss(tasks: Sequence[str] | Sequence[TaskSpec] | Mapping[str, TaskSpec], *,
               regression: str = "mse", bounded: bool = False,
               rank_weight: float = 0.0, weights: Mapping[str, float] | None = None,
               learn_weights: bool = False, label_smoothing: float = 0.0,
               targets: Sequence[str] | None = None,
               class_weights: Sequence[float] | None = None) -> MultiTaskLoss:
    """The loss for a set of tasks, each from its :class:`~musicaffect.tasks.TaskSpec`
    (:func:`task_loss`).

    Parameters
    ----------
    tasks : sequence of TaskSpec, or dict name -> TaskSpec, or sequence of str
        The task specs (``RunData.specs``). Plain names (older callers) read as the lab's
        tasks: ``"genre"`` multiclass, a name in ``targets`` regression with ``bounded``.
    regression : {"mse", "l1", "huber"}
    bounded : bool
        Plain names only: sigmoid on regression outputs before the loss (a spec carries
        its own ``bounded``).
    rank_weight : float
        Weight of the rank term of every regression task.
    weights : dict[str, float], optional
        Per-task weights (see :class:`MultiTaskLoss`).
    learn_weights : bool
        Uncertainty weighting.
    label_smoothing : float
        Of the multiclass cross-entropy.
    targets : sequence of str, optional
        Plain names only: the data's regression targets (default: valence, energy,
        danceability).
    class_weights : sequence of float, optional
        Per-class weights of the multiclass cross-entropy (see :func:`balanced_class_weights`).

    Returns
    -------
    loss : MultiTaskLoss
    """
    specs = _as_specs(tasks, bounded=bounded, targets=targets)
    if str(regression).lower() not in REGRESSION_KINDS:
        raise ConfigError(f"unknown regression loss {regression!r}: choose one of "
                          f"{', '.join(REGRESSION_KINDS)}")
    losses = {s.name: task_loss(s, regression=regression, rank_weight=rank_weight,
                                label_smoothing=label_smoothing, class_weights=class_weights)
              for s in specs}
    return MultiTaskLoss(losses, weights=weights, learn_weights=learn_weights)


def _as_specs(tasks, *, bounded: bool, targets: Sequence[str] | None) -> list[TaskSpec]:
    """Task specs from specs, a name -> spec mapping, or plain names (see build_loss)."""
    items = list(tasks.values()) if isinstance(tasks, Mapping) else list(tasks)
    if not items:
        raise ConfigError("no task given: choose genre and/or " + ", ".join(TARGETS))
    names = [s.name if isinstance(s, TaskSpec) else s for s in items]
    if len(set(names)) != len(names):
        raise ConfigError(f"task list {names} names a task twice")
    known = tuple(targets) if targets is not None else TARGETS
    out = []
    for item in items:
        if isinstance(item, TaskSpec):
            out.append(item)
            continue
        spec = legacy_specs([item], classes=CLASSES, bounded=bounded)[item]
        if not spec.is_multiclass and item not in known:
            raise ConfigError(f"unknown task {item!r}: choose from {CLASS_TASK}, "
                              + ", ".join(known))
        out.append(spec)
    return out


def balanced_class_weights(labels, n_classes: int) -> np.ndarray:
    """Class weights ``n / (k * count_c)`` (``k`` = classes present) for a class-balanced loss.

    Each present class then carries the same total weight; a class absent from ``labels``
    gets weight 0 (it never appears as a target). Returns float32 of shape (n_classes,).
    """
    labels = np.asarray(labels, dtype=np.int64)
    counts = np.bincount(labels, minlength=n_classes)[:n_classes].astype(np.float64)
    present = counts > 0
    w = np.zeros(n_classes)
    w[present] = labels.size / (present.sum() * counts[present])
    return w.astype(np.float32)
