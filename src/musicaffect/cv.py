"""Cross-validation: choose a model on a small dataset by k folds instead of one test split.

``musicaffect cv DATA_ROOT --presets A,B --folds 5 [--seeds N]`` pools the labelled clips
(genre: the train and test splits; affect: the labelled multitask train split), cuts them
into stratified folds (grouped where the data has groups: every clip of a group stays in
one fold), and for each fold and seed trains every preset on the other folds and scores it
on the fold. It prints and saves (``cv_table.json``, ``cv_table.md``) the mean +- std of each
metric per preset with the training time.

Each fold is a data root of its own in the Kaggle layout (``OUT/data/fold-K``), so every
preset, deep, classical or ensemble, trains and evaluates exactly as it does on the real
layout. Its ``train/`` folder is a link to one pooled folder of links to the original clip
files, so the clip cache of the pool is built once and shared by every fold; ``test/`` holds
links to the fold's clips only.

Groups come from the data root: a ``group`` column in ``clips.csv`` (written by
``build-dataset``) or ``groups.csv`` (``id,group``), or a ``group`` attribute of the clip
records; without them every clip is its own group.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from musicaffect.data.layout import FOLDERS, RATES, index_clips, label_file_name
from musicaffect.data.vocab import load_groups, load_vocabulary, read_groups
from musicaffect.errors import ConfigError, DataError

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- folds


def stratify_labels(y: np.ndarray, *, classify: bool, bins: int = 5) -> np.ndarray:
    """Labels to stratify by: class indices, or quantile bins of a regression value."""
    y = np.asarray(y)
    if classify:
        return y.astype(np.int64)
    edges = np.unique(np.quantile(y, np.linspace(0, 1, bins + 1)[1:-1]))
    return np.searchsorted(edges, y, side="right").astype(np.int64)


def make_folds(y: np.ndarray, groups: Sequence | None = None, *, folds: int = 5,
               seed: int = 0) -> list[np.ndarray]:
    """Test indices of each fold: stratified by ``y``, whole groups kept in one fold.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)], int
        Stratification labels (:func:`stratify_labels`).
    groups : sequence [shape=(n,)], optional
        Group of every item (default: each item its own group).
    folds : int
    seed : int
        Shuffles the groups before they are dealt out.

    Returns
    -------
    list of np.ndarray
        ``folds`` disjoint, sorted index arrays that together cover ``range(n)``.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    n = len(y)
    groups = np.arange(n) if groups is None else np.asarray(groups)
    n_groups = len(np.unique(groups))
    if folds < 2:
        raise ConfigError(f"--folds must be at least 2, got {folds}")
    if n_groups < folds:
        raise DataError(f"{n} clips in {n_groups} group(s) cannot make {folds} folds; use "
                        f"--folds {max(2, n_groups)} or fewer")
    import warnings

    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # classes smaller than the number of folds
        out = [np.sort(test) for _, test in splitter.split(np.zeros(n), y, groups)]
    return out


# --------------------------------------------------------------------------- fold roots

@dataclass
class Pool:
    """The labelled clips of one kind (genre or multitask) pooled over the splits."""

    dataset: str
    ids: list[str]
    records: dict[str, dict]            # rate -> {id: ClipRecord}
    strat: np.ndarray                   # stratification label per id
    groups: list[str]
    info: dict = field(default_factory=dict)


def pool_clips(data_root, dataset: str) -> Pool:
    """Index the labelled clips of every rate folder of ``dataset`` present in the root."""
    root = Path(data_root)
    rates = [r for r in RATES if (root / FOLDERS[dataset, r]).is_dir()]
    if not rates:
        raise DataError(f"no {dataset} folder ({', '.join(FOLDERS[dataset, r] for r in RATES)}) "
                        "under the data root; point cv at a data root in the Kaggle layout",
                        path=root)
    splits = ("train", "test") if dataset == "genre" else ("train",)
    records: dict[str, dict] = {}
    for rate in rates:
        recs: dict = {}
        for split in splits:
            for r in index_clips(root, dataset=dataset, rate=rate, split=split):
                if r.id in recs:
                    raise DataError(f"clip {r.id} is in both the train and the test split of "
                                    f"{FOLDERS[dataset, rate]}; a clip id must be unique",
                                    path=root / FOLDERS[dataset, rate])
                recs[r.id] = r
        records[rate] = recs
    ids = list(records[rates[0]])
    common = set(ids).intersection(*[set(v) for v in records.values()])
    if len(common) < len(ids):
        log.warning("cv: %d clip(s) are not in every rate folder; using the %d in all",
                    len(ids) - len(common), len(common))
    ids = [i for i in ids if i in common]
    first = records[rates[0]]
    vocab = load_vocabulary(root)
    if dataset == "genre":
        strat = stratify_labels(np.array([vocab.class_index(first[i].genre10) for i in ids]),
                                classify=True)
    else:
        y = np.array([np.mean([first[i].targets[t] for t in vocab.targets]) for i in ids])
        strat = stratify_labels(y, classify=False)
    known = load_groups(root, vocab)
    groups = [str(getattr(first[i], "group", None) or known.get(i) or f"\0{i}") for i in ids]
    n_groups = len(set(groups))
    return Pool(dataset, ids, records, strat, groups,
                {"rates": rates, "n_clips": len(ids), "n_groups": n_groups,
                 "grouped": n_groups < len(ids), "targets": list(vocab.targets)})


