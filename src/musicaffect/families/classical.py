"""The classical family (``model.name: classical``): the scikit-learn models of
:mod:`musicaffect.models.classical` fitted on the run's training part, scored on its
validation part, written as a run folder like a deep run's, loaded as
:class:`~musicaffect.models.classical.ClassicalMember`."""

from __future__ import annotations

import csv
import json
import logging
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from musicaffect.errors import ConfigError
from musicaffect.families.base import Family, json_model_file
from musicaffect.families.registry import register
from musicaffect.features.params import root_feature_params
from musicaffect.io import atomic_write
from musicaffect.models.classical import (
    CLASSICAL_FILE,
    FORMAT,
    ClassicalMember,
    ClassicalParams,
    classical_params,
    classical_specs,
    dataset_features,
    fit_task,
    save_task_model,
)
from musicaffect.tasks import multiclass_task, scalar_tasks, specs_to_dict

log = logging.getLogger(__name__)


NAME = "classical"


def fit_classical(cfg, data_root, run_dir, *, resume: bool = False, overwrite: bool = False,
                  progress: bool = True, train=None):
    """Train a classical run (``model.name: classical``): what ``fit`` does for deep models.

    Writes ``config.yaml``, ``checkpoints/best.classical.json`` and the task model files,
    ``metrics.csv`` (one row) and ``summary.json``; returns a
    :class:`~musicaffect.training.result.FitResult` (``best_epoch`` 0). ``resume`` retrains
    (a classical fit is one step); ``train`` (other runs' trainer) is not used.
    """
    from musicaffect.config import save_config
    from musicaffect.data.loading import prepare_data
    from musicaffect.training.result import FitResult
    from musicaffect.training.rundir import plan_run_dir, write_run

    p = classical_params(cfg.model.params)
    if cfg.train.overfit_batches:
        raise ConfigError("the overfit check (train.overfit_batches) is for neural networks; "
                          "a classical model has no training loss to drive to zero")
    if cfg.transfer.checkpoint:
        raise ConfigError("transfer.checkpoint does not apply to a classical model")
    run_dir = Path(run_dir)
    # only looks (the folder is written once the models are fitted): --resume retrains
    plan = plan_run_dir(run_dir, data_root=data_root, overwrite=overwrite or resume)
    t_start = time.perf_counter()
    data = prepare_data(cfg, data_root)
    X, ids, labels = dataset_features(data.dataset, p, max_length=cfg.data.max_length)
    tr, va = data.train_idx, data.val_idx
    specs = classical_specs(data.vocab, data.tasks)
    fitted, search = {}, {}
    for task in data.tasks:
        y = data.dataset.labels(task)
        classify = specs[task].is_multiclass
        # clips without this label (genre -100 / NaN target in joint genre + target data)
        has = (y >= 0) if classify else np.isfinite(y)
        t0 = time.perf_counter()
        model, info = fit_task(p, X[tr][has[tr]], y[tr][has[tr]], classify=classify,
                               seed=cfg.seed)
        info["seconds"] = time.perf_counter() - t0
        fitted[task] = model
        search[task] = info
        log.info("classical %s %s: best %s (internal CV score %s, %.1fs)", p.estimator, task,
                 info["best_params"], info["cv_score"], info["seconds"])
    feats = {"view": cfg.data.view, "rate": cfg.data.rate, "n_features": data.n_features,
             "percentiles": list(p.percentiles), "deltas": p.deltas, "dim": int(X.shape[1]),
             "max_length": cfg.data.max_length}

    def write(folder: Path) -> FitResult:
        ckpt_dir = folder / "checkpoints"
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        entries = {t: {**save_task_model(m, ckpt_dir, t, p.estimator), **search[t]}
                   for t, m in fitted.items()}
        meta = {"format": FORMAT, "config": cfg.to_dict(), "estimator": p.estimator,
                "features": feats, "tasks": list(data.tasks),
                "classes": list(data.vocab.classes), "targets": list(data.vocab.targets),
                "kinds": {t: data.vocab.kind(t) for t in scalar_tasks(specs)},
                "task_specs": specs_to_dict(specs),
                "vocab": data.vocab.to_dict(), "models": entries, "data": data.info,
                "feature_params": root_feature_params(data_root).to_dict()}
        atomic_write(ckpt_dir / CLASSICAL_FILE, json.dumps(meta, indent=2))
        # the validation metrics come from the model as saved (reloaded from disk)
        member = ClassicalMember(folder)
        val = member.predict_features(X[va], [ids[i] for i in va],
                                      {t: v[va] for t, v in labels.items()})
        seconds = time.perf_counter() - t_start
        metrics = {"epoch": 0, **_val_metrics(val, specs), "seconds": seconds}
        meta["metrics"] = metrics
        atomic_write(ckpt_dir / CLASSICAL_FILE, json.dumps(meta, indent=2))
        save_config(cfg, folder / "config.yaml")
        with open(folder / "metrics.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(metrics))
            w.writeheader()
            w.writerow(metrics)
        monitor = cfg.train.monitor
        score = float(metrics.get(monitor, float("nan")))
        summary = {"best_epoch": 0, "best_score": score, "monitor": monitor,
                   "stopped_early": False, "epochs": 1, "best_metrics": metrics,
                   "seconds": seconds, "classical": {"estimator": p.estimator,
                                                     "search": search, "params": asdict(p)}}
        (folder / "summary.json").write_text(json.dumps(summary, indent=2, default=float))
        return FitResult(run_dir, 0, score, monitor, [metrics], False, metrics, seconds)

    return write_run(plan, cfg, write)


def _val_metrics(val, specs: dict) -> dict[str, float]:
    """Validation metrics of the tasks ``specs`` (name -> TaskSpec), named as the deep
    runs' (``val_loss``, ``val_accuracy`` ...)."""
    from musicaffect.evaluation.metrics import classification_metrics, regression_metrics

    m: dict[str, float] = {}
    ct = multiclass_task(specs)
    if ct is not None:
        y = val.labels[ct].astype(np.int64)
        p = np.clip(val.probs[np.arange(len(y)), y], 1e-12, 1.0)
        m["val_loss"] = float(-np.mean(np.log(p)))                     # cross-entropy
        cm = classification_metrics(y, val.probs.argmax(axis=1), classes=val.classes)
        m["val_accuracy"] = float(cm["accuracy"])
        m["val_macro_f1"] = float(cm["macro_f1"])
    reg = scalar_tasks(specs)
    if reg:
        rm = regression_metrics({t: val.labels[t] for t in reg},
                                {t: val.values[t] for t in reg})
        m["val_loss"] = float(rm["mse_mean"])
        for t in reg:
            m[f"val_spearman_{t}"] = float(rm["per_target"][t]["spearman"])
        m["val_spearman_mean"] = float(rm["spearman_mean"])
    return m


FAMILY = register(Family(
    name=NAME, params=ClassicalParams, fit=fit_classical, model_file=json_model_file(CLASSICAL_FILE),
    checkpoint_files=(f"checkpoints/{CLASSICAL_FILE}",),
    load=lambda path, *, which="best": ClassicalMember(path),
    claims=lambda name: name == NAME,
    describe=lambda cfg, res, out: (
        f"run {out}: {res.monitor}={res.best_score:.4f} on the validation part (classical "
        f"{cfg.model.params.get('estimator', 'linear')}, {res.seconds:.1f}s)")))
