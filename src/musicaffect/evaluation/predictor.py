"""One inference path for every command that predicts: ``evaluate``, ``submit``, ``predict``,
``cv`` and the lab's activation maps.

A :class:`Predictor` is built from one or several runs: deep-model run folders or ``.pt``
checkpoints, classical-model run folders and ensemble folders: any folder or file a
registered model family recognises (:mod:`musicaffect.families.registry`). Each model becomes a
*member* (:class:`~musicaffect.families.base.Member`); an ensemble is expanded into its
weighted members. The Predictor loads every member once, chooses the device once, builds each
member's dataset with the rate and view it was trained on, and returns per-clip genre
probabilities and regression values (deep models: raw outputs from
:func:`musicaffect.evaluation.inference.predict_outputs`, then each task's
:meth:`~musicaffect.tasks.TaskSpec.transform`). With several members, the genre
probabilities of the members that predict genre, and the values of the members that predict a
target, are averaged (weighted when the ensemble gives weights).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from musicaffect.data.labels import CLASSES
from musicaffect.data.vocab import vocabulary_of_checkpoint
from musicaffect.errors import CheckpointError, ConfigError, DataError
from musicaffect.families.registry import (  # noqa: F401  (what callers find here)
    is_model_path,
    load_members,
    model_file,
)
from musicaffect.features.params import checkpoint_feature_params
from musicaffect.models.predictions import Predictions, vocab_attributes
from musicaffect.tasks import multiclass_task

log = logging.getLogger(__name__)


def select_device(device=None):
    """The torch device to predict on: ``device`` if given, else CUDA when available, else
    the CPU. The one place where inference chooses a device."""
    import torch

    if isinstance(device, torch.device):
        return device
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


# --------------------------------------------------------------------------- members

class DeepMember:
    """A PyTorch model from a musicaffect checkpoint (``.pt`` or run folder)."""

    kind = "deep"

    def __init__(self, path: str | os.PathLike, *, which: str = "best"):
        from musicaffect.config import config_from_dict
        from musicaffect.models.checkpoint import load_model, task_specs

        self.model, self.ckpt = load_model(path, which=which)
        self.cfg = config_from_dict(self.ckpt["config"])
        self.name = self.cfg.name
        self.path = str(self.ckpt["path"])
        # the run folder owning checkpoints/, else the folder of a loose .pt file
        parent = Path(self.path).parent
        self.run_dir = parent.parent if parent.name == "checkpoints" else parent
        self.tasks = list(self.ckpt["model"]["tasks"])
        vocab_attributes(self, vocabulary_of_checkpoint(self.ckpt), self.ckpt.get("kinds"),
                         task_specs(self.ckpt))
        self.epoch = self.ckpt.get("epoch")
        self.n_features = int(self.ckpt["model"]["n_features"])
        ct = multiclass_task(self.specs)
        self.n_classes = self.specs[ct].n_outputs if ct is not None else 0
        self.feature_params = checkpoint_feature_params(self.ckpt)
        self.device = None

    def to(self, device) -> DeepMember:
        self.device = device
        self.model.to(device)
        return self

    def predict_dataset(self, dataset, *, batch_size: int = 32) -> Predictions:
        """Predict every clip of ``dataset`` (a SpectrogramDataset or Subset of one)."""
        from musicaffect.data.loading import make_loader
        from musicaffect.evaluation.inference import predict_outputs, window_options

        loader = make_loader(dataset, None, batch_size=batch_size,
                             max_length=self.cfg.data.max_length)
        return self._from_outputs(predict_outputs(self.model, loader, device=self.device,
                                                  **window_options(self.cfg),
                                                  specs=self.specs))

    def predict_arrays(self, arrays: Sequence[np.ndarray]) -> Predictions:
        """Predict a list of (F, t) arrays (the windows of one song) in one batch, whole
        (no ``max_length``): one row per array."""
        import torch

        from musicaffect.data.loading import make_loader
        from musicaffect.evaluation.inference import predict_outputs

        items = [{"x": torch.from_numpy(np.ascontiguousarray(a.T, dtype=np.float32)),
                  "length": int(a.shape[1]), "y": {}, "id": str(i)}
                 for i, a in enumerate(arrays)]
        loader = make_loader(items, None, batch_size=max(1, len(items)), max_length=None)
        return self._from_outputs(predict_outputs(self.model, loader, device=self.device,
                                                  specs=self.specs))

    def _from_outputs(self, res: dict) -> Predictions:
        import torch

        probs = None
        values: dict[str, np.ndarray] = {}
        for t in self.tasks:
            out = res[f"out:{t}"]
            spec = self.specs[t]
            if spec.is_multiclass:
                probs = spec.transform(np.asarray(out, dtype=np.float64))
            else:
                values[t] = np.asarray(spec.transform(torch.as_tensor(out)))
        labels = {k[2:]: v for k, v in res.items() if k.startswith("y:")}
        return Predictions(list(res["ids"]), probs, values, labels, list(self.classes),
                           dict(self.specs))




def check_fits(member, n_features: int, where: str, data_classes=None) -> None:
    """Raise :class:`CheckpointError` unless ``member`` reads ``n_features`` per frame and
    (for genre) knows the data's classes, in the same order."""
    if member.n_features != n_features:
        raise CheckpointError(
            f"{member.path}: the model reads {member.n_features} features per frame but "
            f"{where} has {n_features}; evaluate with the view the model was trained on")
    if multiclass_task(member.specs) is not None and data_classes is not None \
            and list(data_classes) != list(member.classes):
        raise CheckpointError(
            f"{member.path}: the model's classes ({', '.join(member.classes)}) are not the "
            f"data's ({', '.join(data_classes)}); evaluate on the data root it was trained on "
            "(or with the same data.genre_map)")


