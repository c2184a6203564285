"""The lab's 2D CNN: the (T, F) spectrogram as a one-channel image.

Blocks of Conv2d -> BatchNorm2d -> ReLU -> MaxPool2d, then global pooling (mean over the
remaining frequency bins, masked mean/max over the valid time steps), dropout and a linear
embedding. Pools use ``ceil_mode`` so short clips (a ~30-frame beat-synchronous clip) never
shrink to nothing, and any time length works. After every block the time steps beyond each
clip's (pooled) length are zeroed, so a clip's output does not depend on the padding of the
batch it is in (with BatchNorm in eval mode).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from musicaffect.models.base import is_exporting
from musicaffect.models.heads import TIME_POOLINGS, length_mask, pool_time, pooled_lengths
from musicaffect.models.registry import register_backbone


@dataclass
class CNNConfig:
    """Options of the ``cnn`` backbone.

    Attributes
    ----------
    channels : tuple of int
        Output channels of each Conv -> BN -> ReLU -> MaxPool block (the lab uses 4 blocks).
    kernel_size : int
        Odd square convolution kernel.
    pool_size : int
        Square max-pool kernel and stride of every block (``ceil_mode``; 1 = no pooling).
    time_pooling : {"mean", "max", "meanmax"}
        Global masked pooling over the remaining time steps.
    embed_dim : int
        Size of the linear embedding after pooling; 0 = use the pooled features directly.
    dropout : float
        Dropout before the embedding layer.
    """

    channels: tuple[int, ...] = (16, 32, 64, 128)
    kernel_size: int = 3
    pool_size: int = 3
    time_pooling: Literal["mean", "max", "meanmax"] = "meanmax"
    embed_dim: int = 128
    dropout: float = 0.2

    def __post_init__(self):
        if not self.channels or min(self.channels) < 1:
            raise ValueError(f"channels must be positive integers, got {self.channels}")
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd and positive, got {self.kernel_size}")
        if self.pool_size < 1:
            raise ValueError(f"pool_size must be positive, got {self.pool_size}")
        if self.embed_dim < 0:
            raise ValueError(f"embed_dim must be >= 0, got {self.embed_dim}")
        if self.time_pooling not in TIME_POOLINGS:
            raise ValueError(f"time_pooling must be one of {TIME_POOLINGS}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


def mask_time(h: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Zero the time steps of a (B, C, T, F) feature map at or beyond each clip's length."""
    mask = length_mask(lengths, h.shape[2])                       # (B, T)
    return h.masked_fill(~mask[:, None, :, None], 0.0)


def zero_padding_(h: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Zero the steps at or beyond each clip's length of a (B, C, T, F) map, in place.

    Same values as :func:`mask_time`, but touches only the steps past the shortest clip, and
    nothing when no clip is padded (a full-size masked copy of the map costs ~15% of a CPU
    step of the lab CNN). While exporting, the out-of-place :func:`mask_time` is used. Apply
    it before an in-place ReLU, not to a ReLU's output (autograd needs that unchanged).
    """
    if is_exporting():
        return mask_time(h, lengths)
    lo = int(lengths.min())
    if lo < h.shape[2]:
        pad = ~length_mask(lengths, h.shape[2])[:, None, lo:, None]   # (B, 1, T - lo, 1)
        h[:, :, lo:].masked_fill_(pad, 0.0)
    return h


class ConvBlock(nn.Module):
    """Conv2d -> BatchNorm2d -> ReLU -> (time mask) -> MaxPool2d on a (B, C, T, F) map."""

    def __init__(self, in_channels: int, out_channels: int, *, kernel_size: int, pool: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size,
                              padding=kernel_size // 2, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.act = nn.ReLU(inplace=True)
        self.pool_size = pool
        self.pool = nn.MaxPool2d(pool, ceil_mode=True) if pool > 1 else nn.Identity()

    def forward(self, h: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, Cin, T, F), (B,) -> (B, Cout, ceil(T/p), ceil(F/p)), pooled lengths (B,)."""
        h = self.bn(self.conv(h))                                     # (B, Cout, T, F)
        h = self.act(zero_padding_(h, lengths))                       # ReLU(0) = 0
        # post-ReLU values are >= 0, so a pool window that mixes valid and zeroed steps
        # gives the max of its valid steps, as for the clip alone
        return self.pool(h), pooled_lengths(lengths, pool=self.pool_size)


@register_backbone("cnn", CNNConfig)
class CNNBackbone(nn.Module):
    """Lab 2D CNN: ``(B, T, F)`` -> ``(B, D)``.

    ``D = embed_dim`` (or ``channels[-1]`` times 2 for "meanmax" pooling when
    ``embed_dim == 0``).
    """

    def __init__(self, *, n_features: int, config: CNNConfig):
        super().__init__()
        self.config = config
        self.n_features = n_features
        blocks = []
        in_ch = 1
        for ch in config.channels:
            blocks.append(ConvBlock(in_ch, ch, kernel_size=config.kernel_size,
                                    pool=config.pool_size))
            in_ch = ch
        self.blocks = nn.ModuleList(blocks)
        pooled_dim = in_ch * (2 if config.time_pooling == "meanmax" else 1)
        self.dropout = nn.Dropout(config.dropout)
        if config.embed_dim > 0:
            self.embed = nn.Sequential(nn.Linear(pooled_dim, config.embed_dim), nn.ReLU())
            self.out_dim = config.embed_dim
        else:
            self.embed = nn.Identity()
            self.out_dim = pooled_dim

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """
        Parameters
        ----------
        x : torch.Tensor [shape=(B, T, F)]
            Normalised features, zero beyond each length.
        lengths : torch.Tensor [shape=(B,), int64]

        Returns
        -------
        torch.Tensor [shape=(B, D)]
        """
        h = x.unsqueeze(1)                                            # (B, 1, T, F)
        for block in self.blocks:
            h, lengths = block(h, lengths)                            # (B, C, T', F')
        h = h.mean(dim=3).transpose(1, 2)                             # (B, T', C)
        pooled = pool_time(h, length_mask(lengths, h.shape[1]), how=self.config.time_pooling)
        return self.embed(self.dropout(pooled))
