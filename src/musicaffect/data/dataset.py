"""The PyTorch dataset over one folder and split, and the padding collate function."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from musicaffect.data.arrays import VIEW_ROWS, load_array, n_features, peek_shape
from musicaffect.data.cache import ClipStore
from musicaffect.data.labels import GENRE_TASK
from musicaffect.data.layout import ClipRecord, genre_labels_by_id, index_clips, split_dir
from musicaffect.data.vocab import Vocabulary, load_vocabulary
from musicaffect.errors import ConfigError, DataError

log = logging.getLogger(__name__)


def resolve_tasks(tasks: str | int | Iterable[str | int], *, dataset: str,
                  vocab: Vocabulary | None = None) -> tuple[str, ...]:
    """Normalise a task selection against the data's vocabulary (default: the lab's):
    ``"genre"``, target names, column indices (1, 2, 3 ...), ``"all"`` (every regression
    target) or a sequence of these."""
    from musicaffect.data.vocab import lab_vocabulary

    vocab = vocab if vocab is not None else lab_vocabulary()
    out = vocab.resolve_tasks(tasks)
    specs = vocab.task_specs(out)
    has_classes = any(s.is_multiclass for s in specs.values())
    if dataset == "genre" and (len(out) != 1 or not has_classes):
        raise ConfigError(f"the genre dataset only has genre labels, not {out}: use "
                          f"dataset='multitask' for {', '.join(vocab.targets) or 'targets'}")
    if dataset == "multitask" and has_classes and vocab.source == "kaggle":
        raise ConfigError("the Kaggle multitask dataset has no genre labels: use "
                          "dataset='genre' (a data root made by build-dataset has them for "
                          "clips labelled with both)")
    return tuple(out)


class SpectrogramDataset(Dataset):
    """Clips of one folder and split as time-major float32 tensors with their labels.

    Parameters
    ----------
    root : str or os.PathLike
        Data root holding the four dataset folders.
    dataset : {"genre", "multitask"}
    rate : {"full", "beat"}
        Full frame rate or beat-synchronous.
    split : {"train", "test"}
    view : {"mel", "chroma", "fused"}
        Rows 0-127, 128-139 or all 140.
    tasks : str or sequence
        ``("genre",)`` for genre data; regression targets by name or column index
        (1 valence, 2 energy, 3 danceability; ``"all"``) for multitask data.
    cache_dir : str or os.PathLike, optional
        Clip cache folder (default ``$MUSICAFFECT_CACHE`` or ``~/.cache/musicaffect``).
    use_cache : bool
        Read through the memory-mapped :class:`~musicaffect.data.cache.ClipStore` (built
        on first use). Without it every item loads its file.
    skip_bad : bool
        Skip (and list in ``.skipped``) bad label rows and unreadable clips instead of
        raising :class:`DataError`. Without the cache this loads every clip once to check it.
    records : list of ClipRecord, optional
        Use these records instead of indexing the label files.

    Attributes
    ----------
    records : list of ClipRecord
    ids : list of str
    lengths : np.ndarray [shape=(n,), dtype=int64]
        Frames T of each clip.
    n_features : int
    skipped : list of (str, str)
        ``(path, reason)`` of what ``skip_bad`` skipped.

    Notes
    -----
    ``ds[i]`` is ``{"x": (T, F) float32 tensor, "length": int, "y": {task: scalar tensor},
    "id": str}``; genre labels are int64 class indices (0..9), regression labels float32.
    Unlabelled clips (multitask test split) have ``y == {}``.
    """

    def __init__(self, root: str | os.PathLike, *, dataset: str = "genre", rate: str = "full",
                 split: str = "train", view: str = "mel",
                 tasks: str | int | Sequence[str | int] = (GENRE_TASK,),
                 cache_dir: str | os.PathLike | None = None, use_cache: bool = True,
                 skip_bad: bool = False, records: Sequence[ClipRecord] | None = None,
                 vocab: Vocabulary | None = None, genre_map: str | None = None):
        self.root = root
        self.dataset, self.rate, self.split, self.view = dataset, rate, split, view
        self.n_features = n_features(view)
        self._rows = VIEW_ROWS[view]
        self.vocab = vocab if vocab is not None else load_vocabulary(root, genre_map=genre_map)
        self.tasks = resolve_tasks(tasks, dataset=dataset, vocab=self.vocab)
        #: the label encoding of each task (class index or float), from its spec
        self.specs = self.vocab.task_specs(self.tasks)
        self.skipped: list[tuple[str, str]] = []
        if records is None:
            records = index_clips(root, dataset=dataset, rate=rate, split=split,
                                  skip_bad=skip_bad, mapped=True, skipped=self.skipped,
                                  vocab=self.vocab)
            if dataset == "multitask" and any(s.is_multiclass for s in self.specs.values()):
                records = self._with_genres(records, skip_bad)
        records = list(records)
        self._store: ClipStore | None = None
        if use_cache:
            source = split_dir(root, dataset=dataset, rate=rate, split=split)
            self._store = ClipStore(source, cache_dir=cache_dir)
            records = self._drop_bad(records, skip_bad, self._store.bad)
            lengths = [self._store.length(r.id) for r in records]
        else:
            records, lengths = self._check_files(records, skip_bad)
        self.records: list[ClipRecord] = records
        self.ids: list[str] = [r.id for r in records]
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self._y = self._label_tensors()

    def _with_genres(self, records: list[ClipRecord], skip_bad: bool) -> list[ClipRecord]:
        """Multitask clips of a built root with the genre of the same clip id (genre and
        targets trained together); clips without a genre get the ignored label -100."""
        from dataclasses import replace

        raw = genre_labels_by_id(self.root, rate=self.rate, split=self.split,
                                 skip_bad=skip_bad, vocab=self.vocab)
        out = []
        for r in records:
            g = raw.get(r.id)
            out.append(replace(r, genre20=g, genre10=self.vocab.map_genre(g) if g else None))
        if not any(r.genre10 for r in out):
            raise DataError("no clip of the multitask folder has a genre label: train genre "
                            "and targets on clips labelled with both", path=self.root)
        return out

    def _drop_bad(self, records: list[ClipRecord], skip_bad: bool,
                  bad: dict[str, str]) -> list[ClipRecord]:
        kept = []
        for r in records:
            if r.id in bad:
                if not skip_bad:
                    raise DataError(bad[r.id].removeprefix(f"{r.path}: "), path=r.path)
                log.warning("skipped: %s", bad[r.id])
                self.skipped.append((str(r.path), bad[r.id]))
                continue
            kept.append(r)
        return kept

    def _check_files(self, records: list[ClipRecord],
                     skip_bad: bool) -> tuple[list[ClipRecord], list[int]]:
        kept, lengths = [], []
        for r in records:
            try:
                t = load_array(r.path).shape[1] if skip_bad else peek_shape(r.path)[-1]
            except DataError as err:
                if not skip_bad:
                    raise
                log.warning("skipped: %s", err)
                self.skipped.append((str(r.path), str(err)))
                continue
            kept.append(r)
            lengths.append(int(t))
        return kept, lengths

    def _label_tensors(self) -> list[dict[str, torch.Tensor]]:
        if self.dataset == "multitask" and not any(r.targets for r in self.records):
            return [{} for _ in self.records]
        out = []
        for r in self.records:
            y: dict[str, torch.Tensor] = {}
            for task, spec in self.specs.items():
                if spec.is_multiclass and r.genre10 is None and self.dataset != "multitask":
                    raise DataError(f"clip {r.id} has genre {r.genre20!r}, which the "
                                    "genre mapping drops: index the clips with "
                                    "mapped=True", path=r.path)
                # multiclass: the class index (-100, ignored, for a multitask clip without
                # genre); a target: its float value
                y[task] = torch.tensor(spec.encode(r.genre10 if spec.is_multiclass
                                                   else r.targets[task]),
                                       dtype=getattr(torch, spec.label_dtype))
            out.append(y)
        return out

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> dict[str, Any]:
        r = self.records[i]
        if self._store is not None:
            x = self._store.get(r.id, rows=self._rows)  # (T, F)
        else:
            x = np.ascontiguousarray(load_array(r.path)[self._rows].T)  # (F, T) -> (T, F)
        return {"x": torch.from_numpy(x), "length": int(x.shape[0]), "y": self._y[i],
                "id": r.id}

    def labels(self, task: str) -> np.ndarray:
        """Labels of every clip for one task: int64 class indices for ``"genre"`` (-100 for a
        multitask clip without genre), float32 values for a regression target; shape (n,)."""
        spec = self.specs.get(task)
        if spec is not None and spec.is_multiclass:
            return np.array([spec.encode(r.genre10 or None) for r in self.records],
                            dtype=np.int64)
        if task in self.vocab.targets and self.dataset == "multitask":
            if any(not r.targets for r in self.records):
                raise ConfigError(f"the {self.split} split of the multitask dataset has no "
                                  "labels")
            return np.array([r.targets[task] for r in self.records], dtype=np.float32)
        raise ConfigError(f"the {self.dataset} dataset has no {task!r} labels")

    def __repr__(self) -> str:
        return (f"SpectrogramDataset(dataset={self.dataset!r}, rate={self.rate!r}, "
                f"split={self.split!r}, view={self.view!r}, tasks={self.tasks}, "
                f"n={len(self)})")


def collate(batch: Sequence[dict[str, Any]], *, max_length: int | None = None
            ) -> dict[str, Any]:
    """Zero-pad a list of dataset items into a batch.

    Parameters
    ----------
    batch : sequence of dict
        Items of :class:`SpectrogramDataset`.
    max_length : int, optional
        Pad or truncate every clip to this many frames (the lab helper's way; the first
        ``max_length`` frames are kept). Default: pad to the longest clip of the batch.

    Returns
    -------
    dict
        ``x`` : (B, T_max, F) float32, ``lengths`` : (B,) int64 (true lengths, at most
        ``max_length``), ``y`` : {task: (B,)}, ``ids`` : list of str.
    """
    if not batch:
        raise ValueError("collate got an empty batch")
    lengths = torch.tensor([int(item["x"].shape[0]) for item in batch], dtype=torch.int64)
    if max_length is not None:
        if max_length < 1:
            raise ConfigError(f"max_length must be a positive number of frames, got {max_length}")
        lengths = lengths.clamp(max=max_length)
        t_max = int(max_length)
    else:
        t_max = int(lengths.max())
    n_feat = batch[0]["x"].shape[1]
    x = torch.zeros(len(batch), t_max, n_feat, dtype=batch[0]["x"].dtype)  # (B, T_max, F)
    for b, item in enumerate(batch):
        t = int(lengths[b])
        x[b, :t] = item["x"][:t]
    keys = batch[0]["y"].keys()
    y = {k: torch.stack([item["y"][k] for item in batch]) for k in keys}
    return {"x": x, "lengths": lengths, "y": y, "ids": [item["id"] for item in batch]}


class RandomWindows(Dataset):
    """Training view of a dataset: one random window of ``frames`` frames per clip and epoch.

    ``ds[i]`` is the item ``base[i]`` with ``x`` cut to the window
    :func:`musicaffect.data.windows.random_window_start` picks for ``(seed, epoch, i)`` (a clip
    not longer than a window is returned whole). Indices are those of ``base``, so the
    window of a clip does not depend on the batch order or on which process reads it. Call
    :meth:`set_epoch` before each epoch (DataLoader workers are started afterwards, so they see
    it).

    Parameters
    ----------
    base : Dataset
        Items as :class:`SpectrogramDataset` gives them (``x`` of shape (T, F)).
    frames : int
        Window length in frames.
    seed : int
        The run's seed.
    """

    def __init__(self, base, frames: int, *, seed: int):
        from musicaffect.data.windows import check_window

        self.base = base
        self.frames, _ = check_window(frames)
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> dict[str, Any]:
        from musicaffect.data.windows import cut, random_window_start

        item = self.base[i]
        x = item["x"]
        start = random_window_start(int(x.shape[0]), self.frames, seed=self.seed,
                                    epoch=self.epoch, index=int(i))
        x = cut(x, start, self.frames)
        return {**item, "x": x, "length": int(x.shape[0]), "start": start}
