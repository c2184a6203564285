"""Model outputs for a loader's clips, the output transform, and validation metrics.

The deep-model side of inference: :func:`predict_outputs` runs a model over a loader (whole
clips, or the mean over excerpt windows for a model trained on excerpts, as
:func:`window_options` reads from a run's config); :func:`predict_transform` turns raw
outputs into predictions on each task's scale (the task spec's
:meth:`~musicaffect.tasks.TaskSpec.transform`: softmax; sigmoid for binary and bounded
heads); :func:`outputs_metrics` scores them. Training validates with these, and the
:class:`~musicaffect.evaluation.predictor.Predictor` predicts with them.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from musicaffect.data.labels import CLASSES
from musicaffect.tasks import TaskSpec, legacy_specs, scalar_tasks, spec_from_output


def window_options(cfg) -> dict:
    """The keyword arguments of :func:`predict_outputs` a run's config asks for (excerpt
    windows and the regression output transform): ``predict_outputs(model, loader,
    **window_options(cfg))``."""
    return {"chunk_frames": cfg.data.chunk_frames, "chunk_hop": cfg.data.chunk_hop,
            "bounded": cfg.loss.bounded}


@torch.no_grad()
def predict_outputs(model, loader, *, device=None, fabric=None, chunk_frames: int | None = None,
                    chunk_hop: int | None = None, bounded: bool = False,
                    specs: Mapping[str, TaskSpec] | None = None) -> dict[str, np.ndarray]:
    """Model outputs for every clip of a loader, keyed by task, plus ``ids`` and labels.

    Returns ``{"ids": [...], "out:<task>": (N, C) or (N,), "y:<task>": (N,)}``.

    Without ``chunk_frames`` the model sees each whole clip and ``out:<task>`` is its raw
    output (logits, regression values before the output transform).

    With ``chunk_frames`` (a model trained on excerpts), every clip is cut into evenly
    spaced windows of that many frames (hop ``chunk_hop``, default half a window; a clip
    not longer than a window is one window, see :mod:`musicaffect.data.windows`) and the
    clip's prediction is the mean over its windows of the *predictions* (each task's
    :meth:`~musicaffect.tasks.TaskSpec.transform`: softmax probabilities, sigmoid scores of
    binary and bounded tasks, regression values). So that every consumer of raw outputs
    keeps working, they are returned on the raw scale
    (:meth:`~musicaffect.tasks.TaskSpec.untransform`): ``out:<multiclass task>`` holds the
    **log** of the mean probabilities (softmax of it = the mean probabilities; argmax and the
    cross-entropy stay valid), a sigmoid task the logit of the mean score, a regression task
    the mean value. ``windows`` (N,) then gives the number of windows of each clip.

    ``specs``: the tasks' specs (default: read from the output shapes,
    :func:`~musicaffect.tasks.spec_from_output`, with ``bounded``).
    """
    from musicaffect.data.windows import mean_by_clip, plan_windows

    model.eval()
    outs: dict[str, list] = {}
    ids: list[str] = []
    n_windows: list[np.ndarray] = []
    for batch in loader:
        x, lengths = batch["x"], batch["lengths"]
        if fabric is not None:
            x = fabric.to_device(x)
        elif device is not None:
            x = x.to(device)
        if chunk_frames is None:
            out = {k: v.float().cpu().numpy() for k, v in model(x, lengths).items()
                   if k != "embedding"}
        else:
            owner, starts, wlen = plan_windows(lengths.tolist(), chunk_frames, chunk_hop)
            win = int(wlen.max())
            # (W, win) frame indices (clamped: steps past a short clip's end are padding)
            steps = torch.as_tensor(starts)[:, None] + torch.arange(win)[None, :]
            steps = steps.clamp(max=x.shape[1] - 1).to(x.device)
            rows = torch.as_tensor(owner).to(x.device)[:, None]
            per_window: dict[str, list] = {}
            # about as many frames per forward pass as the loader's batch holds
            step = max(1, (x.shape[0] * x.shape[1]) // win)
            for a in range(0, len(owner), step):
                xw = x[rows[a:a + step], steps[a:a + step]]              # (w, win, F)
                lw = torch.as_tensor(wlen[a:a + step])
                for k, v in model(xw, lw).items():
                    if k != "embedding":
                        per_window.setdefault(k, []).append(v.float().cpu())
            out = {}
            for k, parts in per_window.items():
                v = torch.cat(parts)
                spec = (specs or {}).get(k) or spec_from_output(k, v, bounded=bounded)
                # mean of the window predictions, returned on the raw scale
                p = mean_by_clip(spec.transform(v).numpy(), owner, x.shape[0])
                out[k] = spec.untransform(p)
            n_windows.append(np.bincount(owner, minlength=x.shape[0]))
        for k, v in out.items():
            outs.setdefault(f"out:{k}", []).append(v)
        for k, v in batch["y"].items():
            outs.setdefault(f"y:{k}", []).append(v.cpu().numpy())
        ids.extend(batch["ids"])
    res = {k: np.concatenate(v) for k, v in outs.items()}
    res["ids"] = ids
    if n_windows:
        res["windows"] = np.concatenate(n_windows)
    return res


def outputs_metrics(res: dict, tasks: list[str], *, bounded: bool = False,
                    classes=None, specs: Mapping[str, TaskSpec] | None = None
                    ) -> dict[str, float]:
    """Validation metrics from :func:`predict_outputs`: accuracy / macro-F1 of the multiclass
    task, Spearman of each scalar task (binary and regression) and their mean.

    ``specs``: the tasks' specs; without them the tasks read as the lab's (``genre``
    multiclass over ``classes``, the others regression with ``bounded``).
    """
    from musicaffect.evaluation.metrics import classification_metrics, regression_metrics

    specs = dict(specs) if specs is not None else legacy_specs(
        tasks, bounded=bounded, classes=classes if classes is not None else CLASSES)
    specs = {t: specs[t] for t in tasks}
    m: dict[str, float] = {}
    for t, spec in specs.items():
        if not spec.is_multiclass:
            continue
        out, y = res[f"out:{t}"], res[f"y:{t}"]
        keep = y >= 0                     # -100: a clip without genre (joint training)
        names = spec.classes
        if len(names) != out.shape[1]:
            names = [f"class {i}" for i in range(out.shape[1])]
        if keep.any():
            cm = classification_metrics(y[keep], out[keep].argmax(axis=1), classes=names)
            m["accuracy"] = float(cm["accuracy"])
            m["macro_f1"] = float(cm["macro_f1"])
    reg = scalar_tasks(specs)
    if reg:
        y_true = {t: res[f"y:{t}"] for t in reg}
        y_pred = {t: np.asarray(specs[t].transform(torch.as_tensor(res[f"out:{t}"])))
                  for t in reg}
        rm = regression_metrics(y_true, y_pred)
        for t in reg:
            m[f"spearman_{t}"] = float(rm["per_target"][t]["spearman"])
        m["spearman_mean"] = float(rm["spearman_mean"])
    return m


def predict_transform(task: str | TaskSpec, output, bounded: bool = False):
    """Turn a raw model output into a prediction on the task's scale.

    Parameters
    ----------
    task : TaskSpec or str
        The task's spec (:meth:`~musicaffect.tasks.TaskSpec.transform` does the work), or
        a plain name read by :func:`~musicaffect.tasks.legacy_specs` (``"genre"`` or a
        regression target).
    output : torch.Tensor or np.ndarray [shape=(B, C) for multiclass, (B,) otherwise]
        Raw model output.
    bounded : bool
        Plain names only: whether the regression head was trained with ``bounded=True``.

    Returns
    -------
    prediction : same type and shape as ``output``
        Softmax class probabilities (multiclass); the sigmoid of the output (binary, bounded
        regression); the output unchanged otherwise.
    """
    if not isinstance(task, TaskSpec):
        task = legacy_specs([task], bounded=bounded, classes=_class_names(output))[task]
    return task.transform(output)


def _class_names(output) -> tuple[str, ...]:
    """Placeholder class names for a multiclass output of unknown classes."""
    n = output.shape[-1] if getattr(output, "ndim", 0) == 2 else 2
    return tuple(f"class {i}" for i in range(max(n, 2)))
