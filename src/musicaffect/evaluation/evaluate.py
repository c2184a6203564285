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

from musicaffect.errors import ConfigError
from musicaffect.tasks import multiclass_task, scalar_tasks

log = logging.getLogger(__name__)


def evaluate(checkpoint: str | Path | list[str | Path], data_root: str | Path, *,
             rate: str | None = None, out_dir: str | Path | None = None,
             batch_size: int = 32, device: str | None = None) -> dict:
    """Evaluate a checkpoint (or run folder), or an ensemble of runs, and write metrics and
    figures.

    Parameters
    ----------
    checkpoint : path or list of paths
        A run folder (its ``checkpoints/best.pt`` is used), a ``.pt`` file, a classical run
        folder or an ensemble folder; several of them are evaluated as one ensemble
        (probabilities and values averaged, see :class:`~musicaffect.evaluation.predictor.Predictor`).
        Runs evaluated together must cover the same tasks (and the same classes): every task
        of every run is evaluated, or the command is refused naming the runs that differ
        (:func:`~musicaffect.families.ensemble.check_members`); evaluate runs of other tasks
        separately.
    data_root : path
        The dataset root.
    rate : {"full", "beat"}, optional
        Test folder rate for genre models; default: the rate the model was trained on.
    out_dir : path, optional
        Where to write; default ``<run>/eval/<name>`` (required for several paths).

    Returns
    -------
    dict
        The metrics (also in ``metrics.json``) plus ``out_dir``.
    """
    import matplotlib.pyplot as plt

    from musicaffect.evaluation.binary import binary_summary
    from musicaffect.evaluation.metrics import classification_metrics, regression_metrics
    from musicaffect.evaluation.plots import plot_confusion, plot_scatter
    from musicaffect.evaluation.predictor import Predictor
    from musicaffect.families.ensemble import check_members
    from musicaffect.paths import check_output_dir

    if out_dir:
        check_output_dir(out_dir, what="evaluation folder")

    paths = list(checkpoint) if isinstance(checkpoint, (list, tuple)) else [checkpoint]
    if len(paths) > 1 and out_dir is None:
        raise ConfigError("several runs are evaluated as one ensemble: give --out DIR (or "
                          "make an ensemble folder with `musicaffect ensemble`)")
    pred = Predictor.load(paths, device=device)
    check_members(pred.members)   # every task of every member, or a named refusal
    first = pred.first
    cfg = first.cfg
    tasks = pred.tasks
    specs = {t: s for m in pred.members for t, s in m.specs.items()}
    class_task = multiclass_task(specs)
    # one path: the run as loaded (an ensemble folder is itself a member, with its name)
    run_dir, name = pred.sources[0].run_dir, pred.sources[0].name
    if len(paths) > 1:
        run_dir, name = first.run_dir, "+".join(pred.names)
    if cfg.data.dataset == "genre":
        rate = rate or cfg.data.rate
        where = f"genre-{rate}-test"
        res = pred.predict_split(data_root, dataset="genre", split="test", rate=rate,
                                 batch_size=batch_size,
                                 members=[m for m in pred.members
                                          if multiclass_task(m.specs) is not None])
    else:
        rate = cfg.data.rate
        where = f"multitask-{rate}-heldout"
        res = pred.predict_heldout(data_root, batch_size=batch_size)
    out = Path(out_dir) if out_dir else Path(run_dir) / "eval" / where
    check_output_dir(out, what="evaluation folder")
    out.mkdir(parents=True, exist_ok=True)

    single = len(pred.members) == 1
    result: dict = {"checkpoint": first.path if single else pred.paths,
                    "epoch": first.epoch if single else None, "evaluated_on": where,
                    "n_clips": len(res.ids), "data_root": str(data_root)}
    if not single:
        result["members"] = [{"name": m.name, "path": m.path, "kind": m.kind,
                              "weight": w} for m, w in zip(pred.members, pred.weights)]
    if class_task in tasks and class_task in res.labels:
        y_true = np.asarray(res.labels[class_task])
        keep = y_true >= 0                # -100: a clip without genre (joint training)
        cm = classification_metrics(y_true[keep], res.probs.argmax(axis=1)[keep],
                                    classes=res.classes)
        result["genre"] = cm
        (out / "classification_report.txt").write_text(cm["report"])
        fig = plot_confusion(np.asarray(cm["confusion_matrix"]), res.classes,
                             title=f"{name}: {where}")
        fig.savefig(out / "confusion.png", dpi=110, bbox_inches="tight")
        plt.close(fig)
        log.info("%s on %s: accuracy %.3f, macro-F1 %.3f", name, where, cm["accuracy"],
                 cm["macro_f1"])
    scalar = scalar_tasks(specs)
    reg = [t for t in tasks if t in scalar and t in res.labels and t in res.values]
    if reg:
        y_true = {t: res.labels[t] for t in reg}
        y_pred = {t: res.values[t] for t in reg}
        rm = regression_metrics(y_true, y_pred)
        result["regression"] = rm
        # ROC-AUC and balanced accuracy of the tasks whose labels are 0/1
        binary = binary_summary(y_true, y_pred, {t: specs[t].labels for t in reg})
        if binary:
            result["binary"] = binary
        fig = plot_scatter(y_true, y_pred, title=f"{name}: {where}")
        fig.savefig(out / "scatter.png", dpi=110, bbox_inches="tight")
        plt.close(fig)
        log.info("%s on %s: Spearman mean %.3f", name, where, rm["spearman_mean"])
    (out / "metrics.json").write_text(json.dumps(result, indent=2, default=float))
    result["out_dir"] = str(out)
    return result

