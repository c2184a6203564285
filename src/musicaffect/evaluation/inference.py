"""Model outputs for a loader's clips, the output transform, and validation metrics.

The deep-model side of inference: :func:`predict_outputs` runs a model over a loader (whole
clips, or the mean over excerpt windows for a model trained on excerpts, as
:func:`window_options` reads from a run's config); :func:`predict_transform` turns raw
outputs into predictions on each task's scale (softmax; sigmoid for bounded heads);
:func:`outputs_metrics` scores them. Training validates with these, and the
:class:`~musicaffect.evaluation.predictor.Predictor` predicts with them.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.special import expit

from musicaffect.data.labels import CLASSES, GENRE_TASK


def window_options(cfg) -> dict:
    """The keyword arguments of :func:`predict_outputs` a run's config asks for (excerpt
    windows and the regression output transform): ``predict_outputs(model, loader,
    **window_options(cfg))``."""
    return {"chunk_frames": cfg.data.chunk_frames, "chunk_hop": cfg.data.chunk_hop,
            "bounded": cfg.loss.bounded}


@torch.no_grad()
def predict_outputs(model, loader, *, device=None, fabric=None, chunk_frames: int | None = None,
                    chunk_hop: int | None = None, bounded: bool = False
                    ) -> dict[str, np.ndarray]:
    """Model outputs for every clip of a loader, keyed by task, plus ``ids`` and labels.

    Returns ``{"ids": [...], "out:<task>": (N, C) or (N,), "y:<task>": (N,)}``.

    Without ``chunk_frames`` the model sees each whole clip and ``out:<task>`` is its raw
    output (logits, regression values before the output transform).

    With ``chunk_frames`` (a model trained on excerpts), every clip is cut into evenly
    spaced windows of that many frames (hop ``chunk_hop``, default half a window; a clip
    not longer than a window is one window, see :mod:`musicaffect.data.windows`) and the
    clip's prediction is the mean over its windows of the *predictions*: class
    probabilities (softmax, then mean) and regression values (after the output transform:
    sigmoid when ``bounded``, then mean). So that every consumer of raw outputs keeps
    working, they are returned on the raw scale: ``out:<classification task>`` holds the
    **log** of the mean probabilities (softmax of it = the mean probabilities; argmax and the
    cross-entropy stay valid), ``out:<regression task>`` the mean value (its logit when
    ``bounded``, so ``sigmoid`` gives the mean back). ``windows`` (N,) then gives the number
    of windows of each clip.
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
                if v.ndim == 2:        # classification: mean probabilities, returned as log
                    p = mean_by_clip(torch.softmax(v, dim=-1).numpy(), owner, x.shape[0])
                    out[k] = np.log(np.maximum(p, 1e-12)).astype(np.float32)
                elif bounded:          # bounded regression: mean of sigmoids, as its logit
                    p = mean_by_clip(torch.sigmoid(v).numpy(), owner, x.shape[0])
                    p = np.clip(p, 1e-7, 1.0 - 1e-7)
                    out[k] = np.log(p / (1.0 - p)).astype(np.float32)
                else:
                    out[k] = mean_by_clip(v.numpy(), owner, x.shape[0]).astype(np.float32)
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


def outputs_metrics(res: dict, tasks: list[str], *, bounded: bool,
                    classes=None) -> dict[str, float]:
    """Validation metrics from :func:`predict_outputs`: accuracy / macro-F1 or Spearman."""
    from musicaffect.evaluation.metrics import classification_metrics, regression_metrics

    m: dict[str, float] = {}
    if GENRE_TASK in tasks:
        out, y = res[f"out:{GENRE_TASK}"], res[f"y:{GENRE_TASK}"]
        keep = y >= 0                     # -100: a clip without genre (joint training)
        names = classes if classes is not None else CLASSES
        if len(names) != out.shape[1]:
            names = [f"class {i}" for i in range(out.shape[1])]
        if keep.any():
            cm = classification_metrics(y[keep], out[keep].argmax(axis=1), classes=names)
            m["accuracy"] = float(cm["accuracy"])
            m["macro_f1"] = float(cm["macro_f1"])
    reg = [t for t in tasks if t != GENRE_TASK]
    if reg:
        y_true = {t: res[f"y:{t}"] for t in reg}
        y_pred = {t: np.asarray(predict_transform(t, torch.as_tensor(res[f"out:{t}"]), bounded))
                  for t in reg}
        rm = regression_metrics(y_true, y_pred)
        for t in reg:
            m[f"spearman_{t}"] = float(rm["per_target"][t]["spearman"])
        m["spearman_mean"] = float(rm["spearman_mean"])
    return m


def predict_transform(task: str, output, bounded: bool = False):
    """Turn a raw model output into a prediction on the task's scale.

    Parameters
    ----------
    task : str
        ``"genre"`` or a regression target.
    output : torch.Tensor or np.ndarray [shape=(B, C) for genre, (B,) otherwise]
        Raw model output.
    bounded : bool
        Whether the regression head was trained with ``bounded=True``.

    Returns
    -------
    prediction : same type and shape as ``output``
        Softmax class probabilities for genre; sigmoid of the output for a bounded
        regression head; the output unchanged otherwise.
    """
    is_tensor = isinstance(output, torch.Tensor)
    if task == GENRE_TASK:
        if is_tensor:
            return torch.softmax(output.float(), dim=-1)
        z = np.asarray(output, dtype=np.float64)
        z = np.exp(z - z.max(axis=-1, keepdims=True))
        return z / z.sum(axis=-1, keepdims=True)
    if not bounded:
        return output
    if is_tensor:
        return torch.sigmoid(output.float())
    return expit(np.asarray(output, dtype=np.float64))
