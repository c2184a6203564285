"""The lab's experiments as suites of presets, each ending in a table next to LAB.md's numbers.

- :func:`genre_suite` (lab steps 5-7): the report's four LSTM rows, the lab CNN, and
  musicaffect's strongest recipe; accuracy and macro-F1 on the official test set.
- :func:`affect_suite` (step 8): one model per target with the best LSTM and the CNN.
- :func:`transfer_suite` (step 9): CNN regressors initialised from a genre CNN.
- :func:`multitask_suite` (step 10): one backbone, three heads (fixed, learned weights).

Finished runs are reused when the suite is rerun with the same configuration; an interrupted
run is resumed from its ``last.pt``. Budgets shrink every preset for quick runs. The budgets
and the affect suites' experiments are settings, in YAML beside the presets
(``presets/settings/budgets.yaml`` and ``suites.yaml``); every row of an affect table names
its run (``experiment``, a key of :attr:`SuiteResult.runs`).

The suites follow the data root's own labels (:mod:`musicaffect.data.vocab`): its classes,
and one model per regression target it has (multitask: all of them). LAB.md's public numbers
are printed beside the tables only on the Kaggle dataset (a root without ``labels.json``);
on other data they would not be comparable.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from musicaffect.config import RunConfig, load_config
from musicaffect.data.labels import TARGETS
from musicaffect.errors import ConfigError
from musicaffect.settings import (
    affect_references,
    budget_model_params,
    budgets,
    genre_reference_note,
    genre_references,
    suite_experiments,
)

log = logging.getLogger(__name__)


def __getattr__(name: str):
    """The bundled settings under their former names, read on first use (nothing is read at
    import time; :mod:`musicaffect.settings` owns them)."""
    lazy = {"BUDGETS": budgets, "BUDGET_MODEL_PARAMS": budget_model_params,
            "SUITES": suite_experiments, "GENRE_SUITE": genre_references, "GENRE_REFERENCE_NOTE": genre_reference_note,
            "AFFECT_REFERENCE": affect_references}
    if name in lazy:
        return lazy[name]()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass
class SuiteResult:
    """Rows of a suite's table plus where every run lives."""

    title: str
    rows: list[dict]
    columns: list[str]
    note: str = ""
    runs: dict[str, str] = field(default_factory=dict)
    synthetic: bool = False

    def to_text(self) -> str:
        return format_table(self.rows, self.columns, title=self.title, note=self.note)

    def to_dict(self) -> dict:
        return {"title": self.title, "rows": self.rows, "columns": self.columns,
                "note": self.note, "runs": self.runs, "synthetic": self.synthetic}


