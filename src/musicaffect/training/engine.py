"""The training loop every experiment uses, on top of Lightning Fabric.

Fabric handles devices (CUDA, MPS, CPU), mixed precision and distributed training (DDP on
several GPUs or nodes, or several CPU processes with gloo); this module only knows about the
run: data split, model from the registry, loss, early stopping, checkpoints, logs.

Reproducibility: one seed drives the model initialisation and, through
:class:`EpochBatchSampler`, the order of batches of every epoch (a pure function of
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
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler, Subset

from musicaffect.config import RunConfig
from musicaffect.data.labels import CLASSES, GENRE_TASK
from musicaffect.errors import CheckpointError, ConfigError, DataError, RunError
from musicaffect.training.checkpoint import atomic_save, load_checkpoint, make_checkpoint

log = logging.getLogger(__name__)

MINIMISE = {"val_loss"}


# --------------------------------------------------------------------------- data

class EpochBatchSampler(Sampler[list[int]]):
    """Batches of dataset indices; the order is a pure function of ``(seed, epoch)``.

    With ``world > 1`` every global batch of ``batch_size * world`` indices is dealt out
    round-robin (rank ``r`` takes positions ``r, r + world, ...``), so a DDP run with
    ``batch_size`` per process sees, per step, exactly the clips of the single-process run
    with ``batch_size * world``. Incomplete global batches are dropped when ``world > 1``
    (every rank must take the same number of steps).

    With ``weights`` (one per index, class-balanced sampling), each epoch draws
    ``len(indices)`` indices with replacement with these probabilities instead of a
    permutation; still a pure function of ``(seed, epoch)``.
    """

    def __init__(self, indices, *, batch_size: int, seed: int, shuffle: bool = True,
                 rank: int = 0, world: int = 1, max_batches: int | None = None,
                 weights=None):
        self.indices = np.asarray(indices, dtype=np.int64)
        self.weights = None
        if weights is not None:
            w = np.asarray(weights, dtype=np.float64)
            if w.shape != self.indices.shape or (w < 0).any() or w.sum() <= 0:
                raise ValueError("sampling weights must be >= 0, one per index, not all 0")
            self.weights = w / w.sum()
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.rank = rank
        self.world = world
        self.max_batches = max_batches
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _global_batches(self) -> list[np.ndarray]:
        order = self.indices
        if self.shuffle and self.weights is not None:
            order = np.random.default_rng([self.seed, self.epoch]).choice(
                order, size=order.size, replace=True, p=self.weights)
        elif self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(order)
        g = self.batch_size * self.world
        batches = [order[i:i + g] for i in range(0, len(order), g)]
        if self.world > 1 and batches and len(batches[-1]) < g:
            batches = batches[:-1]
        if self.max_batches is not None:
            batches = batches[:self.max_batches]
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        for gb in self._global_batches():
            yield gb[self.rank::self.world].tolist()

    def __len__(self) -> int:
        return len(self._global_batches())


@dataclass
class RunData:
    """The datasets of a run: train/validation subsets of one labelled folder."""

    dataset: object                 # SpectrogramDataset over the whole train split
    train_idx: np.ndarray
    val_idx: np.ndarray
    n_features: int
    tasks: list[str]
    info: dict = field(default_factory=dict)
    vocab: object = None            # musicaffect.data.vocab.Vocabulary of the data root

    @property
    def train(self) -> Subset:
        return Subset(self.dataset, self.train_idx.tolist())

    @property
    def val(self) -> Subset:
        return Subset(self.dataset, self.val_idx.tolist())


def task_sizes(tasks: list[str], classes=CLASSES) -> dict[str, int]:
    """Output size of each task's head (genre: number of the data's classes; regression: 1)."""
    return {t: (len(classes) if t == GENRE_TASK else 1) for t in tasks}


def prepare_data(cfg: RunConfig, data_root: str | Path) -> RunData:
    """Index the run's training folder and split it into train/validation (seeded)."""
    from musicaffect.data.dataset import SpectrogramDataset
    from musicaffect.data.splits import train_val_split
    from musicaffect.data.vocab import load_groups, load_vocabulary

    d = cfg.data
    vocab = load_vocabulary(data_root, genre_map=getattr(d, "genre_map", None))
    ds = SpectrogramDataset(data_root, dataset=d.dataset, rate=d.rate, split="train",
                            view=d.view, tasks=tuple(d.tasks), cache_dir=d.cache_dir,
                            use_cache=d.use_cache, skip_bad=d.skip_bad, vocab=vocab)
    n = len(ds)
    if n < 2:
        raise DataError(f"the training split has {n} usable clip(s); at least 2 are needed "
                        "(check the label file and --skip-bad warnings)",
                        path=Path(data_root))
    if cfg.loss.bounded:
        for t in ds.tasks:
            lo, hi = vocab.ranges.get(t, (0.0, 1.0))
            if t != GENRE_TASK and (lo < 0.0 or hi > 1.0):
                raise ConfigError(f"loss.bounded squashes outputs into [0, 1], but target {t} "
                                  f"spans [{lo:g}, {hi:g}] in this data: set loss.bounded=false "
                                  "or rescale the labels to [0, 1]")
    stratify = ds.labels(GENRE_TASK) if (d.stratify and GENRE_TASK in ds.tasks) else None
    # clips of one group (song, artist, source file) stay on one side of the split
    by_id = load_groups(data_root, vocab)
    groups = np.array([by_id.get(r.id, f"\0{r.id}") for r in ds.records]) if by_id else None
    train_idx, val_idx = train_val_split(n, val_fraction=d.val_fraction, seed=d.split_seed,
                                         stratify=stratify, groups=groups)
    if len(train_idx) == 0 or len(val_idx) == 0:
        raise DataError(f"the train/validation split of {n} clips left an empty side; "
                        "add clips or change data.val_fraction", path=Path(data_root))
    info = {"dataset": d.dataset, "rate": d.rate, "view": d.view, "n_features": ds.n_features,
            "n_train": int(len(train_idx)), "n_val": int(len(val_idx)),
            "data_root": str(data_root), "grouped_split": groups is not None}
    return RunData(ds, np.asarray(train_idx), np.asarray(val_idx), ds.n_features,
                   list(ds.tasks), info, vocab)


