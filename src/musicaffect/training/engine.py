"""The training loop every experiment uses, on top of Lightning Fabric.

Fabric handles devices (CUDA, MPS, CPU), mixed precision and distributed training (DDP on
several GPUs or nodes, or several CPU processes with gloo); this module only knows about the
run: data split, model from the registry, loss, early stopping, checkpoints, logs.

Reproducibility: one seed drives the model initialisation and, through
:class:`~musicaffect.data.loading.EpochBatchSampler`, the order of batches of every epoch (a pure function of
``(seed, epoch)``). ``last.pt`` holds the optimizer, loss and RNG state at the end of each
epoch, so ``resume`` continues an interrupted run and ends with the same weights as an
uninterrupted one (on the CPU). The recipe options keep this: excerpt windows
(``data.chunk_frames``), mixup pairs and class-balanced draws are pure functions of
``(seed, epoch, clip or batch)``, and ``last.pt`` also holds the EMA weights.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from musicaffect.config import RunConfig
from musicaffect.data.labels import CLASSES, GENRE_TASK
from musicaffect.data.loading import (
    EpochBatchSampler,
    RunData,
    make_loader,
    prepare_data,
    task_sizes,
)
from musicaffect.errors import CheckpointError, DataError, RunError
from musicaffect.evaluation.inference import outputs_metrics, predict_outputs, window_options
from musicaffect.features.params import root_feature_params
from musicaffect.io import atomic_open
from musicaffect.models.checkpoint import atomic_save, load_checkpoint, make_checkpoint

log = logging.getLogger(__name__)

MINIMISE = {"val_loss"}


# --------------------------------------------------------------------------- model / optim

def build_run_model(cfg: RunConfig, data: RunData):
    """Model from the registry, normalisation fitted on train, transfer init if configured."""
    from musicaffect.data.normalize import feature_stats
    from musicaffect.models import build_model

    classes = data.vocab.classes if data.vocab is not None else CLASSES
    model = build_model(cfg.model.name, dict(cfg.model.params), data.n_features,
                        task_sizes(data.tasks, classes))
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
    copied = []
    for task, head in model.heads.items():
        prefix = f"heads.{task}."
        state = {k[len(prefix):]: v for k, v in src["state_dict"].items() if k.startswith(prefix)}
        if task not in src["model"]["tasks"] or not state:
            continue  # a task the source did not have: a new head, as always
        why = None
        if task == GENRE_TASK and list(src_vocab.classes) != classes:
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


# --------------------------------------------------------------------------- evaluation

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


def prepare_run_dir(run_dir: Path, *, resume: bool, overwrite: bool,
                    data_root: str | Path | None = None) -> bool:
    """Check how ``run_dir`` may be used (see :mod:`musicaffect.training.rundir`); returns
    True when there is a ``last.pt`` to resume from. Writes nothing: :func:`fit` claims the
    folder only when training starts."""
    from musicaffect.training.rundir import plan_run_dir

    return plan_run_dir(run_dir, data_root=data_root, resume=resume,
                        overwrite=overwrite).resumes


# --------------------------------------------------------------------------- the loop

@dataclass
class EarlyStopping:
    """The best validation score so far, its epoch, and the epochs since it improved.

    ``patience`` 0 never stops. ``last.pt`` keeps the state as a plain dict
    (:meth:`to_dict` / :meth:`from_dict`: keys ``best``, ``best_epoch``, ``bad_epochs``).
    """

    minimise: bool
    patience: int = 0
    best: float | None = None
    best_epoch: int = -1
    bad_epochs: int = 0

    def update(self, score: float, epoch: int) -> bool:
        """Record an epoch's score; returns whether it is the best so far."""
        improved = self.best is None or (score < self.best if self.minimise
                                         else score > self.best)
        if improved:
            self.best, self.best_epoch, self.bad_epochs = score, epoch, 0
        else:
            self.bad_epochs += 1
        return improved

    @property
    def should_stop(self) -> bool:
        return bool(self.patience) and self.bad_epochs >= self.patience

    def to_dict(self) -> dict:
        return {"best": self.best, "best_epoch": self.best_epoch, "bad_epochs": self.bad_epochs}

    @classmethod
    def from_dict(cls, state: dict, *, minimise: bool, patience: int = 0) -> EarlyStopping:
        return cls(minimise, patience, state.get("best"), int(state.get("best_epoch", -1)),
                   int(state.get("bad_epochs", 0)))


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


