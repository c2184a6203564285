"""``crnn``: a convolutional front-end, a recurrent layer over time and masked pooling.

- Conv-BN-ReLU-MaxPool blocks on the (T, F) spectrogram as a one-channel image, pooling
  frequency more than time (``freq_pools`` / ``time_pools``), so the recurrent layer sees a
  shorter sequence of local spectro-temporal patterns;
- per step, the remaining (channels x frequency bins) are projected to ``proj_dim``;
- a GRU (or LSTM) over the valid steps, forward and (optionally) backward: the backward
  direction runs on each clip reversed within its own length, so padding never reaches a
  valid step and no packed sequences are needed (fast on CPUs, exportable);
- masked mean + max pooling of the recurrent outputs over the valid steps, dropout and a
  linear embedding.

Steps beyond each clip's (pooled) length are zeroed after every convolution, so a clip's
output does not depend on the batch padding (BatchNorm in eval mode).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from musicaffect.models.cnn import zero_padding_
from musicaffect.models.cnn_res import MaskedPool
from musicaffect.models.heads import length_mask, masked_max, masked_mean
from musicaffect.models.lstm import reverse_within_length
from musicaffect.models.registry import register_backbone


@dataclass
class CRNNConfig:
    """Options of the ``crnn`` backbone.

    Attributes
    ----------
    channels : tuple of int
        Output channels of each 3x3 Conv-BN-ReLU-MaxPool block.
    time_pools, freq_pools : tuple of int
        Max-pool sizes along time and frequency after each block (same length as
        ``channels``; ``ceil_mode``).
    proj_dim : int
        Per-step projection of (channels x remaining frequency bins), the recurrent input.
    rnn : {"gru", "lstm"}
    hidden_size : int
        Recurrent units per direction.
    bidirectional : bool
        Add a backward direction (run on each clip reversed within its length).
    embed_dim : int
        Embedding size.
    dropout : float
        Dropout before the recurrent layer and before the embedding.
    """

    channels: tuple[int, ...] = (16, 32, 64)
    time_pools: tuple[int, ...] = (2, 2, 1)
    freq_pools: tuple[int, ...] = (4, 4, 2)
    proj_dim: int = 128
    rnn: Literal["gru", "lstm"] = "gru"
    hidden_size: int = 96
    bidirectional: bool = True
    embed_dim: int = 128
    dropout: float = 0.3

    def __post_init__(self):
        sizes = [*self.channels, self.proj_dim, self.hidden_size, self.embed_dim]
        if not self.channels or min(sizes) < 1:
            raise ValueError("channels, proj_dim, hidden_size and embed_dim must be positive")
        if not len(self.channels) == len(self.time_pools) == len(self.freq_pools):
            raise ValueError("channels, time_pools and freq_pools must have the same length")
        if min(*self.time_pools, *self.freq_pools) < 1:
            raise ValueError("pool sizes must be positive")
        if self.rnn not in ("gru", "lstm"):
            raise ValueError(f"rnn must be 'gru' or 'lstm', got {self.rnn!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


class _ConvBlock(nn.Module):
    """3x3 Conv-BN-(time mask)-ReLU then a (time, freq) max-pool; updates the lengths."""

    def __init__(self, in_ch: int, out_ch: int, time_pool: int, freq_pool: int):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(out_ch)
        self.act = nn.ReLU(inplace=True)
        self.pool = MaskedPool(time_pool, freq_pool)

    def forward(self, h: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.act(zero_padding_(self.bn(self.conv(h)), lengths))
        return self.pool(h, lengths)


@register_backbone("crnn", CRNNConfig)
class CRNNBackbone(nn.Module):
    """Conv front-end + GRU/LSTM over time + masked mean/max pooling: (B, T, F) -> (B, D)."""

    def __init__(self, *, n_features: int, config: CRNNConfig):
        super().__init__()
        self.config = config
        self.n_features = n_features
        blocks = []
        in_ch = 1
        for ch, tp, fp in zip(config.channels, config.time_pools, config.freq_pools):
            blocks.append(_ConvBlock(in_ch, ch, tp, fp))
            in_ch = ch
        self.blocks = nn.ModuleList(blocks)
        n_bins = n_features
        for fp in config.freq_pools:
            n_bins = math.ceil(n_bins / fp)
        self.proj = nn.Sequential(nn.Linear(in_ch * n_bins, config.proj_dim),
                                  nn.ReLU(inplace=True))
        self.dropout = nn.Dropout(config.dropout)
        cls = nn.GRU if config.rnn == "gru" else nn.LSTM
        self.rnn_fwd = cls(config.proj_dim, config.hidden_size, batch_first=True)
        self.rnn_bwd = (cls(config.proj_dim, config.hidden_size, batch_first=True)
                        if config.bidirectional else None)
        rnn_dim = config.hidden_size * (2 if config.bidirectional else 1)
        self.embed = nn.Sequential(nn.Linear(2 * rnn_dim, config.embed_dim),
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
        h = x.unsqueeze(1)                                              # (B, 1, T, F)
        for block in self.blocks:
            h, lengths = block(h, lengths)                              # (B, C, T', F')
        h = self.proj(h.transpose(1, 2).flatten(2))                     # (B, T', proj_dim)
        h = self.dropout(h)
        # the forward direction: padding comes after every valid step, so it never reaches one
        out, _ = self.rnn_fwd(h)                                        # (B, T', H)
        if self.rnn_bwd is not None:
            back, _ = self.rnn_bwd(reverse_within_length(h, lengths))
            out = torch.cat([out, reverse_within_length(back, lengths)], dim=-1)  # (B, T', 2H)
        mask = length_mask(lengths, out.shape[1])
        pooled = torch.cat([masked_mean(out, mask), masked_max(out, mask)], dim=-1)
        return self.embed(self.dropout(pooled))                         # (B, embed_dim)
