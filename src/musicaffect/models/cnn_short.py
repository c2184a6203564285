"""``cnn_short``: a short-chunk residual CNN (after Won et al. 2020, "short-chunk CNN + Res").

Made for excerpt training (``data.chunk_frames``, e.g. 128-256 frames, 3-6 s at full rate):
the (T, F) spectrogram as a one-channel image,

- a 3x3 Conv-BN-ReLU stem and a max-pool (``stem_pool``),
- residual stages (two 3x3 Conv-BN layers, 1x1 shortcut where the width changes), each
  followed by a max-pool (``pool`` x ``pool``, ``ceil_mode`` so beat-rate clips of a few
  dozen steps work),
- global pooling: max over the remaining frequency bins, then masked max (and mean) over the
  valid time steps, dropout and a linear embedding with ReLU.

Small kernels and pooling at every stage keep the cost per frame low; on a whole clip it
works too (any length). Time steps beyond each clip's (pooled) length are zeroed after every
layer that mixes neighbouring steps, so a clip's output does not depend on the batch padding
(BatchNorm in eval mode).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from musicaffect.models.cnn import zero_padding_
from musicaffect.models.cnn_res import MaskedPool, ResidualBlock
from musicaffect.models.heads import TIME_POOLINGS, length_mask, pool_time
from musicaffect.models.registry import register_backbone


@dataclass
class ShortCNNConfig:
    """Options of the ``cnn_short`` backbone.

    Attributes
    ----------
    stem_channels : int
        Channels of the 3x3 stem convolution.
    stem_pool : int
        Square max-pool after the stem (``ceil_mode``).
    channels : tuple of int
        Output channels of each residual stage.
    pool : int
        Square max-pool after each residual stage (``ceil_mode``; 1 = none).
    time_pooling : {"max", "mean", "meanmax"}
        Masked global pooling over time (after a max over frequency).
    embed_dim : int
        Embedding size.
    dropout : float
        Dropout before the embedding layer.
    """

    stem_channels: int = 8
    stem_pool: int = 3
    channels: tuple[int, ...] = (16, 32, 64, 128)
    pool: int = 2
    time_pooling: Literal["mean", "max", "meanmax"] = "meanmax"
    embed_dim: int = 128
    dropout: float = 0.3

    def __post_init__(self):
        if not self.channels or min(self.stem_channels, *self.channels, self.embed_dim) < 1:
            raise ValueError("stem_channels, channels and embed_dim must be positive")
        if self.pool < 1 or self.stem_pool < 1:
            raise ValueError(f"pool and stem_pool must be positive, got {self.pool} and "
                             f"{self.stem_pool}")
        if self.time_pooling not in TIME_POOLINGS:
            raise ValueError(f"time_pooling must be one of {TIME_POOLINGS}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


@register_backbone("cnn_short", ShortCNNConfig)
class ShortCNNBackbone(nn.Module):
    """Short-chunk residual CNN: (B, T, F) -> (B, embed_dim)."""

    def __init__(self, *, n_features: int, config: ShortCNNConfig):
        super().__init__()
        self.config = config
        self.n_features = n_features
        self.stem = nn.Sequential(
            nn.Conv2d(1, config.stem_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(config.stem_channels),
        )
        self.stem_act = nn.ReLU(inplace=True)
        self.stem_pool = MaskedPool(config.stem_pool, config.stem_pool)
        stages, pools = [], []
        in_ch = config.stem_channels
        for ch in config.channels:
            stages.append(ResidualBlock(in_ch, ch))
            pools.append(MaskedPool(config.pool, config.pool))
            in_ch = ch
        self.stages = nn.ModuleList(stages)
        self.pools = nn.ModuleList(pools)
        pooled = in_ch * (2 if config.time_pooling == "meanmax" else 1)
        self.dropout = nn.Dropout(config.dropout)
        self.embed = nn.Sequential(nn.Linear(pooled, config.embed_dim), nn.ReLU(inplace=True))
        self.out_dim = config.embed_dim

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """
        Parameters
        ----------
        x : torch.Tensor [shape=(B, T, F)]
            Normalised features, zero beyond each length.
        lengths : torch.Tensor [shape=(B,), int64]

        Returns
        -------
        torch.Tensor [shape=(B, embed_dim)]
        """
        h = self.stem(x.unsqueeze(1))                                   # (B, C0, T, F)
        h = self.stem_act(zero_padding_(h, lengths))
        h, lengths = self.stem_pool(h, lengths)
        for stage, pool in zip(self.stages, self.pools):
            h, lengths = pool(stage(h, lengths), lengths)              # (B, C, T', F')
        h = h.amax(dim=3).transpose(1, 2)                               # (B, T', C)
        pooled = pool_time(h, length_mask(lengths, h.shape[1]), how=self.config.time_pooling)
        return self.embed(self.dropout(pooled))                         # (B, embed_dim)