def _link(target: Path, link: Path) -> None:
    if link.is_symlink() or link.exists():
        if link.is_symlink() and os.readlink(link) == str(target):
            return
        if link.is_dir() and not link.is_symlink():
            shutil.rmtree(link)
        else:
            link.unlink()
    link.symlink_to(target)


def write_fold_roots(pool: Pool, data_root, out: Path, folds: list[np.ndarray]) -> list[Path]:
    """Write one data root per fold under ``out`` (see module docstring); returns them."""
    root = Path(data_root)
    roots = []
    for rate in pool.info["rates"]:
        folder = FOLDERS[pool.dataset, rate]
        clips = out / "pool" / folder
        clips.mkdir(parents=True, exist_ok=True)
        for cid in pool.ids:
            src = pool.records[rate][cid].path.resolve()
            _link(src, clips / src.name)
    for k, test_idx in enumerate(folds):
        froot = out / f"fold-{k}"
        froot.mkdir(parents=True, exist_ok=True)
        for f in root.iterdir():   # markers and metadata (SYNTHETIC.txt, labels, params)
            if f.is_file() and f.stat().st_size < 10_000_000:
                shutil.copy2(f, froot / f.name)
        test_ids = {pool.ids[i] for i in test_idx}
        for rate in pool.info["rates"]:
            folder = FOLDERS[pool.dataset, rate]
            fdir = froot / folder
            fdir.mkdir(parents=True, exist_ok=True)
            _link((out / "pool" / folder).resolve(), fdir / "train")
            test_dir = fdir / "test"
            if test_dir.is_symlink():
                test_dir.unlink()
            if test_dir.is_dir():
                shutil.rmtree(test_dir)
            test_dir.mkdir()
            recs = pool.records[rate]
            for cid in sorted(test_ids):
                src = recs[cid].path.resolve()
                (test_dir / src.name).symlink_to(src)
            train = [cid for cid in pool.ids if cid not in test_ids]
            test = [cid for cid in pool.ids if cid in test_ids]
            if pool.dataset == "genre":
                for split, ids in (("train", train), ("test", test)):
                    lines = ["Id\tGenre"] + [f"{recs[c].path.name}\t{recs[c].genre20}"
                                             for c in ids]
                    (fdir / label_file_name(split)).write_text("\n".join(lines) + "\n")
            else:
                targets = pool.info["targets"]
                lines = [",".join(["Id", *targets])] + [
                    ",".join([recs[c].path.name] + [repr(float(recs[c].targets[t]))
                                                    for t in targets]) for c in train]
                (fdir / label_file_name("train")).write_text("\n".join(lines) + "\n")
        _link_embeddings(pool, root, out, froot, test_ids)
        roots.append(froot)
    return roots


def _link_embeddings(pool: Pool, root: Path, out: Path, froot: Path, test_ids: set) -> None:
    """Give a fold root the data root's embedding views (``embeddings/<model>/``, see
    :mod:`musicaffect.features.embed`), split as the fold's clips are: ``train`` is every
    pooled clip's embedding, ``test`` the fold's."""
    from musicaffect.features.embed import EMBED_DIR, EMBED_FOLDERS, SPLITS

    if not (root / EMBED_DIR).is_dir():
        return
    for view in sorted(p for p in (root / EMBED_DIR).iterdir() if p.is_dir()):
        folder = FOLDERS[pool.dataset, "full"]
        if folder not in EMBED_FOLDERS or not (view / folder).is_dir():
            continue
        pooled = out / "pool" / EMBED_DIR / view.name / folder
        pooled.mkdir(parents=True, exist_ok=True)
        for split in SPLITS:
            for f in sorted((view / folder / split).glob("*.npz")) \
                    if (view / folder / split).is_dir() else []:
                _link(f.resolve(), pooled / f.name)
        dest = froot / EMBED_DIR / view.name
        dest.mkdir(parents=True, exist_ok=True)
        for f in view.iterdir():     # embed_params.json, errors.csv
            if f.is_file():
                shutil.copy2(f, dest / f.name)
        (dest / folder).mkdir(exist_ok=True)
        _link(pooled.resolve(), dest / folder / "train")
        test_dir = dest / folder / "test"
        if test_dir.is_symlink():
            test_dir.unlink()
        if test_dir.is_dir():
            shutil.rmtree(test_dir)
        test_dir.mkdir()
        for cid in sorted(test_ids):
            if (pooled / f"{cid}.npz").exists():
                (test_dir / f"{cid}.npz").symlink_to((pooled / f"{cid}.npz").resolve())


