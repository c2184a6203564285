"""A lab-style reference for the training benchmark, written the way the course helper and
students write it (independent of the project's data and model code).

- Data: every ``.npy.gz`` (or ``.npy``) file of a folder's train split is gzip-loaded at
  construction, kept as float64 ``(T, F)``, and zero-padded to the longest clip of the folder;
  the true lengths are kept. The split: shuffle the indices with seed 420, the first 20% are
  validation (the helper's rule). Items are ``(features float64 (Tmax, F), label, length)``.
- Models: ``nn.LSTM`` on ``pack_padded_sequence`` (the forward direction's last valid step and
  the backward direction's step 0, then a linear layer), or the lab's CNN (4 x Conv2d ->
  BatchNorm2d -> ReLU -> MaxPool2d on the padded ``(1, Tmax, F)`` image, flatten, linear).
- Training: ``DataLoader(shuffle=True, batch_size=32)``, the batch cast to float32, Adam,
  cross-entropy; no input normalisation, no gradient clipping.

Only the genre vocabulary (the 20 -> 10 class mapping) is shared with the project.
"""

from __future__ import annotations

import csv
import gzip
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from torch.utils.data import DataLoader, Dataset, Subset

from musicaffect.data.labels import class_index, map_genre

VIEWS = {"mel": slice(0, 128), "chroma": slice(128, 140), "fused": slice(0, 140)}


def read_spectrogram(path: Path, view: str) -> np.ndarray:
    """One clip file -> float64 ``(T, F)`` of the view (rows of the (140, T) array)."""
    if path.name.endswith(".gz"):
        with gzip.GzipFile(path, "r") as fh:
            a = np.load(fh)
    else:
        a = np.load(path)
    return np.ascontiguousarray(a[VIEWS[view]].T)


def genre_files(folder: Path, split: str = "train") -> list[tuple[Path, int]]:
    """``(file, class index)`` of the mapped clips listed in ``<folder>/<split>_labels.txt``.

    The label files name the clips differently from the disk; the clip id is the name up to
    its first dot and the file on disk is ``<id>.fused.full.npy(.gz)``.
    """
    out = []
    with open(folder / f"{split}_labels.txt", newline="") as fh:
        rows = csv.reader(fh, delimiter="\t")
        next(rows)
        for name, genre in rows:
            cls = map_genre(genre)
            if cls is None:
                continue
            stem = folder / split / f"{name.split('.')[0]}.fused.full.npy"
            path = stem.with_name(stem.name + ".gz") if not stem.exists() else stem
            out.append((path, class_index(cls)))
    return out


class LabSpectrogramDataset(Dataset):
    """The whole split in memory, float64, zero-padded to the folder's longest clip.

    Attributes
    ----------
    feats : np.ndarray [shape=(N, Tmax, F), dtype=float64]
    labels : np.ndarray [shape=(N,), dtype=int64]
    lengths : np.ndarray [shape=(N,), dtype=int64]
    load_seconds : float
        Time spent reading and padding at construction.
    """

    def __init__(self, folder: str | Path, *, view: str = "mel", split: str = "train"):
        t0 = time.perf_counter()
        files = genre_files(Path(folder), split)
        raw = [read_spectrogram(p, view) for p, _ in files]
        self.lengths = np.array([len(a) for a in raw], dtype=np.int64)
        self.max_length = int(self.lengths.max())
        self.feats = np.zeros((len(raw), self.max_length, raw[0].shape[1]), dtype=np.float64)
        for i, a in enumerate(raw):
            self.feats[i, :len(a)] = a
        del raw
        self.labels = np.array([c for _, c in files], dtype=np.int64)
        self.load_seconds = time.perf_counter() - t0

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return self.feats[i], self.labels[i], self.lengths[i]


def lab_split(n: int, *, val_fraction: float = 0.2, seed: int = 420
              ) -> tuple[list[int], list[int]]:
    """The helper's split: shuffle with ``seed``, the first ``val_fraction`` is validation."""
    idx = list(range(n))
    np.random.seed(seed)
    np.random.shuffle(idx)
    k = int(np.floor(val_fraction * n))
    return idx[k:], idx[:k]