@dataclass
class FitResult:
    """What :func:`fit` returns (also written to ``run_dir/summary.json``)."""

    run_dir: Path
    best_epoch: int
    best_score: float
    monitor: str
    history: list[dict]
    stopped_early: bool
    best_metrics: dict
    seconds: float


def fit(cfg: RunConfig, data_root: str | Path, run_dir: str | Path, *, resume: bool = False,
        overwrite: bool = False, progress: bool = True, stop_after: int | None = None
        ) -> FitResult:
    """Train a model as configured (see :func:`_fit`). A run that fails before its first
    checkpoint leaves nothing behind (:class:`~musicaffect.training.rundir.RunClaim`)."""
    claims: list = []
    try:
        return _fit(cfg, data_root, run_dir, resume=resume, overwrite=overwrite,
                    progress=progress, stop_after=stop_after, _claims=claims)
    except BaseException:
        for claim in claims:
            claim.abort()
        raise


def _fit(cfg: RunConfig, data_root: str | Path, run_dir: str | Path, *, resume: bool = False,
         overwrite: bool = False, progress: bool = True, stop_after: int | None = None,
         _claims: list | None = None) -> FitResult:
    """Train a model as configured; writes checkpoints, metrics.csv, TensorBoard, curves.

    Parameters
    ----------
    cfg : RunConfig
    data_root : path
        The dataset root (the folder holding the four Kaggle folders).
    run_dir : path
        Output folder. An existing run is refused unless ``resume`` or ``overwrite``;
        ``overwrite`` only replaces a run folder, after the new run's first checkpoint.
    stop_after : int, optional
        Stop (as if interrupted) after this many epochs of this call; for tests of resume.
    """
    if cfg.model.name in ("classical", "ensemble"):   # no network: no Fabric, no epochs
        from musicaffect.ensemble import fit_ensemble
        from musicaffect.training.classical import fit_classical

        other = fit_classical if cfg.model.name == "classical" else fit_ensemble
        return other(cfg, data_root, run_dir, resume=resume, overwrite=overwrite,
                     progress=progress)
    from tqdm.auto import tqdm

    from musicaffect.training.losses import build_loss
    from musicaffect.training.rundir import RunClaim, check_resume, plan_run_dir

    run_dir = Path(run_dir)
    cfg.validate()
    fabric = make_fabric(cfg)
    fabric.launch()
    _share_cpu_threads(fabric, cfg.train.num_nodes)
    rank0 = fabric.global_rank == 0
    plan = None
    if rank0:   # only looks: nothing is written before the data and the model are ready
        plan = plan_run_dir(run_dir, data_root=data_root, resume=resume, overwrite=overwrite)
    has_last = fabric.broadcast(bool(plan and plan.resumes), src=0)
    fabric.barrier()
    fabric.seed_everything(cfg.seed, workers=True, verbose=False)

    data = _prepare_data_ranked(fabric, cfg, data_root)
    # the parameters the data's features were made with travel with the model (predict)
    feature_params = root_feature_params(data_root).to_dict()
    model = build_run_model(cfg, data)
    lc = cfg.loss
    class_weights, sample_weights = _balance(cfg, data, model)
    loss_fn = build_loss(data.tasks, regression=lc.regression, bounded=lc.bounded,
                         rank_weight=lc.rank_weight, weights=lc.weights,
                         learn_weights=lc.learn_weights, label_smoothing=lc.label_smoothing,
                         targets=data.vocab.targets, class_weights=class_weights)
    optimizer = build_optimizer(cfg, list(model.parameters()) + list(loss_fn.parameters()))

    history: list[dict] = []
    start_epoch = 0
    monitor = cfg.train.monitor
    early = EarlyStopping(monitor in MINIMISE, cfg.train.patience)
    if has_last:
        last = load_checkpoint(run_dir, which="last")
        check_resume(run_dir, cfg, model, last)
        try:
            model.load_state_dict(last["state_dict"])
            optimizer.load_state_dict(last["optimizer"])
            loss_fn.load_state_dict(last["loss_state"])
        except (KeyError, RuntimeError, ValueError) as err:
            raise CheckpointError(f"{last['path']}: does not fit this run's model ("
                                  f"{str(err).splitlines()[0]}); start again with "
                                  "--overwrite or another --out") from None
        history = list(last["history"])
        early = EarlyStopping.from_dict(last["early"], minimise=early.minimise,
                                        patience=cfg.train.patience)
        start_epoch = int(last["epoch"]) + 1
        torch.set_rng_state(last["rng"]["torch"])
        log.info("resuming %s from epoch %d", run_dir, start_epoch)
    _check_batches(cfg, data, fabric.world_size)
    claim = RunClaim(plan) if rank0 else None
    if claim is not None:   # training starts: claim the folder (a replacement goes beside)
        if _claims is not None:
            _claims.append(claim)
        run_dir = claim.claim(cfg)
        if data.dataset.skipped:
            from musicaffect.data.layout import write_skipped

            path = write_skipped(data.dataset.skipped, run_dir / "skipped.tsv")
            log.warning("%d bad clip(s) or label row(s) skipped; listed in %s",
                        len(data.dataset.skipped), path)

    model, optimizer = fabric.setup(model, optimizer)
    loss_fn = loss_fn.to(fabric.device)
    sampler = EpochBatchSampler(data.train_idx, batch_size=cfg.train.batch_size, seed=cfg.seed,
                                rank=fabric.global_rank, world=fabric.world_size,
                                max_batches=cfg.train.max_batches_per_epoch,
                                weights=sample_weights)
    train_set = data.dataset
    if cfg.data.chunk_frames is not None:
        from musicaffect.data.dataset import RandomWindows

        train_set = RandomWindows(data.dataset, cfg.data.chunk_frames, seed=cfg.seed)
    train_loader = make_loader(train_set, sampler, num_workers=cfg.data.num_workers,
                               max_length=cfg.data.max_length)
    val_loader = make_loader(data.val, None, batch_size=cfg.train.batch_size,
                             num_workers=cfg.data.num_workers, max_length=cfg.data.max_length)
    writer = _tensorboard(run_dir) if rank0 else None
    if claim is not None:   # the event file is reopened where a replacement run moves to
        claim.before_swap.append(writer.close)
        claim.after_swap.append(lambda path: writer.reopen(path))
    raw_model = model.module if hasattr(model, "module") else model
    head_sizes = raw_model.tasks
    ema = None
    if cfg.train.ema > 0:
        from musicaffect.training.recipe import WeightEMA

        ema = WeightEMA(raw_model, cfg.train.ema)
        if has_last:
            if "ema" not in last:
                raise CheckpointError(f"{run_dir}: its last.pt has no EMA weights, but the "
                                      "config sets train.ema; resume with the run's own "
                                      "config.yaml")
            ema.load_state_dict(last["ema"])
    # the weights that are validated and saved as best.pt: the average when EMA is on
    eval_model = ema.module if ema is not None else model
    best_source = ema.module if ema is not None else raw_model
    t_start = time.perf_counter()
    epochs_run = 0
    stopped_early = False

    for epoch in range(start_epoch, cfg.train.epochs):
        if stop_after is not None and epochs_run >= stop_after:
            break
        if early.should_stop:
            stopped_early = True
            break
        t0 = time.perf_counter()
        for g in optimizer.param_groups:
            g["lr"] = cfg.train.lr * lr_factor(epoch, epochs=cfg.train.epochs,
                                               schedule=cfg.train.scheduler,
                                               warmup=cfg.train.warmup_epochs)
        sampler.set_epoch(epoch)
        if hasattr(train_set, "set_epoch"):
            train_set.set_epoch(epoch)
        model.train()
        total, count = 0.0, 0
        bar = tqdm(train_loader, desc=f"epoch {epoch + 1}/{cfg.train.epochs}", leave=False,
                   disable=not (progress and rank0), unit="batch")
        for b, batch in enumerate(bar):
            augment = _mixup(cfg, head_sizes, epoch, b) if cfg.train.mixup > 0 else None
            loss = train_step(model, optimizer, loss_fn, batch, fabric,
                              grad_clip=cfg.train.grad_clip, augment=augment)
            if ema is not None:
                ema.update(raw_model)
            total += float(loss) * len(batch["ids"])
            count += len(batch["ids"])
            bar.set_postfix(loss=f"{total / max(count, 1):.4f}")
        if count == 0:
            raise RunError(f"epoch {epoch + 1} trained on zero batches: check "
                           "train.max_batches_per_epoch and the training split")
        train_loss = fabric.all_reduce(torch.tensor(total / max(count, 1)), reduce_op="mean")
        val_res = predict_outputs(eval_model, val_loader, fabric=fabric,
                                  **window_options(cfg))
        val_loss = _loss_from_outputs(loss_fn, val_res, data.tasks)
        metrics = {"epoch": epoch, "train_loss": float(train_loss), "val_loss": val_loss,
                   "lr": optimizer.param_groups[0]["lr"],
                   "seconds": time.perf_counter() - t0}
        metrics.update({f"val_{k}": v for k, v in
                        outputs_metrics(val_res, data.tasks, bounded=cfg.loss.bounded,
                                        classes=data.vocab.classes).items()})
        if cfg.loss.learn_weights:
            metrics.update({f"w_{k}": v for k, v in loss_fn.current_weights().items()})
        history.append(metrics)
        improved = early.update(metrics[monitor], epoch)
        if rank0:
            ckpt_args = dict(classes=data.vocab.classes, epoch=epoch,
                             metrics=_numeric(metrics), data_info=data.info,
                             targets=[t for t in data.tasks if t != GENRE_TASK],
                             vocab=data.vocab.to_dict(), feature_params=feature_params)
            if improved:
                atomic_save(make_checkpoint(best_source, cfg.to_dict(), **ckpt_args),
                            run_dir / "checkpoints" / "best.pt")
            extra = {"ema": ema.state_dict()} if ema is not None else {}
            atomic_save(make_checkpoint(
                raw_model, cfg.to_dict(), **ckpt_args, optimizer=optimizer.state_dict(),
                loss_state=loss_fn.state_dict(), history=history, early=early.to_dict(),
                rng={"torch": torch.get_rng_state()}, **extra),
                run_dir / "checkpoints" / "last.pt")
            _write_csv(history, run_dir / "metrics.csv")
            for k, v in _numeric(metrics).items():
                if k != "epoch":
                    writer.add_scalar(k, v, epoch)
            log.info("epoch %d: %s%s", epoch + 1, _fmt(metrics), "  *" if improved else "")
            run_dir = claim.commit()   # a replacement takes the old run's place now
        fabric.barrier()
        epochs_run += 1
    else:
        if early.should_stop:
            stopped_early = True

    if writer is not None:
        writer.close()
    if claim is not None and not claim.committed:   # no epoch ran: leave nothing behind
        claim.abort()
    best_metrics = next((h for h in history if h["epoch"] == early.best_epoch), {})
    result = FitResult(run_dir, int(early.best_epoch), float(early.best or 0.0), monitor,
                       history, stopped_early, best_metrics, time.perf_counter() - t_start)
    if rank0 and history:
        _write_summary(result)
        _save_curves(history, run_dir)
    return result


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
    if cfg.train.balance == "none" or GENRE_TASK not in data.tasks:
        return None, None
    labels = np.asarray(data.dataset.labels(GENRE_TASK))[data.train_idx]
    if cfg.train.balance == "loss":
        from musicaffect.training.losses import balanced_class_weights

        return balanced_class_weights(labels, model.tasks[GENRE_TASK]), None
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