# --------------------------------------------------------------------------- running

@dataclass
class CVResult:
    """Per-preset scores over folds and seeds."""

    rows: list[dict]
    metrics: list[str]
    scores: dict[str, dict[str, list[float]]]
    info: dict

    def to_dict(self) -> dict:
        return {"rows": self.rows, "metrics": self.metrics, "scores": self.scores,
                "info": self.info}

    def to_markdown(self) -> str:
        cols = ["preset", "runs", *self.metrics, "train s/run"]
        lines = [f"Cross-validation: {self.info['folds']} folds x {self.info['seeds']} "
                 f"seed(s), {self.info['n_clips']} clips"
                 f"{' in ' + str(self.info['n_groups']) + ' groups' if self.info['grouped'] else ''}"
                 f" ({self.info['dataset']}), budget {self.info['budget']}", "",
                 "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        for r in self.rows:
            cells = [r["preset"], str(r["runs"])]
            for m in self.metrics:
                cells.append(_pm(r.get(f"{m}_mean"), r.get(f"{m}_std")))
            cells.append(f"{r['seconds_mean']:.1f}")
            lines.append("| " + " | ".join(cells) + " |")
        if self.info.get("synthetic"):
            lines += ["", "SYNTHETIC data: these numbers say nothing about real music."]
        return "\n".join(lines) + "\n"

    def to_text(self) -> str:
        from musicaffect.suites import format_table

        cols = ["preset", "runs", *self.metrics, "train s/run"]
        rows = [{"preset": r["preset"], "runs": str(r["runs"]),
                 **{m: _pm(r.get(f"{m}_mean"), r.get(f"{m}_std")) for m in self.metrics},
                 "train s/run": f"{r['seconds_mean']:.1f}"} for r in self.rows]
        note = ("mean +- std over folds x seeds"
                + (" -- SYNTHETIC DATA, not results on music" if self.info.get("synthetic")
                   else ""))
        return format_table(rows, cols, title=self.to_markdown().splitlines()[0], note=note)


def _pm(mean, std) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "-"
    return f"{mean:.3f} +- {std:.3f}"


def _score_run(run: Path, fold_root: Path, pool: Pool, test_ids: list[str]) -> dict[str, float]:
    """The fold's metrics of a trained run (genre: accuracy, macro-F1; affect: Spearman)."""
    if pool.dataset == "genre":
        from musicaffect.evaluation.evaluate import evaluate

        g = evaluate(run, fold_root)["genre"]
        return {"accuracy": float(g["accuracy"]), "macro_f1": float(g["macro_f1"])}
    from musicaffect.evaluation.binary import binary_summary
    from musicaffect.evaluation.metrics import regression_metrics
    from musicaffect.evaluation.predictor import Predictor

    predictor = Predictor.load([run])
    pred = predictor.predict_split(fold_root, dataset="multitask", split="test")
    recs = pool.records[pool.info["rates"][0]]
    y_true = {t: np.array([recs[c].targets[t] for c in pred.ids]) for t in pred.values}
    rm = regression_metrics(y_true, {t: pred.values[t] for t in y_true})
    out = {f"spearman_{t}": float(rm["per_target"][t]["spearman"]) for t in y_true}
    out["spearman_mean"] = float(rm["spearman_mean"])
    kinds = {t: k for m in predictor.members for t, k in m.kinds.items()}
    for t, b in binary_summary(y_true, pred.values, kinds).items():
        if b["roc_auc"] is not None:
            out[f"auc_{t}"] = float(b["roc_auc"])
    return out


def run_cv(data_root, presets: Sequence[str], out_dir, *, folds: int = 5, seeds: int = 1,
           budget: str = "standard", overrides: Sequence[str] | None = None,
           split_seed: int = 0, reuse: bool = True, progress: bool = True,
           on_step: Callable[[str], None] | None = None) -> CVResult:
    """Cross-validate ``presets`` on the pooled labelled clips of ``data_root``.

    Every preset is trained once per fold and seed (seeds ``0 .. seeds-1``, as ``seed=``)
    into ``out_dir/folds/fold-K/seed-S/<preset>``; finished runs are reused when ``cv`` is
    run again with the same settings. Returns a :class:`CVResult`, also written as
    ``out_dir/cv_table.json`` and ``cv_table.md``.
    """
    from musicaffect.data import is_synthetic
    from musicaffect.outputs import claim_output_dir, hold_folder
    from musicaffect.suites import _cfg, budget_overrides, train_preset

    if not presets:
        raise ConfigError("give at least one preset: --presets classical-logreg,cnn-full-mel")
    if seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, got {seeds}")
    budget_overrides(budget)
    overrides = list(overrides or [])
    cfgs = {p: _cfg(p, budget, overrides) for p in presets}
    kinds = {c.data.dataset for c in cfgs.values()}
    if len(kinds) != 1:
        raise ConfigError("cv compares presets of one kind: all genre presets or all affect "
                          f"(multitask) presets, got {', '.join(sorted(kinds))}")
    dataset = kinds.pop()
    pool = pool_clips(data_root, dataset)
    fold_idx = make_folds(pool.strat, pool.groups, folds=folds, seed=split_seed)
    out = claim_output_dir(out_dir, "cv", writes=("cv_table.json", "cv_table.md"),
                           legacy=lambda p: (p / "folds").is_dir() and (p / "data").is_dir())
    hold_folder(out)
    roots = write_fold_roots(pool, data_root, out / "data", fold_idx)
    info = {"data_root": str(Path(data_root).resolve()), "dataset": dataset, "folds": folds,
            "seeds": seeds, "budget": budget, "overrides": overrides,
            "split_seed": split_seed, "synthetic": bool(is_synthetic(data_root)),
            "presets": list(presets), **pool.info,
            "fold_sizes": [int(len(f)) for f in fold_idx]}
    scores: dict[str, dict[str, list[float]]] = {p: {} for p in presets}
    seconds: dict[str, list[float]] = {p: [] for p in presets}
    for k, froot in enumerate(roots):
        test_ids = [pool.ids[i] for i in fold_idx[k]]
        for s in range(seeds):
            run_base = out / "folds" / f"fold-{k}" / f"seed-{s}"
            extra = [*overrides, f"seed={s}"]
            for p in presets:
                if on_step:
                    on_step(f"cv: fold {k + 1}/{folds}, seed {s}, {p}")
                log.info("cv: fold %d/%d seed %d: %s", k + 1, folds, s, p)
                cfg = _cfg(p, budget, extra)
                t0 = time.perf_counter()
                run = train_preset(cfg, froot, run_base / Path(p).stem, budget=budget,
                                   overrides=extra, reuse=reuse, progress=progress)
                seconds[p].append(_train_seconds(run, time.perf_counter() - t0))
                for m, v in _score_run(run, froot, pool, test_ids).items():
                    scores[p].setdefault(m, []).append(v)
    metrics = ["accuracy", "macro_f1"] if dataset == "genre" else (
        [f"spearman_{t}" for t in pool.info["targets"]] + ["spearman_mean"]
        + sorted({m for p in presets for m in scores[p] if m.startswith("auc_")}))
    rows = []
    for p in presets:
        row: dict = {"preset": p, "runs": folds * seeds}
        for m in metrics:
            v = scores[p].get(m)
            row[f"{m}_mean"] = float(np.mean(v)) if v else None
            row[f"{m}_std"] = float(np.std(v, ddof=1)) if v and len(v) > 1 else (0.0 if v else None)
        row["seconds_mean"] = float(np.mean(seconds[p]))
        row["seconds_total"] = float(np.sum(seconds[p]))
        rows.append(row)
    metrics = [m for m in metrics if any(r.get(f"{m}_mean") is not None for r in rows)]
    result = CVResult(rows, metrics, {**scores, **{f"{p}:seconds": {"train": seconds[p]}
                                                   for p in presets}}, info)
    (out / "cv_table.json").write_text(json.dumps(result.to_dict(), indent=2, default=float))
    (out / "cv_table.md").write_text(result.to_markdown())
    return result


def _train_seconds(run: Path, wall: float) -> float:
    """Training time of a run: its ``summary.json`` seconds (the members' sum for an
    ensemble); the wall time when there is none (a reused run keeps its first time)."""
    s = Path(run) / "summary.json"
    if s.is_file():
        try:
            v = json.loads(s.read_text()).get("seconds")
            if isinstance(v, (int, float)):
                return float(v)
        except json.JSONDecodeError:
            pass
    return wall


__all__ = ["CVResult", "make_folds", "pool_clips", "read_groups", "run_cv", "stratify_labels",
           "write_fold_roots"]
