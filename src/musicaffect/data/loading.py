"""What a run reads: the train/validation split of a labelled folder, batches and loaders.

:func:`prepare_data` indexes a run's training folder and splits it (seeded, grouped where the
data has groups) into a :class:`RunData`; :class:`EpochBatchSampler` orders its batches as a
pure function of ``(seed, epoch)``; :func:`make_loader` is the DataLoader with the project's
collate. Training, evaluation and the classical models all read their data through here.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from torch.utils.data import DataLoader, Sampler, Subset

from musicaffect.data.labels import CLASSES
from musicaffect.errors import ConfigError, DataError
from musicaffect.tasks import legacy_specs, multiclass_task


class EpochBatchSampler(Sampler[list[int]]):
    """Batches of dataset indices; the order is a pure function of ``(seed, epoch)``.

    With ``world > 1`` every global batch of ``batch_size * world`` indices is dealt out
    round-robin (rank ``r`` takes positions ``r, r + world, ...``), so a DDP run with
    ``batch_size`` per process sees, per step, exactly the clips of the single-process run
    with ``batch_size * world``. Incomplete global batches are dropped when ``world > 1``
    (every rank must take the same number of steps).

    With ``weights`` (one per index, class-balanced sampling), each epoch draws
    ``len(indices)`` indices with replacement with these probabilities instead of a
    permutation; still a pure function of ``(seed, epoch)``.
    """

    def __init__(self, indices, *, batch_size: int, seed: int, shuffle: bool = True,
                 rank: int = 0, world: int = 1, max_batches: int | None = None,
                 weights=None):
        self.indices = np.asarray(indices, dtype=np.int64)
        self.weights = None
        if weights is not None:
            w = np.asarray(weights, dtype=np.float64)
            if w.shape != self.indices.shape or (w < 0).any() or w.sum() <= 0:
                raise ValueError("sampling weights must be >= 0, one per index, not all 0")
            self.weights = w / w.sum()
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.rank = rank
        self.world = world
        self.max_batches = max_batches
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _global_batches(self) -> list[np.ndarray]:
        order = self.indices
        if self.shuffle and self.weights is not None:
            order = np.random.default_rng([self.seed, self.epoch]).choice(
                order, size=order.size, replace=True, p=self.weights)
        elif self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(order)
        g = self.batch_size * self.world
        batches = [order[i:i + g] for i in range(0, len(order), g)]
        if self.world > 1 and batches and len(batches[-1]) < g:
            batches = batches[:-1]
        if self.max_batches is not None:
            batches = batches[:self.max_batches]
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        for gb in self._global_batches():
            yield gb[self.rank::self.world].tolist()

    def __len__(self) -> int:
        return len(self._global_batches())


@dataclass
class RunData:
    """The datasets of a run: train/validation subsets of one labelled folder."""

    dataset: object                 # SpectrogramDataset over the whole train split
    train_idx: np.ndarray
    val_idx: np.ndarray
    n_features: int
    tasks: list[str]
    info: dict = field(default_factory=dict)
    vocab: object = None            # musicaffect.data.vocab.Vocabulary of the data root
    specs: dict = field(default_factory=dict)   # task -> musicaffect.tasks.TaskSpec

    @property
    def train(self) -> Subset:
        return Subset(self.dataset, self.train_idx.tolist())

    @property
    def val(self) -> Subset:
        return Subset(self.dataset, self.val_idx.tolist())


def task_sizes(tasks, classes=CLASSES) -> dict[str, int]:
    """Output size of each task's head (``model.tasks``): ``tasks`` a name -> TaskSpec mapping
    (its ``n_outputs``), or plain names read as the lab's (genre: the number of ``classes``;
    a target: 1)."""
    specs = tasks if isinstance(tasks, Mapping) else legacy_specs(tasks, classes=classes)
    return {t: s.n_outputs for t, s in specs.items()}


def prepare_data(cfg, data_root: str | Path) -> RunData:
    """Index the run's training folder and split it into train/validation (seeded).

    ``cfg`` is a :class:`musicaffect.config.RunConfig` (its ``data`` and ``loss.bounded``).
    """
    from musicaffect.data.dataset import SpectrogramDataset
    from musicaffect.data.splits import train_val_split
    from musicaffect.data.vocab import load_groups, load_vocabulary

    d = cfg.data
    vocab = load_vocabulary(data_root, genre_map=getattr(d, "genre_map", None))
    ds = SpectrogramDataset(data_root, dataset=d.dataset, rate=d.rate, split="train",
                            view=d.view, tasks=tuple(d.tasks), cache_dir=d.cache_dir,
                            use_cache=d.use_cache, skip_bad=d.skip_bad, vocab=vocab)
    n = len(ds)
    if n < 2:
        raise DataError(f"the training split has {n} usable clip(s); at least 2 are needed "
                        "(check the label file and --skip-bad warnings)",
                        path=Path(data_root))
    specs = vocab.task_specs(ds.tasks, bounded=cfg.loss.bounded)
    for t, spec in specs.items():
        if spec.bounded:
            lo, hi = vocab.ranges.get(t, (0.0, 1.0))
            if lo < 0.0 or hi > 1.0:
                raise ConfigError(f"loss.bounded squashes outputs into [0, 1], but target {t} "
                                  f"spans [{lo:g}, {hi:g}] in this data: set loss.bounded=false "
                                  "or rescale the labels to [0, 1]")
    class_task = multiclass_task(specs)
    # a vocabulary of one class is refused where its spec is made (data.vocab)
    found = np.unique(ds.labels(class_task)) if class_task else np.arange(2)
    found = found[found >= 0]   # -100: a multitask clip without genre
    if len(found) == 1:
        raise DataError(f"the training clips hold a single genre class ({vocab.classes[found[0]]}"
                        "); a genre classifier needs at least two: add clips of another "
                        "genre, or train an affect preset", path=Path(data_root))
    stratify = ds.labels(class_task) if (d.stratify and class_task) else None
    # clips of one group (song, artist, source file) stay on one side of the split
    by_id = load_groups(data_root, vocab)
    groups = np.array([by_id.get(r.id, f"\0{r.id}") for r in ds.records]) if by_id else None
    train_idx, val_idx = train_val_split(n, val_fraction=d.val_fraction, seed=d.split_seed,
                                         stratify=stratify, groups=groups)
    if len(train_idx) == 0 or len(val_idx) == 0:
        raise DataError(f"the train/validation split of {n} clips left an empty side; "
                        "add clips or change data.val_fraction", path=Path(data_root))
    info = {"dataset": d.dataset, "rate": d.rate, "view": d.view, "n_features": ds.n_features,
            "n_train": int(len(train_idx)), "n_val": int(len(val_idx)),
            "data_root": str(data_root), "grouped_split": groups is not None}
    return RunData(ds, np.asarray(train_idx), np.asarray(val_idx), ds.n_features,
                   list(ds.tasks), info, vocab, specs)


def make_loader(dataset, sampler: Sampler | None, *, batch_size: int = 32,
                num_workers: int = 0, max_length: int | None = None) -> DataLoader:
    """DataLoader with the project's collate (per-batch padding, true lengths)."""
    from functools import partial

    from musicaffect.data.dataset import collate

    fn = partial(collate, max_length=max_length)
    if sampler is not None:
        return DataLoader(dataset, batch_sampler=sampler, collate_fn=fn,
                          num_workers=num_workers, persistent_workers=False)
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=fn,
                      num_workers=num_workers)
