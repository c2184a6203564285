"""The ensemble family: several trained runs whose genre probabilities / affect values are
averaged. An ensemble is itself a member (:class:`EnsembleMember`, made of members, as
demucs' ``BagOfModels`` is a model); the :class:`~musicaffect.evaluation.predictor.Predictor`
expands it into its weighted members.

Two ways to make one:

- ``musicaffect ensemble RUN RUN ... --out DIR`` combines runs that exist
  (:func:`write_ensemble`);
- an *ensemble preset* (``model.name: ensemble``, ``model.params: {members: [preset, ...],
  weights: [...]}``, e.g. ``ensemble-genre``) trains its member presets first:
  ``musicaffect train DATA --preset ensemble-genre`` trains them into ``RUN/members/<preset>``
  (with the ensemble run's data, length and hardware settings, :func:`member_overrides`);
  the suites and ``cv`` train them beside the ensemble (reusing runs of the same presets).
  The family receives the function that trains a member (``train``); it imports no trainer.

The ensemble folder holds ``ensemble.json`` (absolute member paths and weights),
``config.yaml`` and ``summary.json``; ``evaluate``, ``submit``, ``predict`` and the lab take
it wherever they take a run.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from musicaffect.errors import CheckpointError, ConfigError
from musicaffect.families.base import Family
from musicaffect.families.registry import is_model_path, load, load_members, register
from musicaffect.io import atomic_write

log = logging.getLogger(__name__)

NAME = "ensemble"
#: file that makes a folder an ensemble of runs (written by :func:`write_ensemble`)
ENSEMBLE_FILE = "ensemble.json"
ENSEMBLE_FORMAT = "musicaffect-ensemble/1"


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


def member_overrides(cfg) -> dict:
    """The settings of ensemble config ``cfg`` that its members take over (the config fields
    marked :data:`~musicaffect.config.MEMBERS_INHERIT`) where they differ from the defaults,
    as a nested mapping for ``load_config(preset, extra=...)``: so that
    ``train --preset best-affect --set data.tasks=all --set train.epochs=5`` trains its
    members on all targets for 5 epochs."""
    from musicaffect.config import MEMBERS_INHERIT, RunConfig, keys_with

    mine, default = cfg.to_dict(), RunConfig().to_dict()
    out: dict = {}
    for key in sorted(keys_with(MEMBERS_INHERIT)):
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
                   member_dir: Callable[[str], Path], train: Callable[..., Path]) -> Path:
    """Train (or reuse) every member preset of an ensemble config with
    ``train(member config, member folder) -> run folder``, then write the ensemble folder
    ``run_dir``. Returns ``run_dir``."""
    p = ensemble_params(cfg.model.params)
    t0 = time.perf_counter()
    runs = []
    for preset in p.members:
        mcfg = member_cfg(preset)
        if mcfg.model.name == "ensemble":
            raise ConfigError(f"ensemble member {preset!r} is itself an ensemble preset; list "
                              "its members instead")
        runs.append(train(mcfg, member_dir(preset)))
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
                 progress: bool = True, train: Callable[..., Path] | None = None):
    """``musicaffect train --preset ensemble-...``: train the member presets (as written,
    with this run's seed) into ``run_dir/members/`` with ``train(member config, folder)``
    and write the ensemble. Returns a
    :class:`~musicaffect.training.result.FitResult` without epochs."""
    from musicaffect.config import load_config
    from musicaffect.training.result import FitResult
    from musicaffect.training.rundir import plan_run_dir, write_run

    if train is None:
        raise ConfigError(f"{cfg.name}: an ensemble trains its members: give the trainer "
                          "(musicaffect.training.engine.fit passes one)")
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
                       train=train)

    if plan.resumes:   # an ensemble with its file: members are reused or resumed in place
        write(run_dir)
    else:
        write_run(plan, cfg, write)
    return FitResult(run_dir, 0, float("nan"), "ensemble", [], False, {},
                     time.perf_counter() - t0)


# --------------------------------------------------------------------------- ensembles

def write_ensemble(out_dir: str | os.PathLike, runs: Sequence[str | os.PathLike], *,
                   weights: Sequence[float] | None = None, name: str | None = None) -> Path:
    """Make ``out_dir`` an ensemble of ``runs``: ``ensemble.json`` (members as absolute paths,
    or relative to ``out_dir`` for members inside it, so the folder can move; weights) and ``config.yaml`` (the first member's config, ``model.name: ensemble``).

    Every member is loaded once to check it. Returns the path of ``ensemble.json``.
    """
    import yaml

    if not runs:
        raise ConfigError("an ensemble needs at least one run")
    weights = [1.0] * len(runs) if weights is None else [float(w) for w in weights]
    if len(weights) != len(runs) or any(not np.isfinite(w) or w <= 0 for w in weights):
        raise ConfigError(f"give one positive weight per run ({len(runs)}), got {weights}")
    out = Path(out_dir)
    members = []
    for r in runs:
        if not is_model_path(r):
            raise CheckpointError(f"{r}: not a run folder or checkpoint; give trained runs")
        members.append(str(Path(r).resolve()))
    if str(out.resolve()) in members:
        raise ConfigError(f"{out}: an ensemble cannot contain its own folder")
    loaded = [m for r in members for m, _ in load_members(r)]
    check_members(loaded)
    tasks = sorted({t for m in loaded for t in m.tasks})
    out.mkdir(parents=True, exist_ok=True)
    home = out.resolve()
    members = [str(Path(m).relative_to(home)) if Path(m).is_relative_to(home) else m
               for m in members]
    spec = {"format": ENSEMBLE_FORMAT, "name": name or out.name, "members": members,
            "weights": weights, "tasks": tasks,
            "member_names": [m.name for m in loaded]}
    _atomic_text(out / ENSEMBLE_FILE, json.dumps(spec, indent=2))
    cfg = loaded[0].cfg.to_dict()
    cfg["name"] = spec["name"]
    cfg["model"] = {"name": NAME, "params": {"members": members, "weights": weights}}
    _atomic_text(out / "config.yaml", yaml.safe_dump(cfg, sort_keys=False))
    return out / ENSEMBLE_FILE


def check_members(members: Sequence) -> None:
    """Members combined into one prediction cover the same tasks and, for a class task,
    the same classes in the same order; else :class:`ConfigError` naming the two members
    that differ and how.

    Averaging members of different tasks would silently drop the tasks the first member
    lacks; members of different class sets cannot be averaged at all.
    """
    first = members[0]
    for m in members[1:]:
        if set(m.tasks) != set(first.tasks):
            raise ConfigError(
                f"{m.path} covers the tasks {', '.join(m.tasks)} but {first.path} covers "
                f"{', '.join(first.tasks)}: members of one ensemble (or of one evaluate "
                "command) must cover the same tasks; combine runs of one task set, and "
                "evaluate the others separately")
        if m.n_classes and first.n_classes and list(m.classes) != list(first.classes):
            raise ConfigError(
                f"{m.path} has the classes {', '.join(map(str, m.classes))} but {first.path} "
                f"has {', '.join(map(str, first.classes))}: members of one ensemble must be "
                "trained on the same classes; combine runs trained on the same data")


def read_ensemble(folder: str | os.PathLike) -> dict:
    """Read and check ``folder/ensemble.json``."""
    path = Path(folder) / ENSEMBLE_FILE
    try:
        spec = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path}: cannot read the ensemble ({err}); write it again with "
                              "`musicaffect ensemble`") from err
    if not isinstance(spec, dict) or spec.get("format") != ENSEMBLE_FORMAT \
            or not spec.get("members"):
        raise CheckpointError(f"{path}: not a musicaffect ensemble (format {ENSEMBLE_FORMAT} "
                              "with a list of members expected)")
    spec.setdefault("weights", [1.0] * len(spec["members"]))
    # members inside the ensemble folder are stored relative to it
    spec["members"] = [str(Path(folder) / m) if not Path(m).is_absolute() else m
                       for m in spec["members"]]
    return spec


def _atomic_text(path: Path, text: str) -> None:
    if path.is_file() and path.read_text() == text:
        return      # unchanged: keep the mtime (evaluations cached on it stay valid)
    atomic_write(path, text)


# --------------------------------------------------------------------------- the member

#: resolved ensemble folders being loaded (an ensemble that contains itself is refused)
_LOADING: set[str] = set()


class EnsembleMember:
    """A trained ensemble, itself a member: its members (with weights) predict the clips and
    their genre probabilities / target values are averaged (members of one view and rate;
    the :class:`~musicaffect.evaluation.predictor.Predictor` expands an ensemble with
    :meth:`weighted_members`, so that each member reads its own view)."""

    kind = NAME

    def __init__(self, folder: str | os.PathLike, *, which: str = "best"):
        folder = Path(folder)
        key = str(folder.resolve())
        if key in _LOADING:
            raise CheckpointError(f"{folder / ENSEMBLE_FILE}: the ensemble contains itself")
        spec = read_ensemble(folder)
        _LOADING.add(key)
        try:
            self.members = [load(m, which=which) for m in spec["members"]]
        finally:
            _LOADING.discard(key)
        self.weights = [float(w) for w in spec["weights"]]
        self.spec = spec
        self.run_dir = folder
        self.name = folder.name
        self.path = str(folder / ENSEMBLE_FILE)
        first = self.members[0]
        self.cfg = first.cfg
        self.tasks = list(dict.fromkeys(t for m in self.members for t in m.tasks))
        genre = [m for m in self.members if m.n_classes]
        for attr in ("classes", "vocab", "ranges", "feature_params"):
            setattr(self, attr, getattr(genre[0] if genre else first, attr, None))
        self.kinds = {t: k for m in self.members for t, k in m.kinds.items()}
        self.specs = {}   # each task's spec as its first member has it
        for m in self.members:
            for t, s in m.specs.items():
                self.specs.setdefault(t, s)
        self.n_features = first.n_features
        self.n_classes = genre[0].n_classes if genre else 0
        self.epoch = None
        self.device = None

    def weighted_members(self) -> list[tuple[object, float]]:
        return list(zip(self.members, self.weights))

    def to(self, device) -> EnsembleMember:
        self.device = device
        for m in self.members:
            m.to(device)
        return self

    def _predictor(self):
        from musicaffect.evaluation.predictor import Predictor

        return Predictor(self.members, weights=self.weights, device=self.device)

    def predict_dataset(self, dataset, *, batch_size: int = 32):
        pred = self._predictor()
        return pred._combine([(m, m.predict_dataset(dataset, batch_size=batch_size))
                              for m in pred.members], where=self.name)

    def predict_arrays(self, arrays):
        pred = self._predictor()
        return pred._combine([(m, m.predict_arrays(arrays)) for m in pred.members],
                             where=self.name)


def _model_file(path: Path) -> Path | None:
    return path / ENSEMBLE_FILE if (path / ENSEMBLE_FILE).is_file() else None


FAMILY = register(Family(
    name=NAME, params=EnsembleParams, fit=fit_ensemble, model_file=_model_file,
    checkpoint_files=(ENSEMBLE_FILE,), load=EnsembleMember, claims=lambda name: name == NAME,
    describe=lambda cfg, res, out: (
        f"ensemble {out}: {', '.join(cfg.model.params.get('members', []))} "
        f"({res.seconds:.1f}s)"),
    build_members=build_ensemble))
