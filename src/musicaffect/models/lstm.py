"""The lab's LSTM over time-major spectrogram frames, with packed sequences (true lengths).

Training and inference run ``nn.LSTM`` on a packed batch, so padded steps are never seen.
While the model is traced, scripted or exported, a graph-friendly path runs the same weights
layer by layer on the padded batch (each backward direction on the clip reversed within its
own length); it gives the same outputs and exports with dynamic batch and time axes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from musicaffect.models.base import is_exporting
from musicaffect.models.heads import length_mask, masked_mean
from musicaffect.models.registry import register_backbone


@dataclass
class LSTMConfig:
    """Options of the ``lstm`` backbone.

    Attributes
    ----------
    hidden_size : int
        Units per direction.
    num_layers : int
        Stacked LSTM layers.
    bidirectional : bool
        Add a backward direction (the embedding doubles).
    dropout : float
        Dropout between stacked layers (ignored with one layer).
    pooling : {"last", "mean"}
        ``"last"`` (the lab's): the last valid step; for a bidirectional LSTM the forward
        direction's last valid step concatenated with the backward direction's output at
        step 0. ``"mean"``: the mean of the outputs over the valid steps.
    impl : {"auto", "packed", "padded"}
        How the padded batch is run; all give the same outputs. ``"packed"``:
        ``pack_padded_sequence`` (the lab's way). ``"padded"``: the whole padded batch, the
        backward direction on each clip reversed within its length; several times faster on
        CPUs, where packed sequences are slow. ``"auto"``: padded on CPU, packed elsewhere.
    """

    hidden_size: int = 128
    num_layers: int = 2
    bidirectional: bool = False
    dropout: float = 0.2
    pooling: Literal["last", "mean"] = "last"
    impl: Literal["auto", "packed", "padded"] = "auto"

    #: parameters that change speed, never outputs (see ``registry.speed_only_params``)
    speed_only: ClassVar[tuple[str, ...]] = ("impl",)

    def __post_init__(self):
        if self.hidden_size < 1 or self.num_layers < 1:
            raise ValueError("hidden_size and num_layers must be positive")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


def reverse_within_length(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each sequence's valid steps, leaving its padding at the end.

    Parameters
    ----------
    x : torch.Tensor [shape=(B, T, D)]
    lengths : torch.Tensor [shape=(B,), int64]

    Returns
    -------
    torch.Tensor [shape=(B, T, D)]
        ``out[b, t] = x[b, lengths[b] - 1 - t]`` for ``t < lengths[b]``, else ``x[b, t]``.
        The operation is its own inverse.
    """
    steps = torch.arange(x.shape[1], device=x.device).unsqueeze(0)      # (1, T)
    last = lengths.unsqueeze(1) - 1                                        # (B, 1)
    index = torch.where(steps <= last, last - steps, steps)               # (B, T)
    return x.gather(1, index.unsqueeze(-1).expand(-1, -1, x.shape[2]))


@register_backbone("lstm", LSTMConfig)
class LSTMBackbone(nn.Module):
    """LSTM encoder: ``(B, T, F)`` frames and lengths -> ``(B, D)`` embedding.

    ``D = hidden_size * (2 if bidirectional else 1)``.
    """

    def __init__(self, *, n_features: int, config: LSTMConfig):
        super().__init__()
        self.config = config
        self.n_features = n_features
        self.lstm = nn.LSTM(
            input_size=n_features,
            hidden_size=config.hidden_size,
            num_layers=config.num_layers,
            batch_first=True,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
            bidirectional=config.bidirectional,
        )
        self.n_directions = 2 if config.bidirectional else 1
        self.out_dim = config.hidden_size * self.n_directions

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """
        Parameters
        ----------
        x : torch.Tensor [shape=(B, T, F)]
        lengths : torch.Tensor [shape=(B,), int64], ``1 <= lengths <= T``

        Returns
        -------
        torch.Tensor [shape=(B, D)]
        """
        impl = self.config.impl
        if impl == "auto":
            impl = "padded" if x.device.type == "cpu" else "packed"
        if is_exporting() or impl == "padded":
            return self.forward_padded(x, lengths)
        return self.forward_packed(x, lengths)

    def forward_packed(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The training path: ``nn.LSTM`` on a packed batch (``enforce_sorted=False``)."""
        B, T, _ = x.shape
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out_packed, (h_n, _) = self.lstm(packed)
        if self.config.pooling == "last":
            # h_n: (layers * directions, B, H) in the batch's original order; the last layer's
            # forward state is its last valid step, the backward state its output at step 0
            if self.n_directions == 2:
                return torch.cat([h_n[-2], h_n[-1]], dim=-1)         # (B, 2H)
            return h_n[-1]                                            # (B, H)
        out, _ = pad_packed_sequence(out_packed, batch_first=True, total_length=T)  # (B, T, D)
        return masked_mean(out, length_mask(lengths.to(out.device), T))

    def _run_layer(self, inp: torch.Tensor, layer: int, *, reverse: bool) -> torch.Tensor:
        """One direction of one layer on a padded batch: (B, T, In) -> (B, T, H)."""
        suffix = f"_l{layer}" + ("_reverse" if reverse else "")
        weights = [getattr(self.lstm, f"{kind}{suffix}")
                   for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
        h0 = inp.new_zeros(1, inp.shape[0], self.config.hidden_size)   # (1, B, H)
        out, _, _ = torch.lstm(inp, (h0, h0), weights, True, 1, 0.0, False, False, True)
        return out

    def forward_padded(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The export path: the same weights on the padded batch, layer by layer.

        Gives the same result as :meth:`forward_packed` (in eval mode): forward directions
        only see padding after the last valid step, and backward directions run on the clip
        reversed within its length.
        """
        T = x.shape[1]
        inp = x                                                       # (B, T, F)
        fwd = bwd = x
        for layer in range(self.config.num_layers):
            if layer > 0 and self.training and self.config.dropout > 0:
                inp = nn.functional.dropout(inp, p=self.config.dropout, training=True)
            fwd = self._run_layer(inp, layer, reverse=False)          # (B, T, H)
            if self.n_directions == 2:
                rev = reverse_within_length(inp, lengths)
                bwd = reverse_within_length(self._run_layer(rev, layer, reverse=True), lengths)
                inp = torch.cat([fwd, bwd], dim=-1)                   # (B, T, 2H)
            else:
                inp = fwd
        if self.config.pooling == "last":
            last = (lengths - 1).view(-1, 1, 1).expand(-1, 1, fwd.shape[2])  # (B, 1, H)
            fwd_last = fwd.gather(1, last).squeeze(1)                 # (B, H)
            if self.n_directions == 2:
                return torch.cat([fwd_last, bwd[:, 0]], dim=-1)       # (B, 2H)
            return fwd_last
        return masked_mean(inp, length_mask(lengths, T))