def make_loader(dataset, sampler: Sampler | None, *, batch_size: int = 32,
                num_workers: int = 0, max_length: int | None = None) -> DataLoader:
    """DataLoader with the project's collate (per-batch padding, true lengths)."""
    from functools import partial

    from musicaffect.data.dataset import collate

    fn = partial(collate, max_length=max_length)
    if sampler is not None:
        return DataLoader(dataset, batch_sampler=sampler, collate_fn=fn,
                          num_workers=num_workers, persistent_workers=False)
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=fn,
                      num_workers=num_workers)


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
    from musicaffect.models.registry import WRAPPER_PARAMS

    mine = model.model_args()

    def arch(params: dict) -> dict:
        # wrapper options (head dropout, masking) and the LSTM's impl may differ
        return {k: v for k, v in params.items() if k not in WRAPPER_PARAMS and k != "impl"}

    if margs["name"] != mine["name"] or arch(margs["params"]) != arch(mine["params"]):
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

def window_options(cfg: RunConfig) -> dict:
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
    from musicaffect.training.losses import predict_transform

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


def keep_heap() -> bool:
    """Ask glibc's allocator to keep freed memory instead of returning it to the OS.

    A full-rate batch's activations are hundreds of MB; by default glibc maps them fresh at
    every step (the kernel zeroes every page) and unmaps them after, which costs about half of
    a CPU training step of the lab CNN (bench/README.md). Raising the mmap and trim
    thresholds keeps the pages for reuse, at the price of a higher resident peak. Linux/glibc
    only; returns False where it does not apply.
    """
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):   # not glibc (e.g. musl): nothing to tune
        return False
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
    big = 2**31 - 1
    return bool(mallopt(M_MMAP_THRESHOLD, big)) and bool(mallopt(M_TRIM_THRESHOLD, big))


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
        from musicaffect.models.classical import fit_classical

        other = fit_classical if cfg.model.name == "classical" else fit_ensemble
        return other(cfg, data_root, run_dir, resume=resume, overwrite=overwrite,
                     progress=progress)
    from tqdm.auto import tqdm

    from musicaffect.training.losses import build_loss
    from musicaffect.training.rundir import RunClaim, check_resume, plan_run_dir

    run_dir = Path(run_dir)
    cfg.validate()
    keep_heap()
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
    early = {"best": None, "best_epoch": -1, "bad_epochs": 0}
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
        early = dict(last["early"])
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
    monitor = cfg.train.monitor
    minimise = monitor in MINIMISE
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
        if cfg.train.patience and early["bad_epochs"] >= cfg.train.patience:
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
            x = fabric.to_device(batch["x"])
            y = {k: fabric.to_device(v) for k, v in batch["y"].items()}
            lengths = batch["lengths"]
            if cfg.train.mixup > 0:
                from musicaffect.training.recipe import mixup_batch

                x, lengths, y, _ = mixup_batch(
                    x, lengths, y, alpha=cfg.train.mixup, n_classes=head_sizes,
                    seed=cfg.seed, epoch=epoch, batch=b)
            out = model(x, lengths)
            loss, _ = loss_fn(out, y)
            optimizer.zero_grad(set_to_none=True)
            fabric.backward(loss)
            if cfg.train.grad_clip:
                fabric.clip_gradients(model, optimizer, max_norm=cfg.train.grad_clip)
            optimizer.step()
            if ema is not None:
                ema.update(raw_model)
            total += float(loss.detach()) * len(batch["ids"])
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
        score = metrics[monitor]
        improved = early["best"] is None or (score < early["best"] if minimise
                                             else score > early["best"])
        if improved:
            early.update(best=score, best_epoch=epoch, bad_epochs=0)
        else:
            early["bad_epochs"] += 1
        if rank0:
            ckpt_args = dict(classes=data.vocab.classes, epoch=epoch,
                             metrics=_numeric(metrics), data_info=data.info,
                             targets=[t for t in data.tasks if t != GENRE_TASK],
                             vocab=data.vocab.to_dict())
            if improved:
                atomic_save(make_checkpoint(best_source, cfg.to_dict(), **ckpt_args),
                            run_dir / "checkpoints" / "best.pt")
            extra = {"ema": ema.state_dict()} if ema is not None else {}
            atomic_save(make_checkpoint(
                raw_model, cfg.to_dict(), **ckpt_args, optimizer=optimizer.state_dict(),
                loss_state=loss_fn.state_dict(), history=history, early=early,
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
        if cfg.train.patience and early["bad_epochs"] >= cfg.train.patience:
            stopped_early = True

    if writer is not None:
        writer.close()
    if claim is not None and not claim.committed:   # no epoch ran: leave nothing behind
        claim.abort()
    best_metrics = next((h for h in history if h["epoch"] == early["best_epoch"]), {})
    result = FitResult(run_dir, int(early["best_epoch"]), float(early["best"] or 0.0), monitor,
                       history, stopped_early, best_metrics, time.perf_counter() - t_start)
    if rank0 and history:
        _write_summary(result)
        _save_curves(history, run_dir)
    return result


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
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(history)
    tmp.replace(path)


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

    keep_heap()
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
            out = model(fabric.to_device(batch["x"]), batch["lengths"])
            loss, _ = loss_fn(out, {t: fabric.to_device(v) for t, v in batch["y"].items()})
            optimizer.zero_grad(set_to_none=True)
            fabric.backward(loss)
            optimizer.step()
            total += float(loss.detach())
        losses.append(total / len(batches))
        bar.set_postfix(loss=f"{losses[-1]:.4f}")
        if losses[-1] < cfg.train.overfit_loss:
            reached = True
            break
    return OverfitResult(losses, reached, cfg.train.overfit_loss, len(batches))
