"""Training-recipe pieces the loop of :func:`musicaffect.training.engine.fit` uses.

- :func:`mixup_batch`: mixup (Zhang et al. 2018) of a padded batch; the mixing weight and
  the partner of each clip are a pure function of ``(seed, epoch, batch)``, so a resumed run
  mixes the same pairs;
- :func:`balanced_sample_weights`: per-clip sampling weights for a class-balanced sampler;
- :class:`WeightEMA`: an exponential moving average of the model's weights (used for
  validation and saved as ``best.pt`` when ``train.ema`` is set).

(Class-balanced *loss* weights: :func:`musicaffect.training.losses.balanced_class_weights`;
the learning-rate warm-up: :func:`musicaffect.training.engine.lr_factor`.)
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

import numpy as np
import torch
from torch import nn


def mixup_batch(x: torch.Tensor, lengths: torch.Tensor, y: Mapping[str, torch.Tensor], *,
                alpha: float, n_classes: Mapping[str, int], seed: int, epoch: int,
                batch: int) -> tuple[torch.Tensor, torch.Tensor, dict, float]:
    """Mix every clip of a batch with a partner: ``lam * a + (1 - lam) * b``.

    Parameters
    ----------
    x : torch.Tensor [shape=(B, T, F)]
        Raw (un-normalised) features; the model's normalisation is affine, so mixing raw
        inputs equals mixing normalised ones.
    lengths : torch.Tensor [shape=(B,)]
    y : dict[str, torch.Tensor [shape=(B,)]]
        Class indices (int64) for classification tasks, values for regression tasks.
    alpha : float > 0
        ``lam ~ Beta(alpha, alpha)``, one per batch.
    n_classes : dict[str, int]
        Output size of each task's head (> 1 = classification).
    seed, epoch, batch : int
        Draw ``lam`` and the partners from these (a pure function).

    Returns
    -------
    x, lengths, y, lam
        Mixed features; lengths ``min(len(a), len(b))`` (the steps both clips have);
        classification targets become mixed one-hot class probabilities (B, C) (float32),
        regression targets the mixed values; ``lam`` the weight of the original clip.
    """
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, int(epoch), int(batch), 0x6D69])
    lam = float(rng.beta(alpha, alpha))
    perm = torch.as_tensor(rng.permutation(x.shape[0]), device=x.device)
    x = lam * x + (1.0 - lam) * x[perm]
    lengths = torch.minimum(lengths, lengths[perm.to(lengths.device)])
    out = {}
    for task, target in y.items():
        p = perm.to(target.device)
        if n_classes.get(task, 1) > 1:
            onehot = nn.functional.one_hot(target.long(), n_classes[task]).float()
            out[task] = lam * onehot + (1.0 - lam) * onehot[p]
        else:
            out[task] = lam * target.float() + (1.0 - lam) * target.float()[p]
    return x, lengths, out, lam


def balanced_sample_weights(labels) -> np.ndarray:
    """Per-clip sampling weights ``1 / count(class)``, normalised to sum 1.

    Drawing clips with these weights (with replacement) gives every class the same expected
    number of draws per epoch.
    """
    labels = np.asarray(labels, dtype=np.int64)
    if labels.size == 0:
        raise ValueError("no labels to balance")
    counts = np.bincount(labels)
    w = 1.0 / counts[labels]
    return w / w.sum()


class WeightEMA:
    """Exponential moving average of a model's weights (parameters and buffers).

    After every optimizer step: ``ema = d * ema + (1 - d) * weights`` for floating-point
    tensors (BatchNorm running statistics included), a copy for integer buffers. The decay
    warms up, ``d = min(decay, (1 + n) / (10 + n))`` after ``n`` updates, so the average does
    not stay near the random initialisation on small data sets (few steps per epoch).

    Parameters
    ----------
    model : nn.Module
        The model being trained (unwrapped); a deep copy in eval mode holds the average.
    decay : float in (0, 1)
    """

    def __init__(self, model: nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = float(decay)
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)
        self.steps = 0

    def current_decay(self) -> float:
        return min(self.decay, (1.0 + self.steps) / (10.0 + self.steps))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.steps += 1
        d = self.current_decay()
        new = model.state_dict()
        for k, e in self.module.state_dict().items():
            v = new[k].detach()
            if e.is_floating_point():
                e.lerp_(v.to(e.dtype), 1.0 - d)
            else:
                e.copy_(v)

    def state_dict(self) -> dict:
        return {"state": {k: v.detach().cpu() for k, v in self.module.state_dict().items()},
                "steps": self.steps}

    def load_state_dict(self, state: Mapping) -> None:
        self.module.load_state_dict(state["state"])
        self.steps = int(state["steps"])