def _numeric(m: dict) -> dict[str, float]:
    return {k: float(v) for k, v in m.items() if isinstance(v, (int, float))}


def _fmt(m: dict) -> str:
    keys = [k for k in m if k not in ("epoch", "lr", "seconds")]
    return " ".join(f"{k}={m[k]:.4f}" for k in keys) + f" ({m['seconds']:.1f}s)"


def _write_csv(history: list[dict], path: Path) -> None:
    keys: list[str] = []
    for h in history:
        keys.extend(k for k in h if k not in keys)
    with atomic_open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(history)


def _write_summary(result: FitResult) -> None:
    import json

    summary = {"best_epoch": result.best_epoch, "best_score": result.best_score,
               "monitor": result.monitor, "stopped_early": result.stopped_early,
               "epochs": len(result.history), "best_metrics": result.best_metrics,
               "seconds": result.seconds}
    (result.run_dir / "summary.json").write_text(json.dumps(summary, indent=2))


def _save_curves(history: list[dict], run_dir: Path) -> None:
    import matplotlib.pyplot as plt

    from musicaffect.evaluation.plots import plot_learning_curves

    fig = plot_learning_curves(history)
    fig.savefig(run_dir / "learning_curves.png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def _tensorboard(run_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError:  # tensorboard not installed: log only to CSV
        return _NullWriter()
    return _TensorBoard(run_dir)


class _TensorBoard:
    """A SummaryWriter in ``run_dir/tensorboard`` that can be reopened in another folder
    (its event file is written by path, so it must be closed before the folder moves)."""

    def __init__(self, run_dir: Path):
        self.reopen(run_dir)

    def reopen(self, run_dir: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self._writer = SummaryWriter(log_dir=str(Path(run_dir) / "tensorboard"))

    def add_scalar(self, *args, **kwargs) -> None:
        self._writer.add_scalar(*args, **kwargs)

    def close(self) -> None:
        self._writer.close()


class _NullWriter:
    def add_scalar(self, *args, **kwargs) -> None:
        pass

    def reopen(self, run_dir: Path) -> None:
        pass

    def close(self) -> None:
        pass


# --------------------------------------------------------------------------- overfit

@dataclass
class OverfitResult:
    losses: list[float]
    reached: bool
    target: float
    n_batches: int


def overfit(cfg: RunConfig, data_root: str | Path, *, progress: bool = True) -> OverfitResult:
    """Lab step 5b: train on the first ``cfg.train.overfit_batches`` batches until the
    training loss is below ``cfg.train.overfit_loss`` (or ``overfit_epochs`` pass)."""
    from tqdm.auto import trange

    from musicaffect.training.losses import build_loss

    fabric = make_fabric(cfg)
    fabric.launch()
    fabric.seed_everything(cfg.seed, verbose=False)
    data = prepare_data(cfg, data_root)
    model = build_run_model(cfg, data)
    lc = cfg.loss
    loss_fn = build_loss(data.tasks, regression=lc.regression, bounded=lc.bounded,
                         rank_weight=0.0, weights=lc.weights, learn_weights=False,
                         label_smoothing=0.0, targets=data.vocab.targets)
    optimizer = build_optimizer(cfg, model.parameters())
    model, optimizer = fabric.setup(model, optimizer)
    loss_fn = loss_fn.to(fabric.device)
    k = max(1, cfg.train.overfit_batches)
    sampler = EpochBatchSampler(data.train_idx, batch_size=cfg.train.batch_size, seed=cfg.seed,
                                shuffle=False, max_batches=k)
    batches = list(make_loader(data.dataset, sampler, max_length=cfg.data.max_length))
    losses: list[float] = []
    reached = False
    bar = trange(cfg.train.overfit_epochs, desc="overfit", disable=not progress, leave=False)
    for _ in bar:
        model.train()
        total = 0.0
        for batch in batches:
            total += float(train_step(model, optimizer, loss_fn, batch, fabric))
        losses.append(total / len(batches))
        bar.set_postfix(loss=f"{losses[-1]:.4f}")
        if losses[-1] < cfg.train.overfit_loss:
            reached = True
            break
    return OverfitResult(losses, reached, cfg.train.overfit_loss, len(batches))
