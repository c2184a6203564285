"""The family registry: the one place that maps a config's ``model.name`` or a run folder to
its :class:`~musicaffect.families.base.Family`.

Families register themselves when :mod:`musicaffect.families` is imported (importing this
module imports the package first): ``ensemble``, ``classical`` and ``deep`` (every backbone
of :mod:`musicaffect.models.registry`; the fallback). A new family is one module that calls
:func:`register` plus its import in ``families/__init__.py``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from musicaffect.errors import CheckpointError, ConfigError
from musicaffect.families.base import Family, Member

_FAMILIES: dict[str, Family] = {}


def register(family: Family) -> Family:
    """Add ``family`` (its name must be new; at most one fallback family)."""
    if family.name in _FAMILIES:
        raise ConfigError(f"model family {family.name!r} is registered twice")
    if family.fallback and any(f.fallback for f in _FAMILIES.values()):
        raise ConfigError(f"model family {family.name!r}: there is a fallback family already")
    _FAMILIES[family.name] = family
    return family


def families() -> list[Family]:
    """The registered families, the fallback last."""
    return sorted(_FAMILIES.values(), key=lambda f: f.fallback)


def get(name: str) -> Family:
    """The family registered as ``name``."""
    try:
        return _FAMILIES[name]
    except KeyError:
        raise ConfigError(f"unknown model family {name!r}; registered: "
                          f"{', '.join(_FAMILIES)}") from None


def family_of(cfg) -> Family:
    """The family that trains ``cfg`` (by its ``model.name``)."""
    for f in families():
        if f.fallback or f.claims(cfg.model.name):
            return f
    raise ConfigError(f"model.name {cfg.model.name!r} belongs to no model family "
                      f"({', '.join(_FAMILIES)})")


def fit(cfg, data_root, run_dir, *, resume: bool = False, overwrite: bool = False,
        progress: bool = True, train: Callable | None = None, **options):
    """Train ``cfg`` into ``run_dir`` with its family's ``fit``; returns its FitResult.
    ``train(cfg, run_dir, *, progress) -> Path`` trains the member runs of a family made of
    runs (ensembles)."""
    return family_of(cfg).fit(cfg, data_root, run_dir, resume=resume, overwrite=overwrite,
                              progress=progress, train=train, **options)


def recognise(path: str | os.PathLike) -> tuple[Family, Path] | None:
    """``(family, model file)`` of a run folder or model file, or None when none knows it."""
    for f in families():
        found = f.model_file(Path(path))
        if found is not None:
            return f, found
    return None


def model_file(run_dir: str | os.PathLike) -> Path:
    """The file holding a run's model (whichever family's); its modification time tells when
    the run changed. Raises :class:`CheckpointError` when the folder holds none."""
    found = recognise(run_dir)
    if found is None:
        raise CheckpointError(f"{run_dir}: no model in this run folder ("
                              f"{', '.join(f for fam in families() for f in fam.checkpoint_files)}"
                              "); train first")
    return found[1]


def is_model_path(path: str | os.PathLike) -> bool:
    """True for a run folder or model file that some family recognises."""
    return recognise(path) is not None


def checkpoint_files() -> tuple[str, ...]:
    """Files (relative to a run folder) that show a run holds a checkpoint or a model."""
    return tuple(f for fam in families() for f in fam.checkpoint_files)


def load(path: str | os.PathLike, *, which: str = "best") -> Member:
    """The member saved at ``path`` (a run folder or a model file)."""
    found = recognise(path)
    family = found[0] if found is not None else families()[-1]
    return family.load(Path(path), which=which)


def load_members(path: str | os.PathLike, *, which: str = "best") -> list[tuple[Member, float]]:
    """The plain members (with weights) of one path: a member made of members (an
    ensemble, ``weighted_members()``) is expanded, recursively, its weights multiplied."""
    member = load(path, which=which)
    return expand(member)


def expand(member: Member, weight: float = 1.0) -> list[tuple[Member, float]]:
    """``[(member, weight)]``, or the weighted leaves of a member made of members."""
    parts = getattr(member, "weighted_members", None)
    if parts is None:
        return [(member, weight)]
    return [leaf for m, w in parts() for leaf in expand(m, weight * w)]
