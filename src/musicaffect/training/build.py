"""What a deep run is built from: the model (from the registry, normalised on the training
part, transfer-initialised), the optimizer and its learning-rate factor, the Fabric, one
optimisation step and the recipe's per-run pieces (mixup, class balance). The loop that uses
them is :mod:`musicaffect.training.engine`; nothing here loops over epochs."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from musicaffect.config import RunConfig
from musicaffect.data.labels import CLASSES
from musicaffect.data.loading import EpochBatchSampler, RunData, prepare_data, task_sizes
from musicaffect.errors import CheckpointError, DataError, RunError
from musicaffect.models.checkpoint import load_checkpoint, task_specs
from musicaffect.tasks import multiclass_task

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- model / optim

def build_run_model(cfg: RunConfig, data: RunData):
    """Model from the registry, normalisation fitted on train, transfer init if configured."""
    from musicaffect.data.normalize import feature_stats
    from musicaffect.models import build_model

    model = build_model(cfg.model.name, dict(cfg.model.params), data.n_features,
                        task_sizes(data.specs))
    if cfg.transfer.checkpoint:
        transfer_backbone(model, cfg.transfer.checkpoint, n_features=data.n_features,
                          vocab=data.vocab)
    elif cfg.data.normalize:
        mean, std = feature_stats(data.dataset, data.train_idx)
        if not (np.isfinite(mean).all() and np.isfinite(std).all()):
            _raise_non_finite(data)
        model.set_normalization(torch.as_tensor(mean, dtype=torch.float32),
                                torch.as_tensor(std, dtype=torch.float32))
    if cfg.transfer.checkpoint and cfg.transfer.freeze_backbone:
        model.freeze_backbone(True)
    return model


def _raise_non_finite(data: RunData) -> None:
    """The normalisation statistics are NaN/inf: name the clip that made them so."""
    for i in data.train_idx:
        x = np.asarray(data.dataset[int(i)]["x"])
        if not np.isfinite(x).all():
            rec = data.dataset.records[int(i)]
            raise DataError(f"clip {rec.id} reads back with NaN/inf values (the file was "
                            "checked when cached, so the clip cache is probably corrupt): "
                            "run `musicaffect cache --verify` to rebuild it", path=rec.path)
    raise DataError("the feature statistics of the training clips are not finite (values "
                    "too large for float32?); check the data", path=data.info.get("data_root"))


def transfer_backbone(model, checkpoint: str | Path, *, n_features: int, vocab=None) -> dict:
    """Copy backbone weights (and input normalisation) from a checkpoint, and the heads that
    fit: same task, same size and (genre) the same class names; the others stay new, and
    the log says which and why.

    Raises :class:`CheckpointError` when the source model's architecture or feature size does
    not fit ``model`` (e.g. a chroma model into a mel model).
    """
    src = load_checkpoint(checkpoint, which="best")
    margs = src["model"]
    if margs["n_features"] != n_features:
        raise CheckpointError(
            f"{src['path']}: its model reads {margs['n_features']} features per frame but this "
            f"run's view has {n_features}; transfer from a run on the same view "
            f"(it was trained on view={src['data'].get('view')}, rate={src['data'].get('rate')})")
    from musicaffect.models.registry import architecture_params

    mine = model.model_args()
    # wrapper options (head dropout, masking) and speed-only options may differ
    if margs["name"] != mine["name"] or (architecture_params(margs["name"], margs["params"])
                                         != architecture_params(mine["name"], mine["params"])):
        raise CheckpointError(
            f"{src['path']}: backbone {margs['name']} {margs['params']} does not match this run's "
            f"model {mine['name']} {mine['params']}; use the same model.name and model.params")
    prefix = "backbone."
    state = {k[len(prefix):]: v for k, v in src["state_dict"].items() if k.startswith(prefix)}
    model.backbone.load_state_dict(state, strict=True)
    with torch.no_grad():
        for buf in ("mean", "std"):
            if buf in src["state_dict"]:
                getattr(model, buf).copy_(src["state_dict"][buf])
    log.info("transferred %d backbone tensors from %s (epoch %s)", len(state), src["path"],
             src.get("epoch"))
    _transfer_heads(model, src, vocab)
    return src


def _transfer_heads(model, src: dict, vocab) -> list[str]:
    """Copy the source's heads that fit ``model``; log the ones re-initialised."""
    from musicaffect.data.vocab import vocabulary_of_checkpoint

    src_vocab = vocabulary_of_checkpoint(src)
    classes = list(vocab.classes) if vocab is not None else list(CLASSES)
    src_specs = task_specs(src)
    copied = []
    for task, head in model.heads.items():
        prefix = f"heads.{task}."
        state = {k[len(prefix):]: v for k, v in src["state_dict"].items() if k.startswith(prefix)}
        if task not in src["model"]["tasks"] or not state:
            continue  # a task the source did not have: a new head, as always
        why = None
        if src_specs[task].is_multiclass and list(src_vocab.classes) != classes:
            why = (f"its classes ({', '.join(src_vocab.classes)}) differ from this data's "
                   f"({', '.join(classes)})")
        else:
            mine = head.state_dict()
            if set(mine) != set(state) or any(mine[k].shape != state[k].shape for k in mine):
                why = "its shape differs"
        if why:
            log.warning("transfer: head %r re-initialised: %s", task, why)
            continue
        head.load_state_dict(state)
        copied.append(task)
    if copied:
        log.info("transfer: head(s) %s copied from %s", ", ".join(copied), src["path"])
    return copied


