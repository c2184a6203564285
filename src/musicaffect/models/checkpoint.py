"""Self-describing checkpoints, written atomically and loaded with ``weights_only=True``.

A checkpoint is a plain dict of tensors and Python primitives:

- ``format``: ``"musicaffect/1"``
- ``model``: the constructor arguments (``MusicModel.model_args()``: registry name, params,
  n_features, tasks), so the checkpoint rebuilds its own model without pickled classes
- ``state_dict``: the model weights (input normalisation buffers included)
- ``config``: the whole run configuration (``RunConfig.to_dict()``)
- ``classes``: the genre class names in index order; ``targets``: the regression targets of
  the model's heads; ``kinds``: target -> "binary" | "continuous"; ``vocab``: the data root's
  whole label vocabulary (:class:`musicaffect.data.vocab.Vocabulary` as a dict); ``epoch``;
  ``metrics``. Checkpoints without ``vocab`` are read with the lab's vocabulary.
- ``task_specs``: the :class:`~musicaffect.tasks.TaskSpec` of each head, as dicts, in task
  order. Checkpoints without it (written before task specs) get specs derived from what they
  store (:func:`task_specs`): genre multiclass over ``classes``, each target regression with
  the config's ``loss.bounded`` (binary targets trained so then; they keep their binary
  label kind, so they are still scored as detectors).
- ``feature_params``: the :class:`~musicaffect.features.params.FeatureParams` the data was
  made with (the data root's ``feature_params.json``, else the dataset's recipe), as a
  dict; ``predict`` computes features with them. Checkpoints without it get the recipe.
- resume-only keys in ``last.pt``: ``optimizer``, ``loss_state``, ``scheduler``, ``early``,
  ``history``, ``rng``
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from musicaffect.errors import CheckpointError

FORMAT = "musicaffect/1"


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` to a temporary file in the same folder, then rename over ``path``."""
    from musicaffect.io import atomic_open

    with atomic_open(path, fsync=True) as f:   # a checkpoint survives a power cut
        torch.save(obj, f)


def resolve_checkpoint(path: str | os.PathLike, *, which: str = "best") -> Path:
    """A checkpoint file, or a run folder (-> ``checkpoints/{which}.pt``)."""
    p = Path(path)
    if p.is_dir():
        cand = p / "checkpoints" / f"{which}.pt"
        if not cand.is_file():
            raise CheckpointError(f"{p}: no checkpoints/{which}.pt in this run folder; "
                                  "train first (musicaffect train) or give a .pt file")
        return cand
    if not p.is_file():
        raise CheckpointError(f"{p}: checkpoint not found; give a run folder or a .pt file")
    return p


def load_checkpoint(path: str | os.PathLike, *, which: str = "best") -> dict:
    """Load a checkpoint dict (tensors and primitives only; ``weights_only=True``)."""
    p = resolve_checkpoint(path, which=which)
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as err:  # corrupt, truncated, not a torch file, or pickled objects
        raise CheckpointError(f"{p}: cannot read checkpoint ({_reason(err)}); the file may be "
                              "truncated or not a musicaffect checkpoint") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{p}: not a musicaffect checkpoint (format {FORMAT} expected)")
    ckpt["path"] = str(p)
    return ckpt


def _reason(err: Exception) -> str:
    """A short cause of a failed ``torch.load``, without PyTorch's advice to retry with
    ``weights_only=False`` (which would run arbitrary code from the file: never do that)."""
    text = str(err)
    if "Unsupported global" in text:
        return ("it holds pickled Python objects, not only tensors and plain values; "
                "musicaffect never loads such files")
    if "weights_only" in text or "WeightsUnpickler" in text:
        return "not a valid PyTorch file (unreadable pickle data)"
    first = text.strip().splitlines()[0] if text.strip() else ""
    return f"{type(err).__name__}: {first[:200]}" if first else type(err).__name__


def load_model(path: str | os.PathLike, *, which: str = "best"):
    """Rebuild the model stored in a checkpoint (or run folder); returns ``(model, ckpt)``.

    The model is in eval mode on the CPU; ``ckpt`` is the checkpoint dict (config, metrics ...).
    """
    from musicaffect.models import build_model

    ckpt = load_checkpoint(path, which=which)
    try:
        model = build_model(**ckpt["model"])
        model.load_state_dict(ckpt["state_dict"])
    except (KeyError, RuntimeError) as err:
        raise CheckpointError(f"{ckpt['path']}: checkpoint does not rebuild its model ({err})") from err
    model.eval()
    return model, ckpt


def make_checkpoint(model, cfg_dict: dict, *, classes, epoch: int, metrics: dict,
                    data_info: dict, targets=None, vocab: dict | None = None,
                    specs=None, **extra) -> dict:
    """Assemble the checkpoint dict of a model (see module docstring); ``specs``: the
    tasks' :class:`~musicaffect.tasks.TaskSpec` (name -> spec), stored as ``task_specs``."""
    from musicaffect.tasks import legacy_specs, scalar_tasks, specs_to_dict

    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    if targets is None:   # without specs (older callers), the tasks read as the lab's
        targets = scalar_tasks(specs if specs is not None else legacy_specs(
            model.model_args().get("tasks", {}), classes=classes))
    kinds = (vocab or {}).get("kinds", {})
    out = {
        "format": FORMAT,
        "model": model.model_args(),
        "state_dict": state,
        "config": cfg_dict,
        "classes": list(classes),
        "targets": list(targets),
        "kinds": {t: str(kinds.get(t, "continuous")) for t in targets},
        "data": dict(data_info),
        "epoch": int(epoch),
        "metrics": {k: float(v) for k, v in metrics.items()},
    }
    if vocab is not None:
        out["vocab"] = dict(vocab)
    if specs is not None:
        out["task_specs"] = specs_to_dict(specs)
    out.update(extra)
    return out


def task_specs(ckpt: dict) -> dict:
    """The :class:`~musicaffect.tasks.TaskSpec` of each of a checkpoint's tasks (name ->
    spec, in the order of ``model.tasks``): those it stores, else derived from its
    vocabulary, ``kinds`` and config as it was trained (see the module docstring)."""
    from musicaffect.data.vocab import vocabulary_of_checkpoint
    from musicaffect.tasks import specs_from_dict

    tasks = list(ckpt["model"]["tasks"])
    if ckpt.get("task_specs"):
        stored = specs_from_dict(ckpt["task_specs"])
        return {t: stored[t] for t in tasks}
    vocab = vocabulary_of_checkpoint(ckpt)
    kinds = dict(vocab.kinds)
    kinds.update(ckpt.get("kinds") or {})
    vocab = replace(vocab, kinds=kinds,
                    targets=tuple(dict.fromkeys([*vocab.targets, *ckpt.get("targets", ())])))
    bounded = bool(((ckpt.get("config") or {}).get("loss") or {}).get("bounded", False))
    return vocab.task_specs(tasks, bounded=bounded, binary_as_regression=True)
