"""The deep family: every network of :mod:`musicaffect.models.registry` (``model.name`` a
registered backbone), trained by :func:`musicaffect.training.engine.fit_deep` on Lightning
Fabric, saved as ``checkpoints/{best,last}.pt`` and loaded as
:class:`~musicaffect.evaluation.predictor.DeepMember`. The fallback family: it takes every
``model.name`` that no other family claims (an unknown name is refused by the backbone
registry) and every path no other family recognises (loading says what is missing)."""

from __future__ import annotations

from pathlib import Path

from musicaffect.families.base import Family
from musicaffect.families.registry import register

NAME = "deep"


def fit(cfg, data_root, run_dir, *, resume: bool = False, overwrite: bool = False,
        progress: bool = True, train=None, stop_after: int | None = None):
    """Train a network (see :func:`musicaffect.training.engine.fit_deep`)."""
    from musicaffect.training.engine import fit_deep

    return fit_deep(cfg, data_root, run_dir, resume=resume, overwrite=overwrite,
                    progress=progress, stop_after=stop_after)


def load(path: Path, *, which: str = "best"):
    from musicaffect.evaluation.predictor import DeepMember

    return DeepMember(path, which=which)


def _model_file(path: Path) -> Path | None:
    if path.is_file():
        return path if path.suffix == ".pt" else None
    file = path / "checkpoints" / "best.pt"
    return file if file.is_file() else None


def describe(cfg, res, out) -> str:
    if not res.history:
        return ""
    return (f"run {out}: best epoch {res.best_epoch + 1} with {res.monitor}="
            f"{res.best_score:.4f} ({len(res.history)} epochs, {res.seconds:.1f}s"
            f"{', stopped early' if res.stopped_early else ''})")


def _claims(name: str) -> bool:
    from musicaffect.models.registry import available_models

    return name in available_models()


FAMILY = register(Family(
    name=NAME, params=None, fit=fit, model_file=_model_file,
    checkpoint_files=("checkpoints/last.pt",), load=load, claims=_claims, describe=describe,
    fallback=True))
