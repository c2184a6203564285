"""Ensembles as runs: several trained runs whose genre probabilities / affect values are
averaged by the :class:`~musicaffect.evaluation.predictor.Predictor`.

Two ways to make one:

- ``musicaffect ensemble RUN RUN ... --out DIR`` combines runs that exist
  (:func:`~musicaffect.evaluation.predictor.write_ensemble`);
- an *ensemble preset* (``model.name: ensemble``, ``model.params: {members: [preset, ...],
  weights: [...]}``, e.g. ``ensemble-genre``) trains its member presets first:
  ``musicaffect train DATA --preset ensemble-genre`` trains them into ``RUN/members/<preset>``
  (with the ensemble run's data, length and hardware settings, :func:`member_overrides`);
  the suites and ``cv`` train them beside the ensemble (reusing runs of the same presets).

The ensemble folder holds ``ensemble.json`` (absolute member paths and weights),
``config.yaml`` and ``summary.json``; ``evaluate``, ``submit``, ``predict`` and the lab take
it wherever they take a run.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from musicaffect.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass
class EnsembleParams:
    """``model.params`` of an ensemble preset."""

    members: list[str] = field(default_factory=list)    # preset names or YAML files
    weights: list[float] | None = None


def ensemble_params(params: dict) -> EnsembleParams:
    from musicaffect.typecheck import from_mapping

    p = from_mapping(EnsembleParams, dict(params or {}), where="model.params.")
    if not p.members:
        raise ConfigError("model.params.members is empty: list the presets of the ensemble")
    if p.weights is not None and len(p.weights) != len(p.members):
        raise ConfigError(f"model.params.weights has {len(p.weights)} values for "
                          f"{len(p.members)} members")
    return p


#: settings of an ensemble run that its members take over when they differ from the defaults
#: (what data, how long, on which hardware); a member's own model, view and recipe stay its own
MEMBER_KEYS = (
    "seed", "data.tasks", "data.genre_map", "data.split_seed", "data.val_fraction",
    "data.max_length", "data.cache_dir", "data.use_cache", "data.skip_bad", "data.num_workers",
    "train.epochs", "train.patience", "train.max_batches_per_epoch", "train.accelerator",
    "train.precision",
)


def member_overrides(cfg) -> dict:
    """The settings of ensemble config ``cfg`` (:data:`MEMBER_KEYS`) that differ from the
    defaults, as a nested mapping for ``load_config(preset, extra=...)``: so that
    ``train --preset best-affect --set data.tasks=all --set train.epochs=5`` trains its
    members on all targets for 5 epochs."""
    from musicaffect.config import RunConfig

    mine, default = cfg.to_dict(), RunConfig().to_dict()
    out: dict = {}
    for key in MEMBER_KEYS:
        *path, leaf = key.split(".")
        a, b = mine, default
        for part in path:
            a, b = a[part], b[part]
        if a[leaf] != b[leaf]:
            node = out
            for part in path:
                node = node.setdefault(part, {})
            node[leaf] = a[leaf]
    return out


def build_ensemble(cfg, data_root, run_dir, *, member_cfg: Callable[[str], object],
                   member_dir: Callable[[str], Path], reuse: bool = True,
                   progress: bool = True) -> Path:
    """Train (or reuse) every member preset of an ensemble config, then write the ensemble
    folder ``run_dir``. Returns ``run_dir``."""
    from musicaffect.evaluation.predictor import write_ensemble
    from musicaffect.suites import run_experiment

    p = ensemble_params(cfg.model.params)
    t0 = time.perf_counter()
    runs = []
    for preset in p.members:
        mcfg = member_cfg(preset)
        if mcfg.model.name == "ensemble":
            raise ConfigError(f"ensemble member {preset!r} is itself an ensemble preset; list "
                              "its members instead")
        runs.append(run_experiment(mcfg, data_root, member_dir(preset), reuse=reuse,
                                   progress=progress))
    run_dir = Path(run_dir)
    write_ensemble(run_dir, runs, weights=p.weights, name=cfg.name)
    summaries = {}
    for r in runs:
        s = Path(r) / "summary.json"
        summaries[str(r)] = json.loads(s.read_text()) if s.is_file() else {}
    seconds = sum(float(s.get("seconds", 0.0)) for s in summaries.values())
    (run_dir / "summary.json").write_text(json.dumps(
        {"ensemble": [str(r) for r in runs], "members": summaries,
         "seconds": seconds, "build_seconds": time.perf_counter() - t0}, indent=2,
        default=float))
    return run_dir


def fit_ensemble(cfg, data_root, run_dir, *, resume: bool = False, overwrite: bool = False,
                 progress: bool = True):
    """``musicaffect train --preset ensemble-...``: train the member presets (as written,
    with this run's seed) into ``run_dir/members/`` and write the ensemble. Returns a
    :class:`~musicaffect.training.engine.FitResult` without epochs."""
    from musicaffect.config import load_config
    from musicaffect.training.engine import FitResult
    from musicaffect.training.rundir import plan_run_dir, write_run

    ensemble_params(cfg.model.params)   # validate before touching the folder
    t = cfg.train
    if t.devices > 1 or t.num_nodes > 1 or t.strategy not in ("auto", "single_device"):
        raise ConfigError(
            f"{cfg.name}: an ensemble preset trains its members one after the other in one "
            "process, not distributed; train each deep member with --devices (e.g. "
            "`train DATA --preset chunk-cnn-genre --devices 4`) and combine the finished runs "
            "with `musicaffect ensemble RUN RUN ... --out DIR`")
    run_dir = Path(run_dir)
    # checked, not written: a replaced ensemble moves into place once its members exist
    plan = plan_run_dir(run_dir, data_root=data_root, resume=resume, overwrite=overwrite)
    t0 = time.perf_counter()

    def write(folder: Path) -> None:
        build_ensemble(cfg, data_root, folder,
                       member_cfg=lambda preset: load_config(
                           preset, [f"seed={cfg.seed}"], extra=member_overrides(cfg)),
                       member_dir=lambda preset: folder / "members" / Path(preset).stem,
                       reuse=True, progress=progress)

    if plan.resumes:   # an ensemble with its file: members are reused or resumed in place
        write(run_dir)
    else:
        write_run(plan, cfg, write)
    return FitResult(run_dir, 0, float("nan"), "ensemble", [], False, {},
                     time.perf_counter() - t0)