# --------------------------------------------------------------------------- the Predictor

class Predictor:
    """Several models predicting as one (one model is the common case).

    Parameters
    ----------
    members : list
        Loaded members (:class:`DeepMember`, classical members).
    weights : list of float, optional
        One positive weight per member (default: equal).
    device : str or torch.device, optional
        Where deep members run (default: CUDA when available, else CPU).
    """

    def __init__(self, members: Sequence, *, weights: Sequence[float] | None = None,
                 device=None):
        if not members:
            raise ConfigError("no model given: give at least one run folder or checkpoint")
        self.members = list(members)
        self.weights = [1.0] * len(self.members) if weights is None else [float(w) for w in weights]
        self.sources = list(self.members)   # as given (Predictor.load: as loaded)
        self.to(device)

    @classmethod
    def load(cls, paths: Sequence[str | os.PathLike] | str | os.PathLike, *, device=None,
             which: str = "best") -> Predictor:
        """Load run folders and model files of any family (deep, classical, ensemble
        folders ...) as one Predictor; ``sources`` keeps the members as loaded, ``members``
        the plain members an ensemble is made of."""
        from musicaffect.families.registry import expand, load

        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        sources = [load(p, which=which) for p in paths]
        leaves = [leaf for s in sources for leaf in expand(s)]
        pred = cls([m for m, _ in leaves], weights=[w for _, w in leaves], device=device)
        pred.sources = sources
        return pred

    def to(self, device=None) -> Predictor:
        self.device = select_device(device)
        for m in self.members:
            m.to(self.device)
        return self

    # ------------------------------------------------------------------ description

    @property
    def tasks(self) -> list[str]:
        """Tasks predicted by any member (genre first, then targets in first-seen order)."""
        out: list[str] = []
        for m in self.members:
            out += [t for t in m.tasks if t not in out]
        specs = {t: s for m in self.members for t, s in m.specs.items()}
        return sorted(out, key=lambda t: not specs[t].is_multiclass)

    @property
    def names(self) -> list[str]:
        return [m.name for m in self.members]

    @property
    def paths(self) -> list[str]:
        return [m.path for m in self.members]

    @property
    def first(self):
        return self.members[0]

    # ------------------------------------------------------------------ data

    def dataset(self, member, data_root, *, dataset: str, split: str, rate: str | None = None,
                tasks=None, skip_bad: bool | None = None):
        """The SpectrogramDataset ``member`` reads: its view, its rate (or ``rate``), its
        cache settings; genre labels for genre data, every target for multitask data."""
        from musicaffect.data.dataset import SpectrogramDataset

        d = member.cfg.data
        if tasks is None and dataset != "genre":
            tasks = "all"
        # a genre folder's labels: the dataset's own (its class task)
        options = {} if tasks is None else {"tasks": tasks}
        return SpectrogramDataset(data_root, dataset=dataset, rate=rate or d.rate, split=split,
                                  view=d.view, **options, cache_dir=d.cache_dir,
                                  use_cache=d.use_cache,
                                  skip_bad=d.skip_bad if skip_bad is None else skip_bad,
                                  genre_map=d.genre_map)

    def predict_split(self, data_root, *, dataset: str, split: str, rate: str | None = None,
                      batch_size: int = 32, members: Sequence | None = None,
                      skip_bad: bool | None = None) -> Predictions:
        """Predict every clip of one folder and split (each member at its own rate and view,
        or at ``rate``); rows in the first member's clip order."""
        parts = []
        for m in members or self.members:
            ds = self.dataset(m, data_root, dataset=dataset, split=split, rate=rate,
                              skip_bad=skip_bad)
            check_fits(m, ds.n_features,
                       f"the {rate or m.cfg.data.rate} {split} folder ({m.cfg.data.view})",
                       ds.vocab.classes if dataset == "genre" else None)
            parts.append((m, m.predict_dataset(ds, batch_size=batch_size)))
        return self._combine(parts, where=str(data_root))

    def predict_heldout(self, data_root, *, batch_size: int = 32) -> Predictions:
        """Predict the held-out (validation) clips of each member's own training split; the
        members must hold out the same clips."""
        from musicaffect.data.loading import prepare_data

        parts = []
        for m in self.members:
            data = prepare_data(m.cfg, data_root)
            check_fits(m, data.n_features, "the multitask folder",
                       data.vocab.classes if multiclass_task(m.specs) is not None else None)
            parts.append((m, m.predict_dataset(data.val, batch_size=batch_size)))
        return self._combine(parts, where=str(data_root), held_out=True)

    def predict_clip(self, views: Callable[[object], Sequence[np.ndarray]]) -> tuple[Predictions, int]:
        """Predict one song: ``views(member)`` gives the member's windows as (F, t) arrays;
        each member's result is the mean over its windows, then members are averaged.

        Returns ``(predictions with one row, largest number of windows)``.
        """
        parts, n = [], 0
        for m in self.members:
            wins = list(views(m))
            n = max(n, len(wins))
            parts.append((m, m.predict_arrays(wins).mean_rows()))
        return self._combine(parts, where="the song"), n

    def _combine(self, parts: list, *, where: str, held_out: bool = False) -> Predictions:
        ids = parts[0][1].ids
        aligned = []
        for m, p in parts:
            if set(p.ids) != set(ids) or len(p.ids) != len(ids):
                what = ("held out different clips (their data.split_seed, data.val_fraction "
                        "or data.stratify differ); combine runs trained with the same split"
                        if held_out else "saw different clips; use one data root")
                raise DataError(f"the runs {parts[0][0].name} and {m.name} {what}", path=where)
            aligned.append((m, p if p.ids == ids else p.reorder(ids)))
        if len(aligned) == 1:
            return aligned[0][1]
        w = dict(zip(map(id, self.members), self.weights))
        genre = [(m, p) for m, p in aligned if p.probs is not None]
        probs, classes = None, list(CLASSES)
        if genre:
            classes = genre[0][1].classes
            for m, p in genre[1:]:
                if p.classes != classes:
                    raise CheckpointError(f"{m.path}: its classes {p.classes} differ from "
                                          f"{genre[0][0].path}'s {classes}; ensemble models "
                                          "of the same classes")
            probs = _weighted([p.probs for _, p in genre], [w.get(id(m), 1.0) for m, _ in genre])
        values: dict[str, np.ndarray] = {}
        labels: dict[str, np.ndarray] = {}
        for _, p in aligned:
            for t, v in p.labels.items():
                labels.setdefault(t, v)
        targets = [t for _, p in aligned for t in p.values]
        for t in dict.fromkeys(targets):
            have = [(m, p) for m, p in aligned if t in p.values]
            values[t] = _weighted([p.values[t] for _, p in have],
                                  [w.get(id(m), 1.0) for m, _ in have])
        specs = {t: s for _, p in aligned for t, s in p.specs.items()}
        return Predictions(list(ids), probs, values, labels, classes, specs)


def _weighted(arrays: list[np.ndarray], weights: list[float]) -> np.ndarray:
    if len(arrays) == 1:
        return arrays[0]
    w = np.asarray(weights, dtype=np.float64)
    w = w / w.sum()
    return sum(wi * np.asarray(a, dtype=np.float64) for wi, a in zip(w, arrays))