def format_table(rows: list[dict], columns: list[str], *, title: str = "", note: str = "") -> str:
    """A plain-text table; floats with 3 decimals, missing values as '-'."""
    def cell(v) -> str:
        if v is None:
            return "-"
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    cells = [[cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) if cells else len(c)
              for i, c in enumerate(columns)]
    lines = [title] if title else []
    lines.append("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    if note:
        lines.append(note)
    return "\n".join(lines)


def budget_overrides(budget: str) -> dict:
    if budget not in budgets():
        raise ConfigError(f"unknown budget {budget!r}: choose one of {', '.join(budgets())}")
    return budgets()[budget]


# --------------------------------------------------------------------------- running

def run_experiment(cfg: RunConfig, data_root: str | Path, run_dir: str | Path, *,
                   reuse: bool = True, progress: bool = True) -> Path:
    """Train ``cfg`` into ``run_dir`` unless a finished run of the same config is there
    (:func:`musicaffect.training.engine.run_experiment`)."""
    from musicaffect.training.engine import run_experiment as run

    return run(cfg, data_root, run_dir, reuse=reuse, progress=progress)


def train_preset(cfg: RunConfig, data_root: str | Path, run_dir: str | Path, *,
                 budget: str = "standard", overrides: list[str] | None = None,
                 reuse: bool = True, progress: bool = True,
                 member_extra: dict | None = None) -> Path:
    """:func:`run_experiment`, or for an ensemble preset: train (or reuse) its members as
    sibling runs of ``run_dir`` with the same budget and overrides (and ``member_extra``,
    e.g. the data's own targets), then write the ensemble."""
    from musicaffect.families.registry import family_of

    def train(member_cfg, member_dir) -> Path:
        return run_experiment(member_cfg, data_root, member_dir, reuse=reuse,
                              progress=progress)

    build = family_of(cfg).build_members
    if build is not None:   # a family made of runs: members beside the run, same budget
        parent = Path(run_dir).parent
        return build(cfg, data_root, run_dir,
                     member_cfg=lambda p: _cfg(p, budget, overrides, member_extra),
                     member_dir=lambda p: parent / Path(p).stem, train=train)
    return run_experiment(cfg, data_root, run_dir, reuse=reuse, progress=progress)


def _evaluate_cached(run_dir: Path, data_root, *, rate: str | None = None) -> dict:
    """Evaluate a run once; the metrics file is reused while the checkpoint is unchanged."""
    from musicaffect.evaluation.evaluate import evaluate
    from musicaffect.evaluation.predictor import model_file

    best = model_file(run_dir)
    stamp = run_dir / "eval" / f"done-{rate or 'own'}.json"
    if stamp.is_file():
        saved = json.loads(stamp.read_text())
        if saved.get("mtime") == best.stat().st_mtime:
            return saved["result"]
    result = evaluate(run_dir, data_root, rate=rate)
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text(json.dumps({"mtime": best.stat().st_mtime, "result": result},
                                default=float))
    return result


def _cfg(preset: str, budget: str, overrides: list[str] | None, extra: dict | None = None,
         name: str | None = None) -> RunConfig:
    merged = dict(budget_overrides(budget))
    if extra:
        from musicaffect.config import deep_merge
        merged = deep_merge(merged, extra)
    if name:
        merged["name"] = name
    cfg = load_config(preset, overrides, extra=merged)
    shrink = budget_model_params().get(budget, {}).get(cfg.model.name)
    if shrink:
        cfg.model.params = {**cfg.model.params, **shrink}
    return cfg


def _is_synthetic(data_root) -> bool:
    from musicaffect.data import is_synthetic
    return bool(is_synthetic(data_root))


def data_vocabulary(data_root, overrides: list[str] | None = None):
    """The label vocabulary the suite's runs see (``data.genre_map`` among the overrides)."""
    from musicaffect.data.vocab import load_vocabulary

    genre_map = None
    for item in overrides or []:
        key, _, value = item.partition("=")
        if key.strip() == "data.genre_map":
            genre_map = value.strip()
    return load_vocabulary(data_root, genre_map=genre_map)


def references_apply(data_root, overrides: list[str] | None = None) -> bool:
    """True when LAB.md's public numbers are comparable: the Kaggle dataset's own labels."""
    return data_vocabulary(data_root, overrides).is_lab


OWN_DATA_NOTE = ("no public reference: this data root has its own labels (labels.json), so "
                 "LAB.md's Kaggle numbers are not comparable")


# --------------------------------------------------------------------------- genre

def genre_suite(data_root, out_dir, *, budget: str = "standard",
                overrides: list[str] | None = None, presets: list[str] | None = None,
                reuse: bool = True, progress: bool = True,
                on_step: Callable[[str], None] | None = None) -> SuiteResult:
    """Lab steps 5-7: train every genre preset, evaluate on the official test set."""
    out_dir = Path(out_dir)
    rows, runs = [], {}
    for name in presets or list(genre_references()):
        label, feats, ref_acc, ref_f1 = genre_references().get(name, (name, "?", None, None))
        if on_step:
            on_step(f"genre: {name}")
        cfg = _cfg(name, budget, overrides)
        run = train_preset(cfg, data_root, out_dir / name, budget=budget, overrides=overrides,
                           reuse=reuse, progress=progress)
        res = _evaluate_cached(run, data_root)["genre"]
        runs[name] = str(run)
        rows.append({"experiment": name, "model": label, "features": feats,
                     "accuracy": float(res["accuracy"]),
                     "macro_f1": float(res["macro_f1"]),
                     "ref_accuracy": ref_acc, "ref_macro_f1": ref_f1})
    synthetic = _is_synthetic(data_root)
    columns = ["experiment", "model", "features", "accuracy", "macro_f1"]
    if references_apply(data_root, overrides):
        note = genre_reference_note() + (" -- OUR NUMBERS ARE ON SYNTHETIC DATA, not "
                                         "comparable" if synthetic else "")
        columns += ["ref_accuracy", "ref_macro_f1"]
    else:
        vocab = data_vocabulary(data_root, overrides)
        note = f"{len(vocab.classes)} classes: {', '.join(vocab.classes)}; {OWN_DATA_NOTE}"
        for r in rows:
            r.pop("ref_accuracy"), r.pop("ref_macro_f1")
    result = SuiteResult("Genre classification (test set)", rows, columns, note, runs,
                         synthetic)
    _save(result, out_dir / "genre_table")
    return result


# --------------------------------------------------------------------------- affect

def _affect_row(label: str, per_target: dict[str, float],
                targets: tuple[str, ...] | list[str] = TARGETS, *,
                experiment: str | None = None) -> dict:
    """One row of an affect table; ``experiment`` names its run (a key of the suite's
    ``runs``)."""
    ref = affect_references().get(label)
    row: dict = {"model": label}
    for t in targets:
        row[t] = per_target.get(t)
    vals = [per_target[t] for t in targets if per_target.get(t) is not None]
    row["mean"] = float(sum(vals) / len(vals)) if vals else None
    for key, value in per_target.items():
        if key.startswith("auc_"):
            row[key] = value
    row["ref_mean"] = ref[3] if ref else None
    row["experiment"] = experiment
    return row


AFFECT_COLUMNS = ["model", *TARGETS, "mean", "ref_mean"]


def affect_columns(vocab, *, references: bool) -> list[str]:
    """Table columns: Spearman per target, mean, ROC-AUC per binary target, reference."""
    cols = ["model", *vocab.targets, "mean", *(f"auc_{t}" for t in vocab.binary_targets())]
    return cols + (["ref_mean"] if references else [])


def _spearmans(run: Path, data_root) -> dict[str, float]:
    res = _evaluate_cached(run, data_root)
    reg = res["regression"]
    out = {t: float(m["spearman"]) for t, m in reg["per_target"].items()}
    for t, b in res.get("binary", {}).items():
        out[f"auc_{t}"] = b["roc_auc"]
    return out


def affect_suite(data_root, out_dir, *, budget: str = "standard",
                 overrides: list[str] | None = None, reuse: bool = True,
                 progress: bool = True, on_step: Callable[[str], None] | None = None,
                 targets: list[str] | None = None) -> SuiteResult:
    """Lab step 8: one regressor per target with the best LSTM recipe and the CNN."""
    out_dir = Path(out_dir)
    vocab = data_vocabulary(data_root, overrides)
    rows, runs = [], {}
    for exp in suite_experiments()["affect"]:
        preset = exp["preset"]
        per: dict[str, float] = {}
        for t in targets or list(vocab.targets):
            if on_step:
                on_step(f"affect: {preset} {t}")
            name = f"{preset}-{t}"
            cfg = _cfg(preset, budget, overrides, {"data": {"tasks": [t]}}, name=name)
            run = run_experiment(cfg, data_root, out_dir / name, reuse=reuse, progress=progress)
            runs[name] = str(run)
            per.update(_spearmans(run, data_root))
        rows.append(_affect_row(exp["label"], per, vocab.targets,
                                experiment=exp["experiment"]))
    return _affect_result("Affect regression, one model per target (Spearman, held-out)",
                          rows, runs, data_root, out_dir / "affect_table", overrides)


def _affect_result(title, rows, runs, data_root, path, overrides=None) -> SuiteResult:
    synthetic = _is_synthetic(data_root)
    vocab = data_vocabulary(data_root, overrides)
    refs = vocab.is_lab
    if refs:
        note = ("ref_mean = best public student result of LAB.md (real data)"
                + (" -- OUR NUMBERS ARE ON SYNTHETIC DATA, not comparable" if synthetic
                   else ""))
    else:
        note = OWN_DATA_NOTE
        rows = [{k: v for k, v in r.items() if k != "ref_mean"} for r in rows]
    if vocab.binary_targets():
        note += ("; auc_<target> = ROC-AUC of a binary target (Spearman is in the target's "
                 "own column)")
    result = SuiteResult(title, rows, affect_columns(vocab, references=refs), note, runs,
                         synthetic)
    _save(result, path)
    return result


def _genre_source(data_root, out_dir: Path, budget, overrides, reuse, progress,
                  genre_run: str | Path | None, on_step) -> Path:
    if genre_run:
        return Path(genre_run)
    preset = suite_experiments()["transfer"]["source"]
    if on_step:
        on_step(f"transfer: genre CNN ({preset})")
    cfg = _cfg(preset, budget, overrides)
    return run_experiment(cfg, data_root, out_dir / preset, reuse=reuse, progress=progress)


def transfer_suite(data_root, out_dir, *, budget: str = "standard",
                   overrides: list[str] | None = None, reuse: bool = True,
                   progress: bool = True, genre_run: str | Path | None = None,
                   baseline: SuiteResult | None = None, freeze: bool = False,
                   on_step: Callable[[str], None] | None = None) -> SuiteResult:
    """Lab step 9: CNN regressors whose backbone starts from a genre CNN (best epoch)."""
    out_dir = Path(out_dir)
    source = _genre_source(data_root, out_dir, budget, overrides, reuse, progress, genre_run,
                           on_step)
    vocab = data_vocabulary(data_root, overrides)
    rows, runs = [], {"genre source": str(source)}
    spec = suite_experiments()["transfer"]
    for exp in spec["variants"]:
        frozen = bool(exp.get("freeze"))
        if frozen and not freeze:
            continue
        per: dict[str, float] = {}
        for t in vocab.targets:
            name = f"{exp['experiment']}-{t}"
            if on_step:
                on_step(f"transfer: {name}")
            cfg = _cfg(exp["preset"], budget, overrides,
                       {"data": {"tasks": [t]},
                        "transfer": {"checkpoint": str(source), "freeze_backbone": frozen}},
                       name=name)
            run = run_experiment(cfg, data_root, out_dir / name, reuse=reuse, progress=progress)
            runs[name] = str(run)
            per.update(_spearmans(run, data_root))
        rows.append(_affect_row(exp["label"], per, vocab.targets,
                                experiment=exp["experiment"]))
    if baseline is not None:
        rows = [r for r in baseline.rows if r.get("experiment") in spec["baseline"]] + rows
    return _affect_result("Transfer learning from genre (Spearman, held-out)", rows, runs,
                          data_root, out_dir / "transfer_table", overrides)


def multitask_suite(data_root, out_dir, *, budget: str = "standard",
                    overrides: list[str] | None = None, reuse: bool = True,
                    progress: bool = True, genre_run: str | Path | None = None,
                    baseline_rows: list[dict] | None = None,
                    on_step: Callable[[str], None] | None = None) -> SuiteResult:
    """Lab step 10: shared backbone, three heads; fixed and learned weights, + transfer."""
    out_dir = Path(out_dir)
    source = _genre_source(data_root, out_dir, budget, overrides, reuse, progress, genre_run,
                           on_step)
    from musicaffect.config import deep_merge

    vocab = data_vocabulary(data_root, overrides)
    own = _own_targets(vocab)
    rows, runs = [], {"genre source": str(source)}
    for exp in suite_experiments()["multitask"]:
        name = exp["experiment"]
        if on_step:
            on_step(f"multitask: {name}")
        extra = dict(exp.get("extra") or {})
        if exp.get("transfer"):
            extra = deep_merge({"transfer": {"checkpoint": str(source)}}, extra)
        if own:
            extra = deep_merge(own, extra)
        cfg = _cfg(exp["preset"], budget, overrides, extra, name=name)
        run = train_preset(cfg, data_root, out_dir / name, budget=budget, overrides=overrides,
                           reuse=reuse, progress=progress, member_extra=own or None)
        runs[name] = str(run)
        rows.append(_affect_row(exp["label"], _spearmans(run, data_root), vocab.targets,
                                experiment=name))
    rows = list(baseline_rows or []) + rows
    return _affect_result("Multitask learning (Spearman, held-out)", rows, runs, data_root,
                          out_dir / "multitask_table", overrides)


def _own_targets(vocab) -> dict:
    """Multitask overrides on data with its own targets: every target, equal weights (the
    lab's 0.4/0.2/0.2 are for valence/energy/danceability), no sigmoid for labels outside
    [0, 1]."""
    unit = all(0.0 <= lo and hi <= 1.0 for lo, hi in vocab.ranges.values())
    if tuple(vocab.targets) == TARGETS and unit:
        return {}
    extra: dict = {"data": {"tasks": list(vocab.targets)}, "loss": {"weights": None}}
    if not unit:
        extra["loss"]["bounded"] = False
    return extra


def best_run(result: SuiteResult, key: str = "mean") -> str:
    """The run folder of the best row whose model was trained in this suite (its
    ``experiment`` is one of the suite's runs)."""
    mine = [r for r in result.rows
            if r.get(key) is not None and r.get("experiment") in result.runs]
    if not mine:
        raise ConfigError(f"{result.title}: no row names a run of this suite; rerun the "
                          "suite to rebuild its table")
    return result.runs[max(mine, key=lambda r: r[key])["experiment"]]


def multitask_baseline(affect: SuiteResult | None, transfer: SuiteResult | None) -> list[dict]:
    """The rows the multitask table is compared with: every affect row, then the transfer
    table's own rows (not the affect rows it repeats)."""
    own = {e["experiment"] for e in suite_experiments()["transfer"]["variants"]}
    rows = list(affect.rows) if affect is not None else []
    if transfer is not None:
        rows += [r for r in transfer.rows if r.get("experiment") in own]
    return rows


def _save(result: SuiteResult, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".json").write_text(json.dumps(result.to_dict(), indent=2))
    path.with_suffix(".txt").write_text(result.to_text() + "\n")


def aggregate_seeds(results: list[SuiteResult]) -> SuiteResult:
    """One table from the same suite run with several seeds: every numeric column becomes
    its mean over the seeds, with a ``<column>_std`` column (sample standard deviation)
    beside it; reference columns (``ref_*``) are kept as they are."""
    import numpy as np

    first = results[0]
    cols: list[str] = []
    numeric = []
    for c in first.columns:
        cols.append(c)
        if not c.startswith("ref_") and any(isinstance(r.get(c), float) for r in first.rows):
            numeric.append(c)
            cols.append(f"{c}_std")
    rows = []
    for i, row in enumerate(first.rows):
        new = dict(row)
        for c in numeric:
            vals = [res.rows[i].get(c) for res in results if i < len(res.rows)]
            vals = [v for v in vals if isinstance(v, (int, float))]
            new[c] = float(np.mean(vals)) if vals else None
            new[f"{c}_std"] = float(np.std(vals, ddof=1)) if len(vals) > 1 else None
        rows.append(new)
    runs = {f"{k} (seed {s})": v for s, res in enumerate(results) for k, v in res.runs.items()}
    note = (first.note + "; " if first.note else "") + \
        f"mean and std over {len(results)} seeds (seed=0..{len(results) - 1})"
    return SuiteResult(f"{first.title}, {len(results)} seeds", rows, cols, note, runs,
                       first.synthetic)
