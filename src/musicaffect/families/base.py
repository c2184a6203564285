"""What a model family is and what its trained models (members) can do, written once.

A *family* knows how to fit a config into a run folder, how to recognise its model in a
folder (or file) and how to load it as a :class:`Member`. The families register themselves
in :mod:`musicaffect.families.registry`; the rest of the package reaches them only through
it (``fit``, ``load``, ``model_file``), never by name.

A *member* is one trained model as the :class:`~musicaffect.evaluation.predictor.Predictor`
uses it; an ensemble is itself a member made of members.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Member(Protocol):
    """One trained model that predicts clips (deep, classical, an ensemble of members ...).

    Attributes
    ----------
    kind : str
        Its family's name.
    name, path : str
        The run's name and the file holding its model.
    run_dir : Path
        The run folder.
    cfg : RunConfig
        The config it was trained with (its view, rate, windows, length).
    tasks : list of str
        What it predicts (genre first, then targets).
    classes, kinds, ranges, vocab
        Its data's vocabulary (:func:`~musicaffect.models.predictions.vocab_attributes`).
    specs : dict[str, TaskSpec]
        How each task was trained and is predicted (name -> :class:`~musicaffect.tasks.TaskSpec`,
        in the order of ``tasks``); code that needs a task's kind reads it here.
    n_features : int
        Features per frame it reads; ``n_classes`` its genre classes (0 without genre).
    epoch : int or None
        The epoch of its weights (None without epochs).
    feature_params : FeatureParams
        How the features it reads were made (``predict`` extracts audio with them).
    """

    kind: str
    name: str
    path: str
    run_dir: Path
    cfg: Any
    tasks: list[str]
    classes: list[str]
    kinds: dict[str, str]
    specs: dict[str, Any]
    n_features: int
    n_classes: int
    epoch: int | None
    feature_params: Any

    def to(self, device) -> Member:
        """Move to ``device`` (a no-op for CPU-only models); returns self."""

    def predict_dataset(self, dataset, *, batch_size: int = 32):
        """Predictions (``models.predictions.Predictions``) of every clip of ``dataset``
        (a SpectrogramDataset or a Subset of one), one row per clip."""

    def predict_arrays(self, arrays: Sequence[np.ndarray]):
        """Predictions of (F, t) arrays (the windows of one song), one row per array."""


#: ``fit(cfg, data_root, run_dir, *, resume, overwrite, progress, train, **options)``;
#: ``train(cfg, run_dir, *, progress) -> Path`` trains (or reuses) one config into a folder
#: (what a family made of other runs, the ensemble, uses for its members)
FitFn = Callable[..., Any]


@dataclass(frozen=True)
class Family:
    """A model family, as registered.

    Attributes
    ----------
    name : str
        ``model.name`` of its configs (``deep`` stands for every registered backbone).
    params : type or None
        The dataclass of its ``model.params`` (None: the backbone's own config).
    fit : callable
        ``fit(cfg, data_root, run_dir, *, resume, overwrite, progress, train, **options)
        -> FitResult``: train a config into a run folder.
    model_file : callable
        ``model_file(path) -> Path | None``: the file holding this family's model in a run
        folder (or ``path`` itself when it is such a file), None when it is not this
        family's; its modification time says when the run changed.
    checkpoint_files : tuple of str
        Files (relative to a run folder) whose presence means the run holds a checkpoint
        to resume from or a finished model (:func:`training.rundir.has_checkpoint`).
    load : callable
        ``load(path, *, which="best") -> Member``.
    claims : callable
        ``claims(model_name) -> bool``: whether a config's ``model.name`` is this family's.
    describe : callable
        ``describe(cfg, result, out) -> str``: the line ``musicaffect train`` prints when
        the run is done.
    build_members : callable or None
        A family made of other runs (ensembles): ``build_members(cfg, data_root, run_dir,
        *, member_cfg, member_dir, train) -> Path`` trains (or reuses) each member with
        ``train(member_cfg(name), member_dir(name))`` and writes the run; the suites and
        ``cv`` use it to train members beside the run with their budget.
    fallback : bool
        The family of every ``model.name`` no other family claims and of every path no
        other family recognises (its ``load`` says what is missing); one family (deep).
    """

    name: str
    params: type | None
    fit: FitFn
    model_file: Callable[[Path], Path | None]
    checkpoint_files: tuple[str, ...]
    load: Callable[..., Member]
    claims: Callable[[str], bool]
    describe: Callable[..., str]
    build_members: Callable[..., Path] | None = None
    fallback: bool = False


def json_model_file(file_name: str) -> Callable[[Path], Path | None]:
    """A family's ``model_file`` when its model is one JSON file in ``checkpoints/``
    (``best.<family>.json``): the file itself, given directly or found in a run folder."""
    suffix = file_name[file_name.index("."):]          # ".classical.json"

    def model_file(path: Path) -> Path | None:
        if path.is_file():
            return path if path.name.endswith(suffix) else None
        file = path / "checkpoints" / file_name
        return file if file.is_file() else None

    return model_file
