"""Task heads and the masked pooling helpers the backbones share.

All helpers work on time-major, zero-padded batches and follow the true lengths, so padded
steps never change a clip's result. They use only tensor operations (no Python branching on
values), so they trace and export with dynamic batch and time axes.
"""

from __future__ import annotations

import torch
from torch import nn

from musicaffect.tasks import TaskSpec


def length_mask(lengths: torch.Tensor, n_steps: int) -> torch.Tensor:
    """Boolean mask of the valid time steps.

    Parameters
    ----------
    lengths : torch.Tensor [shape=(B,), int64]
        True number of steps of each clip.
    n_steps : int
        Padded length ``T`` of the batch.

    Returns
    -------
    mask : torch.Tensor [shape=(B, T), bool]
        ``mask[b, t]`` is True where ``t < lengths[b]``.
    """
    steps = torch.arange(n_steps, device=lengths.device)
    return steps.unsqueeze(0) < lengths.unsqueeze(1)


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the valid steps of a time-major sequence.

    Parameters
    ----------
    x : torch.Tensor [shape=(B, T, D)]
    mask : torch.Tensor [shape=(B, T), bool]
        Valid steps; every row needs at least one True entry.

    Returns
    -------
    torch.Tensor [shape=(B, D)]
    """
    m = mask.unsqueeze(-1).to(x.dtype)                      # (B, T, 1)
    total = (x * m).sum(dim=1)                              # (B, D)
    count = m.sum(dim=1).clamp_min(1.0)                     # (B, 1)
    return total / count


def masked_max(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Maximum over the valid steps of a time-major sequence.

    Parameters
    ----------
    x : torch.Tensor [shape=(B, T, D)]
    mask : torch.Tensor [shape=(B, T), bool]
        Valid steps; every row needs at least one True entry.

    Returns
    -------
    torch.Tensor [shape=(B, D)]
    """
    filled = x.masked_fill(~mask.unsqueeze(-1), torch.finfo(x.dtype).min)
    return filled.amax(dim=1)


#: time pooling choices shared by the convolutional backbones
TIME_POOLINGS = ("mean", "max", "meanmax")


def pool_time(x: torch.Tensor, mask: torch.Tensor, *, how: str) -> torch.Tensor:
    """Masked temporal pooling of a time-major sequence.

    Parameters
    ----------
    x : torch.Tensor [shape=(B, T, D)]
    mask : torch.Tensor [shape=(B, T), bool]
    how : {"mean", "max", "meanmax"}
        ``"meanmax"`` concatenates the masked mean and the masked max.

    Returns
    -------
    torch.Tensor [shape=(B, D) or (B, 2 * D) for "meanmax"]
    """
    if how == "mean":
        return masked_mean(x, mask)
    if how == "max":
        return masked_max(x, mask)
    if how == "meanmax":
        return torch.cat([masked_mean(x, mask), masked_max(x, mask)], dim=-1)
    raise ValueError(f"unknown time pooling {how!r}; choose one of {TIME_POOLINGS}")


def pooled_lengths(lengths: torch.Tensor, *, pool: int) -> torch.Tensor:
    """Lengths after a ``ceil_mode`` max pool of kernel = stride = ``pool`` along time.

    Parameters
    ----------
    lengths : torch.Tensor [shape=(B,), int64]
    pool : int

    Returns
    -------
    torch.Tensor [shape=(B,), int64]
        ``ceil(lengths / pool)``.
    """
    if pool == 1:
        return lengths
    return torch.div(lengths + (pool - 1), pool, rounding_mode="floor")


class RegressionHead(nn.Module):
    """One real-valued output per clip: ``Linear(D, 1)`` squeezed to shape (B,). The head of
    binary tasks (a logit) and regression tasks (a value)."""

    def __init__(self, in_dim: int):
        super().__init__()
        self.linear = nn.Linear(in_dim, 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """(B, D) embedding -> (B,) raw output (no sigmoid)."""
        return self.linear(z).squeeze(-1)


def make_head(in_dim: int, task: TaskSpec | int) -> nn.Module:
    """Head for one task, from its spec: logits ``Linear(D, C)`` for a multiclass task, one
    squeezed output (:class:`RegressionHead`) for a binary or regression task.

    Parameters
    ----------
    in_dim : int
        Embedding size ``D``.
    task : TaskSpec or int
        The task's spec, or its output size as checkpoints store it (``model.tasks``):
        ``C > 1`` classes, or 1 for one output per clip.
    """
    n_outputs = task.n_outputs if isinstance(task, TaskSpec) else int(task)
    scalar = task.is_scalar if isinstance(task, TaskSpec) else n_outputs == 1
    if scalar:
        return RegressionHead(in_dim)
    return nn.Linear(in_dim, n_outputs)
