"""Evaluate a trained run (lab step 6 for genre; step 8's held-out metrics for affect).

Genre models are evaluated on the official test split of the genre folder at the rate they
were trained on (and, on request, at the other rate: the CNN accepts any length). Affect
models are evaluated on the held-out validation part of the multitask train split (the
competition's test split has no labels). Results are written as JSON, text and PNG figures.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch

from musicaffect.config import config_from_dict
from musicaffect.data.labels import CLASSES, GENRE_TASK
from musicaffect.errors import CheckpointError
from musicaffect.training.checkpoint import load_model

log = logging.getLogger(__name__)


def _check_fits(model, ckpt: dict, n_features: int, where: str) -> None:
    margs = ckpt["model"]
    if margs["n_features"] != n_features:
        raise CheckpointError(
            f"{ckpt['path']}: the model reads {margs['n_features']} features per frame but "
            f"{where} has {n_features}; evaluate with the view the model was trained on")
    if GENRE_TASK in margs["tasks"] and margs["tasks"][GENRE_TASK] != len(CLASSES):
        raise CheckpointError(f"{ckpt['path']}: the model has {margs['tasks'][GENRE_TASK]} "
                              f"classes but the data has {len(CLASSES)}")


def evaluate(checkpoint: str | Path, data_root: str | Path, *, rate: str | None = None,
             out_dir: str | Path | None = None, batch_size: int = 32,
             device: str | None = None) -> dict:
    """Evaluate a checkpoint (or run folder) and write metrics and figures.

    Parameters
    ----------
    checkpoint : path
        A run folder (its ``checkpoints/best.pt`` is used) or a ``.pt`` file.
    data_root : path
        The dataset root.
    rate : {"full", "beat"}, optional
        Test folder rate for genre models; default: the rate the model was trained on.
    out_dir : path, optional
        Where to write; default ``<run>/eval/<name>``.

    Returns
    -------
    dict
        The metrics (also in ``metrics.json``) plus ``out_dir``.
    """
    import matplotlib.pyplot as plt

    from musicaffect.data.dataset import SpectrogramDataset
    from musicaffect.evaluation.metrics import classification_metrics, regression_metrics
    from musicaffect.evaluation.plots import plot_confusion, plot_scatter
    from musicaffect.paths import check_output_dir
    from musicaffect.training.engine import make_loader, predict_outputs, prepare_data
    from musicaffect.training.losses import predict_transform

    if out_dir:
        check_output_dir(out_dir, what="evaluation folder")
    model, ckpt = load_model(checkpoint)
    cfg = config_from_dict(ckpt["config"])
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model.to(dev)
    tasks = list(ckpt["model"]["tasks"])
    # the run folder owning checkpoints/, else the folder of a loose .pt file
    run_dir = Path(ckpt["path"]).parent
    if run_dir.name == "checkpoints":
        run_dir = run_dir.parent
    if GENRE_TASK in tasks:
        rate = rate or cfg.data.rate
        ds = SpectrogramDataset(data_root, dataset="genre", rate=rate, split="test",
                                view=cfg.data.view, tasks=(GENRE_TASK,),
                                cache_dir=cfg.data.cache_dir, use_cache=cfg.data.use_cache,
                                skip_bad=cfg.data.skip_bad)
        where = f"genre-{rate}-test"
        _check_fits(model, ckpt, ds.n_features, f"the {rate} test folder ({cfg.data.view})")
    else:
        data = prepare_data(cfg, data_root)
        ds = data.val
        rate = cfg.data.rate
        where = f"multitask-{rate}-heldout"
        _check_fits(model, ckpt, data.n_features, "the multitask folder")
    out = Path(out_dir) if out_dir else run_dir / "eval" / where
    check_output_dir(out, what="evaluation folder")
    out.mkdir(parents=True, exist_ok=True)
    loader = make_loader(ds, None, batch_size=batch_size, max_length=cfg.data.max_length)
    res = predict_outputs(model, loader, device=dev)

    result: dict = {"checkpoint": ckpt["path"], "epoch": ckpt["epoch"], "evaluated_on": where,
                    "n_clips": len(res["ids"]), "data_root": str(data_root)}
    if GENRE_TASK in tasks:
        y_true = res[f"y:{GENRE_TASK}"]
        y_pred = res[f"out:{GENRE_TASK}"].argmax(axis=1)
        cm = classification_metrics(y_true, y_pred, classes=CLASSES)
        result["genre"] = cm
        (out / "classification_report.txt").write_text(cm["report"])
        fig = plot_confusion(np.asarray(cm["confusion_matrix"]), CLASSES,
                             title=f"{cfg.name}: {where}")
        fig.savefig(out / "confusion.png", dpi=110, bbox_inches="tight")
        plt.close(fig)
        log.info("%s on %s: accuracy %.3f, macro-F1 %.3f", cfg.name, where, cm["accuracy"],
                 cm["macro_f1"])
    reg = [t for t in tasks if t != GENRE_TASK]
    if reg:
        y_true = {t: res[f"y:{t}"] for t in reg}
        y_pred = {t: np.asarray(predict_transform(t, torch.as_tensor(res[f"out:{t}"]),
                                                  cfg.loss.bounded)) for t in reg}
        rm = regression_metrics(y_true, y_pred)
        result["regression"] = rm
        fig = plot_scatter(y_true, y_pred, title=f"{cfg.name}: {where}")
        fig.savefig(out / "scatter.png", dpi=110, bbox_inches="tight")
        plt.close(fig)
        log.info("%s on %s: Spearman mean %.3f", cfg.name, where, rm["spearman_mean"])
    (out / "metrics.json").write_text(json.dumps(result, indent=2, default=float))
    result["out_dir"] = str(out)
    return result
