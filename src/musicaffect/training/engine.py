"""The training loop every deep run uses, on top of Lightning Fabric, and :func:`fit`, the
entry point of every run (any model family, through :mod:`musicaffect.families.registry`).

Fabric handles devices (CUDA, MPS, CPU), mixed precision and distributed training (DDP on
several GPUs or nodes, or several CPU processes with gloo). The loop (:class:`Trainer`) only
trains and validates; checkpoints, early stopping, the EMA of the weights, the CSV and
TensorBoard logs and the curves are callbacks (:mod:`musicaffect.training.callbacks`); the
model, optimizer and Fabric are built by :mod:`musicaffect.training.build`.

Reproducibility: one seed drives the model initialisation and, through
:class:`~musicaffect.data.loading.EpochBatchSampler`, the order of batches of every epoch (a pure function of
``(seed, epoch)``). ``last.pt`` holds the optimizer, loss and RNG state at the end of each
epoch (and each callback's state), so ``resume`` continues an interrupted run and ends with
the same weights as an uninterrupted one (on the CPU). The recipe options keep this: excerpt
windows (``data.chunk_frames``), mixup pairs and class-balanced draws are pure functions of
``(seed, epoch, clip or batch)``, and ``last.pt`` also holds the EMA weights.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml

from musicaffect.config import RunConfig
from musicaffect.data.loading import EpochBatchSampler, make_loader, prepare_data
from musicaffect.errors import CheckpointError, RunError
from musicaffect.evaluation.inference import outputs_metrics, predict_outputs, window_options
from musicaffect.features.params import root_feature_params
from musicaffect.models.checkpoint import load_checkpoint
from musicaffect.training.build import (  # noqa: F401  (also found here by their users)
    _balance,
    _check_batches,
    _loss_from_outputs,
    _mixup,
    _prepare_data_ranked,
    _share_cpu_threads,
    build_optimizer,
    build_run_model,
    lr_factor,
    make_fabric,
    train_step,
    transfer_backbone,
)
from musicaffect.training.callbacks import (
    Callback,
    EarlyStopping,
    default_callbacks,
    save_curves,
    save_figure,
)
from musicaffect.training.result import FitResult

log = logging.getLogger(__name__)

MINIMISE = {"val_loss"}


# --------------------------------------------------------------------------- entry point

def fit(cfg: RunConfig, data_root: str | Path, run_dir: str | Path, *, resume: bool = False,
        overwrite: bool = False, progress: bool = True, stop_after: int | None = None
        ) -> FitResult:
    """Train ``cfg`` into ``run_dir`` with its model family's ``fit`` (a network:
    :func:`fit_deep`; members of a family made of runs are trained by
    :func:`run_experiment`). ``stop_after`` (deep runs: stop as if interrupted after this
    many epochs) is for tests of resume."""
    from musicaffect.families.registry import fit as family_fit

    def train(member_cfg, member_dir) -> Path:
        return run_experiment(member_cfg, data_root, member_dir, progress=progress)

    options = {} if stop_after is None else {"stop_after": stop_after}
    return family_fit(cfg, data_root, run_dir, resume=resume, overwrite=overwrite,
                      progress=progress, train=train, **options)


def run_experiment(cfg: RunConfig, data_root: str | Path, run_dir: str | Path, *,
                   reuse: bool = True, progress: bool = True) -> Path:
    """Train ``cfg`` into ``run_dir`` unless a finished run of the same config is there.

    A finished run (``summary.json``, an identical ``config.yaml`` and the same data, by the
    fingerprint in its marker) is reused; a run with ``last.pt`` but no summary is resumed;
    anything else is replaced, and the reason is logged.
    """
    run_dir = Path(run_dir)
    same = False
    cfg_file = run_dir / "config.yaml"
    if cfg_file.is_file():
        from musicaffect.training.rundir import data_difference

        same = yaml.safe_load(cfg_file.read_text()) == cfg.to_dict()
        why = "its config differs" if not same else data_difference(run_dir, data_root)
        if why and reuse:
            log.warning("%s: not reused (%s): training it again", run_dir, why)
            same = False
    if reuse and same and (run_dir / "summary.json").is_file():
        log.info("reusing finished run %s", run_dir)
        return run_dir
    resume = reuse and same and (run_dir / "checkpoints" / "last.pt").is_file()
    log.info("%s run %s", "resuming" if resume else "training", run_dir)
    fit(cfg, data_root, run_dir, resume=resume, overwrite=not resume, progress=progress)
    return run_dir


def prepare_run_dir(run_dir: Path, *, resume: bool, overwrite: bool,
                    data_root: str | Path | None = None) -> bool:
    """Check how ``run_dir`` may be used (see :mod:`musicaffect.training.rundir`); returns
    True when there is a ``last.pt`` to resume from. Writes nothing: :func:`fit` claims the
    folder only when training starts."""
    from musicaffect.training.rundir import plan_run_dir

    return plan_run_dir(run_dir, data_root=data_root, resume=resume,
                        overwrite=overwrite).resumes


# --------------------------------------------------------------------------- the loop

def fit_deep(cfg: RunConfig, data_root: str | Path, run_dir: str | Path, *,
             resume: bool = False, overwrite: bool = False, progress: bool = True,
             stop_after: int | None = None, callbacks: list[Callback] | None = None,
             build_model: Callable | None = None) -> FitResult:
    """Train a network as configured; writes checkpoints, metrics.csv, TensorBoard, curves.
    A run that fails before its first checkpoint leaves nothing behind
    (:class:`~musicaffect.training.rundir.RunClaim`).

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
    callbacks : list of Callback, optional
        Instead of :func:`~musicaffect.training.callbacks.default_callbacks` (the first must
        be the EarlyStopping that picks the best epoch).
    build_model : callable, optional
        ``build_model(cfg, data) -> MusicModel`` instead of :func:`build_run_model` (the
        backbone registry's model): a family with its own network (e.g. a head on
        pretrained embeddings) trains it with this loop.
    """
    trainer = Trainer(cfg, data_root, run_dir, progress=progress,
                      build_model=build_model or build_run_model)
    try:
        trainer.setup(resume=resume, overwrite=overwrite, callbacks=callbacks)
        return trainer.run(stop_after=stop_after)
    except BaseException:
        if trainer.claim is not None:
            trainer.claim.abort()
        raise


class Trainer:
    """One deep run: :meth:`setup` builds (or resumes) the model, optimizer, loss, loaders
    and callbacks; :meth:`run` is the loop. Callbacks read its attributes (``cfg``, ``data``,
    ``run_dir``, ``raw_model``, ``optimizer``, ``loss_fn``, ``history``, ``early``,
    ``claim``) and may set ``eval_model`` / ``best_source`` (the weights validated and saved
    as ``best.pt``)."""

    def __init__(self, cfg: RunConfig, data_root, run_dir, *, progress: bool = True,
                 build_model: Callable = build_run_model):
        self.cfg, self.data_root, self.run_dir = cfg, data_root, Path(run_dir)
        self.progress, self.build_model = progress, build_model
        self.claim = None

    def setup(self, *, resume: bool, overwrite: bool, callbacks=None) -> None:
        from musicaffect.training.losses import build_loss
        from musicaffect.training.rundir import RunClaim, plan_run_dir

        cfg = self.cfg
        cfg.validate()
        fabric = self.fabric = make_fabric(cfg)
        fabric.launch()
        _share_cpu_threads(fabric, cfg.train.num_nodes)
        self.rank0 = fabric.global_rank == 0
        plan = None
        if self.rank0:   # only looks: nothing is written before the data and the model are ready
            plan = plan_run_dir(self.run_dir, data_root=self.data_root, resume=resume,
                                overwrite=overwrite)
        has_last = fabric.broadcast(bool(plan and plan.resumes), src=0)
        fabric.barrier()
        fabric.seed_everything(cfg.seed, workers=True, verbose=False)

        data = self.data = _prepare_data_ranked(fabric, cfg, self.data_root)
        # the parameters the data's features were made with travel with the model (predict)
        self.feature_params = root_feature_params(self.data_root).to_dict()
        model = self.build_model(cfg, data)
        lc = cfg.loss
        class_weights, sample_weights = _balance(cfg, data, model)
        loss_fn = build_loss(data.specs, regression=lc.regression,
                             rank_weight=lc.rank_weight, weights=lc.weights,
                             learn_weights=lc.learn_weights,
                             label_smoothing=lc.label_smoothing, class_weights=class_weights)
        optimizer = build_optimizer(cfg, list(model.parameters()) + list(loss_fn.parameters()))
        self.history: list[dict] = []
        self.start_epoch = 0
        self.early = EarlyStopping(cfg.train.monitor in MINIMISE, cfg.train.patience,
                                   monitor=cfg.train.monitor)
        self.callbacks = list(callbacks) if callbacks is not None else default_callbacks(
            cfg, self.early)
        self.early = self.callbacks[0]
        if has_last:
            self._resume(model, optimizer, loss_fn)
        _check_batches(cfg, data, fabric.world_size)
        self.claim = RunClaim(plan) if self.rank0 else None
        if self.claim is not None:   # training starts: claim the folder (a replacement goes beside)
            self.run_dir = self.claim.claim(cfg)
            if data.dataset.skipped:
                from musicaffect.data.layout import write_skipped

                path = write_skipped(data.dataset.skipped, self.run_dir / "skipped.tsv")
                log.warning("%d bad clip(s) or label row(s) skipped; listed in %s",
                            len(data.dataset.skipped), path)

        self.model, self.optimizer = fabric.setup(model, optimizer)
        self.loss_fn = loss_fn.to(fabric.device)
        self.sampler = EpochBatchSampler(
            data.train_idx, batch_size=cfg.train.batch_size, seed=cfg.seed,
            rank=fabric.global_rank, world=fabric.world_size,
            max_batches=cfg.train.max_batches_per_epoch, weights=sample_weights)
        self.train_set = data.dataset
        if cfg.data.chunk_frames is not None:
            from musicaffect.data.dataset import RandomWindows

            self.train_set = RandomWindows(data.dataset, cfg.data.chunk_frames, seed=cfg.seed)
        self.train_loader = make_loader(self.train_set, self.sampler,
                                        num_workers=cfg.data.num_workers,
                                        max_length=cfg.data.max_length)
        self.val_loader = make_loader(data.val, None, batch_size=cfg.train.batch_size,
                                      num_workers=cfg.data.num_workers,
                                      max_length=cfg.data.max_length)
        self.raw_model = self.model.module if hasattr(self.model, "module") else self.model
        # the weights that are validated and saved as best.pt (the EMA callback: its average)
        self.eval_model, self.best_source = self.model, self.raw_model
        self._callbacks("on_fit_start")

    def _resume(self, model, optimizer, loss_fn) -> None:
        """Model, optimizer, loss, history, callbacks and RNG state from ``last.pt``."""
        from musicaffect.training.rundir import check_resume

        last = load_checkpoint(self.run_dir, which="last")
        check_resume(self.run_dir, self.cfg, model, last)
        _check_same_specs(last, self.data.specs)
        try:
            model.load_state_dict(last["state_dict"])
            optimizer.load_state_dict(last["optimizer"])
            loss_fn.load_state_dict(last["loss_state"])
        except (KeyError, RuntimeError, ValueError) as err:
            raise CheckpointError(f"{last['path']}: does not fit this run's model ("
                                  f"{str(err).splitlines()[0]}); start again with "
                                  "--overwrite or another --out") from None
        self.history = list(last["history"])
        for cb in self.callbacks:
            cb.load_state_dict(last)
        self.start_epoch = int(last["epoch"]) + 1
        torch.set_rng_state(last["rng"]["torch"])
        log.info("resuming %s from epoch %d", self.run_dir, self.start_epoch)

    def _callbacks(self, hook: str, *args) -> None:
        for cb in self.callbacks:
            if self.rank0 or not cb.rank_zero_only:
                getattr(cb, hook)(self, *args)

    def run(self, *, stop_after: int | None = None) -> FitResult:
        """The loop: epochs of training steps, then validation and the callbacks."""
        cfg, t_start, epochs_run, stopped_early = self.cfg, time.perf_counter(), 0, False
        for epoch in range(self.start_epoch, cfg.train.epochs):
            if stop_after is not None and epochs_run >= stop_after:
                break
            if any(cb.should_stop for cb in self.callbacks):
                stopped_early = True
                break
            t0 = time.perf_counter()
            train_loss = self.train_epoch(epoch)
            val_res = predict_outputs(self.eval_model, self.val_loader, fabric=self.fabric,
                                      **window_options(cfg), specs=self.data.specs)
            metrics = {"epoch": epoch, "train_loss": float(train_loss),
                       "val_loss": _loss_from_outputs(self.loss_fn, val_res, self.data.tasks),
                       "lr": self.optimizer.param_groups[0]["lr"],
                       "seconds": time.perf_counter() - t0}
            metrics.update({f"val_{k}": v for k, v in outputs_metrics(
                val_res, self.data.tasks, specs=self.data.specs).items()})
            if cfg.loss.learn_weights:
                metrics.update({f"w_{k}": v for k, v in self.loss_fn.current_weights().items()})
            self.history.append(metrics)
            self._callbacks("on_epoch_end", metrics)
            self.fabric.barrier()
            epochs_run += 1
        else:
            stopped_early = any(cb.should_stop for cb in self.callbacks)
        self._callbacks("on_fit_end")
        if self.claim is not None and not self.claim.committed:   # no epoch ran: leave nothing
            self.claim.abort()
        early = self.early
        best_metrics = next((h for h in self.history if h["epoch"] == early.best_epoch), {})
        result = FitResult(self.run_dir, int(early.best_epoch), float(early.best or 0.0),
                           cfg.train.monitor, self.history, stopped_early, best_metrics,
                           time.perf_counter() - t_start)
        if self.rank0 and self.history:
            result.write_summary()
            save_curves(self.history, self.run_dir)
        return result

    def train_epoch(self, epoch: int) -> torch.Tensor:
        """One epoch of optimisation steps; returns the mean training loss (all processes)."""
        from tqdm.auto import tqdm

        cfg = self.cfg
        for g in self.optimizer.param_groups:
            g["lr"] = cfg.train.lr * lr_factor(epoch, epochs=cfg.train.epochs,
                                               schedule=cfg.train.scheduler,
                                               warmup=cfg.train.warmup_epochs)
        self.sampler.set_epoch(epoch)
        if hasattr(self.train_set, "set_epoch"):
            self.train_set.set_epoch(epoch)
        self.model.train()
        total, count = 0.0, 0
        bar = tqdm(self.train_loader, desc=f"epoch {epoch + 1}/{cfg.train.epochs}",
                   leave=False, disable=not (self.progress and self.rank0), unit="batch")
        for b, batch in enumerate(bar):
            augment = _mixup(cfg, self.raw_model.tasks, epoch, b) if cfg.train.mixup > 0 \
                else None
            loss = train_step(self.model, self.optimizer, self.loss_fn, batch, self.fabric,
                              grad_clip=cfg.train.grad_clip, augment=augment)
            self._callbacks("on_batch_end")
            total += float(loss) * len(batch["ids"])
            count += len(batch["ids"])
            bar.set_postfix(loss=f"{total / max(count, 1):.4f}")
        if count == 0:
            raise RunError(f"epoch {epoch + 1} trained on zero batches: check "
                           "train.max_batches_per_epoch and the training split")
        return self.fabric.all_reduce(torch.tensor(total / max(count, 1)), reduce_op="mean")


def _check_same_specs(last: dict, specs: dict) -> None:
    """Refuse to resume a run whose tasks were trained as other kinds than this version
    trains them (a binary target trained with MSE before binary targets used BCE)."""
    from musicaffect.models.checkpoint import task_specs

    theirs = task_specs(last)
    differ = [t for t, s in specs.items() if t in theirs and theirs[t] != s]
    if differ:
        shown = ", ".join(f"{t} ({theirs[t].kind} -> {specs[t].kind})" for t in differ)
        raise CheckpointError(
            f"{last['path']}: the run trained {shown} otherwise than this version trains "
            "them (binary targets now train with BCE), so --resume would not continue the "
            "same run; start a new run (--overwrite or another --out)")


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
    loss_fn = build_loss(data.specs, regression=lc.regression,
                         rank_weight=0.0, weights=lc.weights, learn_weights=False,
                         label_smoothing=0.0)
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


def save_overfit(res: OverfitResult, out_dir: str | Path, *, name: str = "overfit") -> Path:
    """The overfit check's curve (``<name>_curve.png``, the target as a line) and numbers
    (``<name>.json``) in ``out_dir``; returns the figure's path. One owner for the CLI's
    ``train --set train.overfit_batches=...`` and the lab's steps 5b / 7b."""
    from musicaffect.evaluation.plots import plot_overfit_curve

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    fig = save_figure(plot_overfit_curve(res.losses, threshold=res.target),
                      out / f"{name}_curve.png")
    (out / f"{name}.json").write_text(json.dumps(
        {"losses": res.losses, "reached": res.reached, "target": res.target}))
    return fig
