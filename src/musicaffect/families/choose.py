"""The choose family (``model.name: choose``): a preset that picks, by what the data root
supports, which recipe to train (``best-genre``, ``best-affect``).

The rule is data, not code: ``model.params.options`` lists ``{when: CONDITION, preset:
NAME}`` entries, tried in order; an entry without ``when`` always applies (the last one,
the fallback)::

    model:
      name: choose
      params:
        options:
          - {when: embeddings, preset: ensemble-musicnn-genre}
          - {preset: ensemble-chunk-genre}

Conditions (:data:`CONDITIONS`) are predicates of the data root: ``embeddings`` (the root has
the default MSD_musicnn embedding view), ``embeddings-mtt`` (MTT_musicnn).

The choice is made where the data root is known: when the run is trained (``train``) and
when the suites and ``cv`` build it (:func:`build_choice`, the family's ``build_members``),
so ``train``, ``suite`` and ``cv`` resolve it the same way. The run is written as an
ensemble of the chosen recipe's runs (a chosen ensemble preset: its members; another preset:
that one run), so everything that reads an ensemble reads it; ``choice.json`` and
``summary.json`` (``chosen``) record the preset chosen and why, and the choice is logged.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from musicaffect.errors import CheckpointError, ConfigError
from musicaffect.families.base import Family
from musicaffect.families.registry import family_of, register

log = logging.getLogger(__name__)

NAME = "choose"
CHOICE_FILE = "choice.json"


def _has_embeddings(model: str) -> Callable[[Path], bool]:
    def check(root: Path) -> bool:
        from musicaffect.features.embed import has_embeddings

        return has_embeddings(root, model)
    return check


#: condition name -> predicate of a data root
CONDITIONS: dict[str, Callable[[Path], bool]] = {
    "embeddings": _has_embeddings("MSD_musicnn"),
    "embeddings-mtt": _has_embeddings("MTT_musicnn"),
}


@dataclass
class ChooseParams:
    """``model.params`` of a choose preset."""

    options: list[dict[str, str]] = field(default_factory=list)   # [{when: X, preset: Y}]


def choose_params(params: dict) -> ChooseParams:
    from musicaffect.typecheck import from_mapping

    p = from_mapping(ChooseParams, dict(params or {}), where="model.params.")
    if not p.options:
        raise ConfigError("model.params.options is empty: list {when: CONDITION, preset: "
                          "NAME} entries, the last without `when`")
    for i, opt in enumerate(p.options):
        if not isinstance(opt, dict) or not isinstance(opt.get("preset"), str) \
                or set(opt) - {"when", "preset"}:
            raise ConfigError(f"model.params.options[{i}] must be {{when: CONDITION, preset: "
                              f"NAME}}, got {opt!r}")
        if "when" in opt and opt["when"] not in CONDITIONS:
            raise ConfigError(f"model.params.options[{i}].when={opt['when']!r} is not a "
                              f"condition: choose one of {', '.join(CONDITIONS)}")
    if "when" in p.options[-1]:
        raise ConfigError("model.params.options: the last option must have no `when` (the "
                          "recipe for every other data root)")
    return p


def choose_preset(params: dict, data_root) -> tuple[str, str]:
    """``(preset, reason)``: the first option whose condition holds for ``data_root``."""
    p = choose_params(params)
    for opt in p.options:
        when = opt.get("when")
        if when is None:
            return opt["preset"], "fallback (no earlier condition held)"
        if CONDITIONS[when](Path(data_root)):
            return opt["preset"], f"the data root has {when}"
    raise AssertionError("unreachable: the last option has no condition")


def build_choice(cfg, data_root, run_dir, *, member_cfg: Callable[[str], object],
                 member_dir: Callable[[str], Path], train: Callable[..., Path]) -> Path:
    """Choose the preset for ``data_root``, train (or reuse) it with ``train(member_cfg(name),
    member_dir(name))`` and write ``run_dir`` as an ensemble of its runs. Returns ``run_dir``."""
    from musicaffect.families.ensemble import build_ensemble, ensemble_params, write_ensemble

    t0 = time.perf_counter()
    preset, reason = choose_preset(cfg.model.params, data_root)
    log.info("%s: chose preset %s for %s (%s)", cfg.name, preset, data_root, reason)
    chosen = member_cfg(preset)
    if family_of(chosen).name == NAME:
        raise ConfigError(f"{cfg.name}: option {preset!r} is itself a choose preset; name the "
                          "recipe it would pick")
    run_dir = Path(run_dir)
    if family_of(chosen).build_members is not None:     # an ensemble: its members
        ensemble_params(chosen.model.params)
        chosen.name = cfg.name
        build_ensemble(chosen, data_root, run_dir, member_cfg=member_cfg,
                       member_dir=member_dir, train=train)
    else:
        run = train(chosen, member_dir(preset))
        write_ensemble(run_dir, [run], name=cfg.name)
        s = Path(run) / "summary.json"
        (run_dir / "summary.json").write_text(json.dumps(
            {"ensemble": [str(run)], "members": {str(run): json.loads(s.read_text())
                                                 if s.is_file() else {}},
             "seconds": float(json.loads(s.read_text()).get("seconds", 0.0))
             if s.is_file() else 0.0}, indent=2, default=float))
    record = {"preset": preset, "reason": reason, "options": cfg.model.params["options"],
              "data_root": str(data_root)}
    (run_dir / CHOICE_FILE).write_text(json.dumps(record, indent=2) + "\n")
    summary = json.loads((run_dir / "summary.json").read_text())
    summary["chosen"] = record
    summary["build_seconds"] = time.perf_counter() - t0
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=float))
    return run_dir


def fit_choice(cfg, data_root, run_dir, *, resume: bool = False, overwrite: bool = False,
               progress: bool = True, train: Callable[..., Path] | None = None):
    """``musicaffect train --preset best-genre``: choose, train the chosen recipe into
    ``run_dir/members/`` (with this run's seed and inherited settings, as an ensemble's
    members) and write the run. Returns a FitResult without epochs."""
    from musicaffect.config import load_config
    from musicaffect.families.ensemble import member_overrides
    from musicaffect.training.result import FitResult
    from musicaffect.training.rundir import plan_run_dir, write_run

    if train is None:
        raise ConfigError(f"{cfg.name}: a choose preset trains the recipe it picks: give the "
                          "trainer (musicaffect.training.engine.fit passes one)")
    preset, _ = choose_preset(cfg.model.params, data_root)
    t = cfg.train
    if t.devices > 1 or t.num_nodes > 1 or t.strategy not in ("auto", "single_device"):
        raise ConfigError(
            f"{cfg.name}: a choose preset trains the recipe it picks ({preset} for this data "
            "root) in one process, not distributed; train that preset's deep members with "
            "--devices and combine the finished runs with `musicaffect ensemble RUN RUN ... "
            "--out DIR`")
    run_dir = Path(run_dir)
    plan = plan_run_dir(run_dir, data_root=data_root, resume=resume, overwrite=overwrite)
    t0 = time.perf_counter()

    def write(folder: Path) -> None:
        build_choice(cfg, data_root, folder,
                     member_cfg=lambda preset: load_config(
                         preset, [f"seed={cfg.seed}"], extra=member_overrides(cfg)),
                     member_dir=lambda preset: folder / "members" / Path(preset).stem,
                     train=train)

    if plan.resumes:
        write(run_dir)
    else:
        write_run(plan, cfg, write)
    return FitResult(run_dir, 0, float("nan"), "ensemble", [], False, {},
                     time.perf_counter() - t0)


def _describe(cfg, res, out) -> str:
    f = Path(out) / CHOICE_FILE
    chosen = json.loads(f.read_text())["preset"] if f.is_file() else "?"
    return f"{cfg.name} {out}: chose {chosen} ({res.seconds:.1f}s)"


def _load(path, *, which: str = "best"):
    raise CheckpointError(f"{path}: a choose run is written as an ensemble of the recipe it "
                          "chose; load the run folder (ensemble.json)")


FAMILY = register(Family(
    name=NAME, params=ChooseParams, fit=fit_choice,
    # the run is written as an ensemble (the ensemble family recognises and loads it)
    model_file=lambda path: None, checkpoint_files=(), load=_load,
    claims=lambda name: name == NAME, describe=_describe, build_members=build_choice))