class LabLSTM(nn.Module):
    """``nn.LSTM`` over packed sequences, the last valid step of each direction, a linear."""

    def __init__(self, n_features: int, *, hidden_size: int = 64, num_layers: int = 1,
                 bidirectional: bool = True, n_classes: int = 10):
        super().__init__()
        self.bidirectional = bidirectional
        self.hidden_size = hidden_size
        self.lstm = nn.LSTM(n_features, hidden_size, num_layers=num_layers, batch_first=True,
                            bidirectional=bidirectional)
        self.fc = nn.Linear(hidden_size * (2 if bidirectional else 1), n_classes)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, T, F), (B,) -> (B, n_classes) logits."""
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.lstm(packed)
        out, _ = pad_packed_sequence(out, batch_first=True)          # (B, Tb, D)
        last = (lengths - 1).to(out.device)
        idx = torch.arange(out.shape[0], device=out.device)
        if self.bidirectional:
            fwd = out[idx, last, :self.hidden_size]
            bwd = out[:, 0, self.hidden_size:]
            h = torch.cat([fwd, bwd], dim=-1)
        else:
            h = out[idx, last]
        return self.fc(h)


class LabCNN(nn.Module):
    """4 x (Conv2d -> BatchNorm2d -> ReLU -> MaxPool2d) on ``(1, Tmax, F)``, flatten, MLP."""

    def __init__(self, n_features: int, max_length: int, *,
                 channels: tuple[int, ...] = (16, 32, 64, 128), kernel_size: int = 3,
                 pool_size: int = 3, hidden: int = 128, dropout: float = 0.2,
                 n_classes: int = 10):
        super().__init__()
        layers: list[nn.Module] = []
        in_ch = 1
        t, f = max_length, n_features
        for ch in channels:
            layers += [nn.Conv2d(in_ch, ch, kernel_size, padding=kernel_size // 2),
                       nn.BatchNorm2d(ch), nn.ReLU(), nn.MaxPool2d(pool_size)]
            in_ch = ch
            t, f = t // pool_size, f // pool_size
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(in_ch * t * f, hidden),
                                        nn.ReLU(), nn.Dropout(dropout),
                                        nn.Linear(hidden, n_classes))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, Tmax, F) -> (B, n_classes) logits; ``lengths`` is unused (padding is seen)."""
        return self.classifier(self.features(x.unsqueeze(1)))


def train_batches(model: nn.Module, loader: DataLoader, optimizer, *, device="cpu",
                  max_batches: int | None = None, skip: int = 0) -> dict:
    """The students' training loop over (part of) one epoch; returns timing and loss.

    The first ``skip`` batches are trained on but not timed (warm-up).
    """
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    n_clips, n_batches, total = 0, 0, 0.0
    t0 = time.perf_counter()
    for b, (x, y, lengths) in enumerate(loader):
        if max_batches is not None and b >= skip + max_batches:
            break
        if b == skip:
            t0 = time.perf_counter()
            n_clips, n_batches, total = 0, 0, 0.0
        x = x.float().to(device)
        y = y.to(device)
        optimizer.zero_grad()
        loss = loss_fn(model(x, lengths), y)
        loss.backward()
        optimizer.step()
        total += loss.item() * len(y)
        n_clips += len(y)
        n_batches += 1
    return {"seconds": time.perf_counter() - t0, "clips": n_clips, "batches": n_batches,
            "train_loss": total / max(n_clips, 1)}


def build_reference(folder: str | Path, *, model: str, view: str = "mel", seed: int = 42,
                    batch_size: int = 32, lr: float = 1e-3, hidden_size: int = 64,
                    num_layers: int = 1, bidirectional: bool = True):
    """Dataset (eager load), train loader (shuffled train part) and model + Adam.

    Returns
    -------
    dataset : LabSpectrogramDataset
    loader : DataLoader over the train part of the split
    net : nn.Module
    optimizer : torch.optim.Adam
    """
    torch.manual_seed(seed)
    ds = LabSpectrogramDataset(folder, view=view)
    train_idx, _ = lab_split(len(ds))
    loader = DataLoader(Subset(ds, train_idx), batch_size=batch_size, shuffle=True)
    n_features = ds.feats.shape[2]
    if model == "lstm":
        net: nn.Module = LabLSTM(n_features, hidden_size=hidden_size, num_layers=num_layers,
                                 bidirectional=bidirectional)
    elif model == "cnn":
        net = LabCNN(n_features, ds.max_length)
    else:
        raise ValueError(f"unknown reference model {model!r}: use 'lstm' or 'cnn'")
    return ds, loader, net, torch.optim.Adam(net.parameters(), lr=lr)
