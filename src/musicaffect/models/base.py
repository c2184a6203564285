"""The model wrapper: input normalisation -> padding mask -> backbone -> one head per task.

:class:`MusicModel` is what the trainer, the evaluator, ``predict`` and ``export`` use; it
knows nothing of optimisers, devices or files. Its output is a dict: the embedding plus the
raw output of every task head (logits for classification, a real value for regression; no
softmax or sigmoid).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from musicaffect.errors import ConfigError
from musicaffect.models.heads import length_mask, make_head

#: smallest standard deviation used to normalise a feature (constant features stay finite)
STD_FLOOR = 1e-6


@dataclasses.dataclass
class WrapperConfig:
    """Options of the :class:`MusicModel` wrapper, accepted in ``build_model`` params.

    Attributes
    ----------
    head_dropout : float
        Dropout on the embedding before the heads.
    freq_mask, time_mask : int
        SpecAugment-style training augmentation: each clip gets one band of up to
        ``freq_mask`` feature bins and one span of up to ``time_mask`` steps (at most a quarter
        of its length) set to the feature mean. 0 = off; never applied in eval mode.
    mask_bands : int
        Number of such feature bands and of such time spans per clip (SpecAugment uses 2).
    """

    head_dropout: float = 0.0
    freq_mask: int = 0
    time_mask: int = 0
    mask_bands: int = 1

    def __post_init__(self):
        if not 0.0 <= self.head_dropout < 1.0:
            raise ValueError(f"head_dropout must be in [0, 1), got {self.head_dropout}")
        if self.freq_mask < 0 or self.time_mask < 0:
            raise ValueError("freq_mask and time_mask must be >= 0")
        if self.mask_bands < 1:
            raise ValueError(f"mask_bands must be >= 1, got {self.mask_bands}")


def is_exporting() -> bool:
    """True while the model is being traced, scripted or exported (ONNX / torch.export).

    Backbones use it to switch to a graph-friendly code path that gives the same outputs.
    """
    return bool(torch.jit.is_scripting() or torch.jit.is_tracing()
                or torch.onnx.is_in_onnx_export() or torch.compiler.is_exporting())


class MusicModel(nn.Module):
    """A backbone with input normalisation and one head per task.

    Parameters
    ----------
    backbone : nn.Module
        Maps ``(x: (B, T, F), lengths: (B,))`` to ``(B, D)``; has ``out_dim = D`` and
        ``n_features = F`` (registered backbones also carry ``registry_name`` and ``config``).
    tasks : dict[str, int]
        Task -> output size: ``C > 1`` gives a classification head ``Linear(D, C)``
        (logits), ``1`` a regression head ``Linear(D, 1)`` squeezed to ``(B,)``.
    head_dropout : float
        Dropout on the embedding before the heads (the returned embedding is not dropped).
    freq_mask, time_mask, mask_bands : int
        Training-time masking of the normalised input (see :class:`WrapperConfig`).

    Attributes
    ----------
    mean, std : torch.Tensor [shape=(F,)]
        Input normalisation buffers (identity by default), saved in the ``state_dict``.
    """

    def __init__(self, backbone: nn.Module, tasks: Mapping[str, int], *,
                 head_dropout: float = 0.0, freq_mask: int = 0, time_mask: int = 0,
                 mask_bands: int = 1):
        super().__init__()
        self.backbone = backbone
        self.n_features = int(backbone.n_features)
        self.embedding_dim = int(backbone.out_dim)
        self.head_dropout = float(head_dropout)
        self.dropout = nn.Dropout(self.head_dropout)
        self.freq_mask = int(freq_mask)
        self.time_mask = int(time_mask)
        self.mask_bands = int(mask_bands)
        self.register_buffer("mean", torch.zeros(self.n_features))
        self.register_buffer("std", torch.ones(self.n_features))
        self._backbone_frozen = False
        self.heads = nn.ModuleDict()
        self._tasks: dict[str, int] = {}
        self.replace_heads(tasks)

    @property
    def tasks(self) -> dict[str, int]:
        """Task -> output size of the current heads."""
        return dict(self._tasks)

    def replace_heads(self, tasks: Mapping[str, int]) -> None:
        """Replace all heads with freshly initialised ones; the backbone is kept (transfer).

        Parameters
        ----------
        tasks : dict[str, int]
            Task -> output size, as in the constructor.
        """
        if not tasks:
            raise ConfigError("a model needs at least one task head")
        ref = self.mean
        heads = nn.ModuleDict()
        for task, size in tasks.items():
            if task == "embedding":
                raise ConfigError("'embedding' is reserved for the model's embedding output")
            heads[task] = make_head(self.embedding_dim, int(size)).to(device=ref.device)
        self.heads = heads
        self._tasks = {task: int(size) for task, size in tasks.items()}

    def freeze_backbone(self, flag: bool = True) -> None:
        """Freeze (or unfreeze) the backbone's parameters; heads stay trainable.

        A frozen backbone also stays in eval mode when ``train()`` is called, so its
        BatchNorm statistics and dropout do not change during fine-tuning.
        """
        self._backbone_frozen = bool(flag)
        for p in self.backbone.parameters():
            p.requires_grad_(not flag)
        self.train(self.training)

    @property
    def backbone_frozen(self) -> bool:
        return self._backbone_frozen

    def train(self, mode: bool = True) -> MusicModel:
        super().train(mode)
        if self._backbone_frozen:
            self.backbone.eval()
        return self

    def set_normalization(self, mean: Any, std: Any) -> None:
        """Set the per-feature input normalisation ``(x - mean) / std``.

        Parameters
        ----------
        mean, std : array-like [shape=(F,)]
            Statistics fitted on the training split. ``std`` is floored at
            :data:`STD_FLOOR`.
        """
        mean_t = torch.as_tensor(np.asarray(mean, dtype=np.float32))
        std_t = torch.as_tensor(np.asarray(std, dtype=np.float32))
        shape = (self.n_features,)
        if tuple(mean_t.shape) != shape or tuple(std_t.shape) != shape:
            raise ConfigError(f"normalisation statistics must have shape {shape}, got mean "
                              f"{tuple(mean_t.shape)} and std {tuple(std_t.shape)}")
        if not (torch.isfinite(mean_t).all() and torch.isfinite(std_t).all()):
            raise ConfigError("normalisation statistics contain NaN or inf values")
        self.mean.copy_(mean_t)
        self.std.copy_(std_t.clamp_min(STD_FLOOR))

    def model_args(self) -> dict[str, Any]:
        """Constructor arguments: ``build_model(**model.model_args())`` rebuilds this model.

        Returns
        -------
        dict
            ``name`` (registry key), ``params`` (all backbone and wrapper options; plain
            lists, no tuples), ``n_features`` and ``tasks``.
        """
        from musicaffect.typecheck import to_plain

        name = getattr(self.backbone, "registry_name", None)
        config = getattr(self.backbone, "config", None)
        if name is None or config is None:
            raise ConfigError(f"backbone {type(self.backbone).__name__} is not registered; "
                              "register it with register_backbone to save or rebuild it")
        params = to_plain(dataclasses.asdict(config))
        params.update({f.name: getattr(self, f.name) for f in dataclasses.fields(WrapperConfig)})
        return {"name": name, "params": params, "n_features": self.n_features,
                "tasks": self.tasks}

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> dict[str, torch.Tensor]:
        """Run the network on a padded, time-major batch.

        Parameters
        ----------
        x : torch.Tensor [shape=(B, T, F), float32]
            Features, zero- (or anything-) padded after each clip's length.
        lengths : torch.Tensor [shape=(B,), int64]
            True lengths (``1 <= lengths[b] <= T``).

        Returns
        -------
        dict[str, torch.Tensor]
            ``"embedding"``: (B, D); each classification task: (B, C) logits; each
            regression task: (B,).
        """
        if not is_exporting():
            if x.dim() != 3 or x.shape[2] != self.n_features:
                raise ValueError(f"expected x of shape (B, T, {self.n_features}), "
                                 f"got {tuple(x.shape)}")
            if lengths.shape != (x.shape[0],):
                raise ValueError(f"expected lengths of shape ({x.shape[0]},), "
                                 f"got {tuple(lengths.shape)}")
            if x.shape[0] and int(lengths.max()) > x.shape[1]:
                raise ValueError(f"a length ({int(lengths.max())}) exceeds the padded "
                                 f"time axis ({x.shape[1]})")
        lengths = lengths.to(device=x.device, dtype=torch.long).clamp(min=1)
        mask = length_mask(lengths, x.shape[1])                 # (B, T)
        x = (x - self.mean) / self.std                          # (B, T, F)
        if self.training and (self.freq_mask > 0 or self.time_mask > 0):
            for _ in range(self.mask_bands):
                mask = mask & ~_random_band(lengths, x.shape[1], width=self.time_mask,
                                            quarter=True)
                x = x.masked_fill(_random_band(lengths.new_full(lengths.shape, x.shape[2]),
                                               x.shape[2], width=self.freq_mask).unsqueeze(1),
                                  0.0)
        x = x.masked_fill(~mask.unsqueeze(-1), 0.0)
        emb = self.backbone(x, lengths)                          # (B, D)
        out = {"embedding": emb}
        z = self.dropout(emb)
        for task, head in self.heads.items():
            out[task] = head(z)
        return out


def _random_band(sizes: torch.Tensor, n: int, *, width: int, quarter: bool = False) -> torch.Tensor:
    """One random band per row: (B, n) bool, True on ``w`` consecutive entries.

    ``w`` is uniform in ``[0, width]`` (capped at ``sizes // 4`` when ``quarter``) and the band
    lies inside ``[0, sizes[b])``.
    """
    steps = torch.arange(n, device=sizes.device).unsqueeze(0)           # (1, n)
    if width <= 0:
        return torch.zeros(sizes.shape[0], n, dtype=torch.bool, device=sizes.device)
    cap = sizes // 4 if quarter else sizes
    w = (torch.rand(sizes.shape, device=sizes.device) * (torch.clamp(cap, max=width) + 1))
    w = w.long()                                                         # (B,)
    start = (torch.rand(sizes.shape, device=sizes.device) * (sizes - w + 1)).long()
    start, w = start.unsqueeze(1), w.unsqueeze(1)                        # (B, 1)
    return (steps >= start) & (steps < start + w)
