"""The dataset layer: layout and labels, arrays, the clip cache, the PyTorch dataset, splits,
feature statistics and the synthetic sample-data generator.

Importing this package does not import torch; :class:`SpectrogramDataset` and
:func:`collate` are loaded on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from musicaffect.data.arrays import VIEW_ROWS, load_array, n_features, select_view
from musicaffect.data.labels import CLASSES, GENRES20, TARGETS
from musicaffect.data.layout import (
    FOLDERS,
    ClipRecord,
    folder_name,
    index_clips,
    is_synthetic,
    write_skipped,
)
from musicaffect.data.sample import write_sample_dataset
from musicaffect.data.splits import train_val_split
from musicaffect.data.vocab import resolve_targets

if TYPE_CHECKING:
    from musicaffect.data.cache import ClipStore
    from musicaffect.data.dataset import SpectrogramDataset, collate
    from musicaffect.data.normalize import feature_stats

_LAZY = {
    "ClipStore": "musicaffect.data.cache",
    "SpectrogramDataset": "musicaffect.data.dataset",
    "collate": "musicaffect.data.dataset",
    "feature_stats": "musicaffect.data.normalize",
}

__all__ = [
    "CLASSES", "GENRES20", "TARGETS", "FOLDERS", "VIEW_ROWS", "ClipRecord", "ClipStore",
    "SpectrogramDataset", "collate", "feature_stats", "folder_name", "index_clips",
    "is_synthetic", "load_array", "n_features", "resolve_targets", "select_view",
    "train_val_split", "write_sample_dataset", "write_skipped",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
