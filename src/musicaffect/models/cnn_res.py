"""``cnn_res``: a compact residual 2D CNN, the project's stronger backbone.

Front-end -> mid-end -> temporal pooling, on the (T, F) spectrogram as a one-channel image:

- a 3x3 convolutional stem and pooling,
- residual stages (two 3x3 Conv-BN layers with a 1x1 shortcut where the width changes), each
  followed by max-pooling over time and frequency (``ceil_mode``, so short beat-synchronous
  clips work),
- frequency-aware pooling: the remaining frequency bins are not averaged away but projected
  per time step by a linear layer over (channels x bins), so the embedding keeps *where* in the
  spectrum the patterns are,
- masked mean + max pooling over the valid time steps, dropout and a linear embedding.

Time steps beyond each clip's (pooled) length are zeroed after every layer that mixes
neighbouring steps, so a clip's output does not depend on the batch padding (in eval mode).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from musicaffect.models.cnn import mask_time, zero_padding_
from musicaffect.models.heads import length_mask, masked_max, masked_mean, pooled_lengths
from musicaffect.models.registry import register_backbone


@dataclass
class ResCNNConfig:
    """Options of the ``cnn_res`` backbone.

    Attributes
    ----------
    stem_channels : int
        Channels of the 3x3 stem convolution.
    stem_pool : tuple of int
        (time, frequency) max-pool after the stem.
    channels : tuple of int
        Output channels of each residual stage.
    time_pools, freq_pools : tuple of int
        Max-pool sizes along time and frequency after each stage (same length as ``channels``).
    freq_dim : int
        Size of the per-step projection of (channels x remaining frequency bins).
    embed_dim : int
        Embedding size.
    dropout : float
        Dropout before the embedding layer.
    """

    stem_channels: int = 16
    stem_pool: tuple[int, int] = (3, 2)
    channels: tuple[int, ...] = (32, 64, 96, 128)
    time_pools: tuple[int, ...] = (2, 2, 2, 2)
    freq_pools: tuple[int, ...] = (2, 2, 2, 2)
    freq_dim: int = 256
    embed_dim: int = 128
    dropout: float = 0.3

    def __post_init__(self):
        sizes = [self.stem_channels, *self.channels, self.freq_dim, self.embed_dim]
        if not self.channels or min(sizes) < 1:
            raise ValueError("stem_channels, channels, freq_dim and embed_dim must be positive")
        if not len(self.channels) == len(self.time_pools) == len(self.freq_pools):
            raise ValueError("channels, time_pools and freq_pools must have the same length")
        if min(*self.stem_pool, *self.time_pools, *self.freq_pools) < 1:
            raise ValueError("pool sizes must be positive")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


class MaskedPool(nn.Module):
    """Max-pool of a (B, C, T, F) map by (time, freq) with ``ceil_mode``; updates the lengths."""

    def __init__(self, time: int, freq: int):
        super().__init__()
        self.time = time
        self.pool = nn.MaxPool2d((time, freq), ceil_mode=True) if time * freq > 1 else None

    def forward(self, h: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.pool is None:
            return h, lengths
        return self.pool(h), pooled_lengths(lengths, pool=self.time)


class ResidualBlock(nn.Module):
    """Two 3x3 Conv-BN layers with a shortcut (1x1 Conv-BN where the width changes).

    Padded steps are zeroed before each ReLU (in place), so they stay zero.
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.act = nn.ReLU(inplace=True)
        if in_channels != out_channels:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False),
                                          nn.BatchNorm2d(out_channels))
        else:
            self.shortcut = nn.Identity()

    def forward(self, h: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, Cin, T, F) -> (B, Cout, T, F), zero at steps >= lengths."""
        y = self.act(zero_padding_(self.bn1(self.conv1(h)), lengths))
        y = self.bn2(self.conv2(y)) + self.shortcut(h)
        return self.act(zero_padding_(y, lengths))


def _pooled_size(n: int, pools: list[int]) -> int:
    for p in pools:
        n = math.ceil(n / p)
    return n


@register_backbone("cnn_res", ResCNNConfig)
class ResCNNBackbone(nn.Module):
    """Residual 2D CNN with frequency-aware and masked time pooling: (B, T, F) -> (B, D)."""

    def __init__(self, *, n_features: int, config: ResCNNConfig):
        super().__init__()
        self.config = config
        self.n_features = n_features
        self.stem = nn.Sequential(
            nn.Conv2d(1, config.stem_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(config.stem_channels),
            nn.ReLU(inplace=True),
        )
        self.stem_pool = MaskedPool(*config.stem_pool)
        stages, pools = [], []
        in_ch = config.stem_channels
        for ch, tp, fp in zip(config.channels, config.time_pools, config.freq_pools):
            stages.append(ResidualBlock(in_ch, ch))
            pools.append(MaskedPool(tp, fp))
            in_ch = ch
        self.stages = nn.ModuleList(stages)
        self.pools = nn.ModuleList(pools)
        n_bins = _pooled_size(n_features, [config.stem_pool[1], *config.freq_pools])
        self.freq_proj = nn.Sequential(nn.Linear(in_ch * n_bins, config.freq_dim),
                                       nn.ReLU(inplace=True))
        self.dropout = nn.Dropout(config.dropout)
        self.embed = nn.Sequential(nn.Linear(2 * config.freq_dim, config.embed_dim),
                                   nn.ReLU(inplace=True))
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
        h = mask_time(self.stem(x.unsqueeze(1)), lengths)             # (B, C0, T, F)
        h, lengths = self.stem_pool(h, lengths)
        for stage, pool in zip(self.stages, self.pools):
            h, lengths = pool(stage(h, lengths), lengths)              # (B, C, T', F')
        h = h.transpose(1, 2).flatten(2)                                # (B, T', C * F')
        h = self.freq_proj(h)                                           # (B, T', freq_dim)
        mask = length_mask(lengths, h.shape[1])
        pooled = torch.cat([masked_mean(h, mask), masked_max(h, mask)], dim=-1)
        return self.embed(self.dropout(pooled))                         # (B, embed_dim)