def build_optimizer(cfg: RunConfig, params) -> torch.optim.Optimizer:
    t = cfg.train
    cls = torch.optim.AdamW if t.optimizer == "adamw" else torch.optim.Adam
    return cls([p for p in params if p.requires_grad], lr=t.lr, weight_decay=t.weight_decay)


def lr_factor(epoch: int, *, epochs: int, schedule: str, warmup: int = 0) -> float:
    """Learning-rate multiplier of an epoch (pure function).

    The first ``warmup`` epochs ramp up linearly (``(epoch + 1) / (warmup + 1)``); then the
    schedule: constant, or cosine decay to 5% over the remaining ``epochs - warmup`` epochs.
    """
    if epoch < warmup:
        return (epoch + 1) / (warmup + 1)
    if schedule == "cosine":
        e, n = epoch - warmup, max(1, epochs - warmup)
        return 0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * e / n))
    return 1.0


# --------------------------------------------------------------------------- fabric

def make_fabric(cfg: RunConfig):
    """A Lightning Fabric for the configured hardware; chooses the device once, here."""
    from lightning.fabric import Fabric

    t = cfg.train
    precision = t.precision
    if torch.cuda.is_available() and t.accelerator in ("auto", "cuda", "gpu"):
        torch.backends.cudnn.benchmark = True   # autotune convolutions for the input sizes
    if precision == "auto":
        if t.accelerator in ("auto", "cuda", "gpu") and torch.cuda.is_available():
            precision = "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
        else:
            precision = "32-true"
    return Fabric(accelerator=t.accelerator, devices=t.devices, num_nodes=t.num_nodes,
                  strategy=t.strategy, precision=precision)


def _share_cpu_threads(fabric, num_nodes: int) -> None:
    # several CPU processes on one machine: split the cores instead of oversubscribing them
    # (OpenMP threads that spin-wait for each other make small RNNs many times slower)
    if fabric.device.type == "cpu" and fabric.world_size > 1:
        local = max(1, fabric.world_size // max(1, num_nodes))
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local))


# --------------------------------------------------------------------------- one step

def train_step(model, optimizer, loss_fn, batch: dict, fabric, *, grad_clip: float = 0.0,
               augment: Callable | None = None) -> torch.Tensor:
    """One optimisation step on one collated batch; returns the (detached) loss.

    ``augment(x, lengths, y) -> (x, lengths, y)`` transforms the batch on the device before
    the forward pass (mixup); ``grad_clip`` > 0 clips the gradient norm.
    """
    x = fabric.to_device(batch["x"])
    y = {k: fabric.to_device(v) for k, v in batch["y"].items()}
    lengths = batch["lengths"]
    if augment is not None:
        x, lengths, y = augment(x, lengths, y)
    out = model(x, lengths)
    loss, _ = loss_fn(out, y)
    optimizer.zero_grad(set_to_none=True)
    fabric.backward(loss)
    if grad_clip:
        fabric.clip_gradients(model, optimizer, max_norm=grad_clip)
    optimizer.step()
    return loss.detach()


def _mixup(cfg: RunConfig, head_sizes: dict, epoch: int, batch: int) -> Callable:
    """The batch transform of ``train.mixup`` for one batch (pure in seed, epoch, batch)."""
    from musicaffect.training.recipe import mixup_batch

    def augment(x, lengths, y):
        x, lengths, y, _ = mixup_batch(x, lengths, y, alpha=cfg.train.mixup,
                                       n_classes=head_sizes, seed=cfg.seed, epoch=epoch,
                                       batch=batch)
        return x, lengths, y

    return augment


def _balance(cfg: RunConfig, data: RunData, model) -> tuple:
    """``(class weights of the loss, sampling weights of the training clips)`` for
    ``train.balance`` (``loss`` / ``sampler``), from the training part's genre labels."""
    ct = multiclass_task(data.specs)
    if cfg.train.balance == "none" or ct is None:
        return None, None
    labels = np.asarray(data.dataset.labels(ct))[data.train_idx]
    if cfg.train.balance == "loss":
        from musicaffect.training.losses import balanced_class_weights

        return balanced_class_weights(labels, data.specs[ct].n_outputs), None
    from musicaffect.training.recipe import balanced_sample_weights

    return None, balanced_sample_weights(labels)


def _check_batches(cfg: RunConfig, data: RunData, world: int) -> None:
    """A run whose epochs would train on zero batches is an error (before anything starts)."""
    n = len(EpochBatchSampler(data.train_idx, batch_size=cfg.train.batch_size, seed=cfg.seed,
                              world=world, max_batches=cfg.train.max_batches_per_epoch))
    if n == 0:
        raise RunError(f"an epoch would train on zero batches ({len(data.train_idx)} training "
                       f"clips, batch size {cfg.train.batch_size} x {world} processes, "
                       f"max_batches_per_epoch={cfg.train.max_batches_per_epoch}); add clips "
                       "or lower train.batch_size")


def _prepare_data_ranked(fabric, cfg: RunConfig, data_root) -> RunData:
    # rank 0 builds the cache first; the others then only read it
    data = prepare_data(cfg, data_root) if fabric.global_rank == 0 else None
    fabric.barrier()
    return data if data is not None else prepare_data(cfg, data_root)


def _loss_from_outputs(loss_fn, res: dict, tasks: list[str]) -> float:
    with torch.no_grad():
        out = {t: torch.as_tensor(res[f"out:{t}"]) for t in tasks}
        y = {t: torch.as_tensor(res[f"y:{t}"]) for t in tasks}
        dev = next(iter(loss_fn.parameters()), torch.zeros(0)).device
        out = {k: v.to(dev) for k, v in out.items()}
        y = {k: v.to(dev) for k, v in y.items()}
        total, _ = loss_fn(out, y)
    return float(total)
