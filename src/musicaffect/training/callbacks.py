"""Callbacks of the training loop (:func:`musicaffect.training.engine.fit_deep`): everything
the loop does besides training and validating, each with one small interface (as Lightning's
and Keras' callbacks).

The loop calls, in list order, ``on_fit_start(trainer)`` once the model is set up,
``on_batch_end(trainer)`` after each optimisation step, ``on_epoch_end(trainer, metrics)``
after each validation and ``on_fit_end(trainer)`` when the loop is left. A callback marked
``rank_zero_only`` runs in the first process only (files). ``state_dict()`` is what the
callback keeps in ``last.pt`` (a dict of top-level keys) and ``load_state_dict(last)`` reads
it back on resume, so that a resumed run continues exactly. ``should_stop`` ends training
before the next epoch.
"""

from __future__ import annotations

import csv
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from musicaffect.errors import CheckpointError
from musicaffect.io import atomic_open
from musicaffect.models.checkpoint import atomic_save, make_checkpoint

log = logging.getLogger(__name__)


class Callback:
    """A no-op callback; subclasses override what they need."""

    rank_zero_only = False
    should_stop = False

    def on_fit_start(self, trainer) -> None:
        pass

    def on_batch_end(self, trainer) -> None:
        pass

    def on_epoch_end(self, trainer, metrics: dict) -> None:
        pass

    def on_fit_end(self, trainer) -> None:
        pass

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, last: dict) -> None:
        pass


def _better(score: float, best: float | None, minimise: bool) -> bool:
    """Whether ``score`` beats ``best``. An undefined (nan) score beats only no score at
    all (the first epoch stands in), and any defined score beats an undefined best; so a
    nan monitor is never chosen over a defined one (a nan epoch counts as no improvement)."""
    if best is None:
        return True
    if not math.isfinite(score):
        return False
    if not math.isfinite(best):
        return True
    return score < best if minimise else score > best


@dataclass
class EarlyStopping(Callback):
    """The best validation score so far, its epoch, and the epochs since it improved.

    ``patience`` 0 never stops. ``last.pt`` keeps the state as a plain dict
    (:meth:`to_dict` / :meth:`from_dict`: keys ``best``, ``best_epoch``, ``bad_epochs``).
    As a callback it reads ``metrics[monitor]`` and sets ``improved`` (read by the
    checkpoint and the log line).
    """

    minimise: bool
    patience: int = 0
    best: float | None = None
    best_epoch: int = -1
    bad_epochs: int = 0
    monitor: str = "val_loss"
    improved: bool = False

    def update(self, score: float, epoch: int) -> bool:
        """Record an epoch's score; returns whether it is the best so far."""
        improved = _better(score, self.best, self.minimise)
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

    def on_epoch_end(self, trainer, metrics: dict) -> None:
        self.improved = self.update(metrics[self.monitor], metrics["epoch"])

    def state_dict(self) -> dict:
        return {"early": self.to_dict()}

    def load_state_dict(self, last: dict) -> None:
        state = self.from_dict(last["early"], minimise=self.minimise, patience=self.patience)
        self.best, self.best_epoch, self.bad_epochs = (state.best, state.best_epoch,
                                                       state.bad_epochs)


class EMA(Callback):
    """An exponential moving average of the weights (``train.ema``), updated after every
    step; the average is what the loop validates and saves as ``best.pt``."""

    def __init__(self, decay: float):
        self.decay = decay
        self.ema = None
        self._last = None

    def load_state_dict(self, last: dict) -> None:
        if "ema" not in last:
            raise CheckpointError(f"{last['path']}: its last.pt has no EMA weights, but the "
                                  "config sets train.ema; resume with the run's own "
                                  "config.yaml")
        self._last = last["ema"]

    def on_fit_start(self, trainer) -> None:
        from musicaffect.training.recipe import WeightEMA

        self.ema = WeightEMA(trainer.raw_model, self.decay)
        if self._last is not None:
            self.ema.load_state_dict(self._last)
        trainer.eval_model = trainer.best_source = self.ema.module

    def on_batch_end(self, trainer) -> None:
        self.ema.update(trainer.raw_model)

    def state_dict(self) -> dict:
        return {"ema": self.ema.state_dict()}


class Checkpoint(Callback):
    """``checkpoints/best.pt`` when the monitored score improved (the validated weights)
    and ``checkpoints/last.pt`` every epoch: the model, optimizer, loss and RNG state, the
    history and every callback's :meth:`~Callback.state_dict`, so that resume is exact."""

    rank_zero_only = True

    def on_epoch_end(self, trainer, metrics: dict) -> None:
        data, cfg = trainer.data, trainer.cfg
        ckpt_args = dict(classes=data.vocab.classes, epoch=metrics["epoch"],
                         metrics=numeric(metrics), data_info=data.info,
                         specs=data.specs,
                         vocab=data.vocab.to_dict(), feature_params=trainer.feature_params)
        folder = trainer.run_dir / "checkpoints"
        if trainer.early.improved:
            atomic_save(make_checkpoint(trainer.best_source, cfg.to_dict(), **ckpt_args),
                        folder / "best.pt")
        extra = {k: v for cb in trainer.callbacks for k, v in cb.state_dict().items()}
        atomic_save(make_checkpoint(
            trainer.raw_model, cfg.to_dict(), **ckpt_args,
            optimizer=trainer.optimizer.state_dict(), loss_state=trainer.loss_fn.state_dict(),
            history=trainer.history, rng={"torch": torch.get_rng_state()}, **extra),
            folder / "last.pt")


class CSVLogger(Callback):
    """``metrics.csv``: one row per epoch (the whole history, rewritten atomically)."""

    rank_zero_only = True

    def on_epoch_end(self, trainer, metrics: dict) -> None:
        write_csv(trainer.history, trainer.run_dir / "metrics.csv")


class TensorBoardLogger(Callback):
    """The epoch's numbers in ``tensorboard/`` (when tensorboard is installed); the event
    file follows a replacement run into place (closed before the swap, reopened after)."""

    rank_zero_only = True

    def on_fit_start(self, trainer) -> None:
        self.writer = _tensorboard(trainer.run_dir)
        if trainer.claim is not None:
            trainer.claim.before_swap.append(self.writer.close)
            trainer.claim.after_swap.append(lambda path: self.writer.reopen(path))

    def on_epoch_end(self, trainer, metrics: dict) -> None:
        for k, v in numeric(metrics).items():
            if k != "epoch":
                self.writer.add_scalar(k, v, metrics["epoch"])

    def on_fit_end(self, trainer) -> None:
        self.writer.close()


class EpochLog(Callback):
    """One log line per epoch (``*`` marks the best so far)."""

    rank_zero_only = True

    def on_epoch_end(self, trainer, metrics: dict) -> None:
        log.info("epoch %d: %s%s", metrics["epoch"] + 1, _fmt(metrics),
                 "  *" if trainer.early.improved else "")


class CommitRun(Callback):
    """After the epoch's files: a replacement run takes the old run's place (once)."""

    rank_zero_only = True

    def on_epoch_end(self, trainer, metrics: dict) -> None:
        trainer.run_dir = trainer.claim.commit()


def default_callbacks(cfg, early: EarlyStopping) -> list[Callback]:
    """The callbacks of a run configured as ``cfg``, in the order they run."""
    return [early, *([EMA(cfg.train.ema)] if cfg.train.ema > 0 else []), Checkpoint(),
            CSVLogger(), TensorBoardLogger(), EpochLog(), CommitRun()]


# --------------------------------------------------------------------------- files

def numeric(m: dict) -> dict[str, float]:
    return {k: float(v) for k, v in m.items() if isinstance(v, (int, float))}


def _fmt(m: dict) -> str:
    keys = [k for k in m if k not in ("epoch", "lr", "seconds")]
    return " ".join(f"{k}={_num(m[k])}" for k in keys) + f" ({m['seconds']:.1f}s)"


def _num(v) -> str:
    """A logged value: 4 decimals, ``n/a`` for an undefined one (nan: e.g. the Spearman of
    one validation clip or of a constant prediction)."""
    return "n/a" if isinstance(v, float) and math.isnan(v) else f"{v:.4f}"


def write_csv(history: list[dict], path: Path) -> None:
    keys: list[str] = []
    for h in history:
        keys.extend(k for k in h if k not in keys)
    with atomic_open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(history)


def save_figure(fig, path: Path) -> Path:
    """Save a figure made by :mod:`musicaffect.evaluation.plots` and close it (one owner of
    the plot-and-save of the training files: learning and overfit curves)."""
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def save_curves(history: list[dict], run_dir: Path) -> None:
    from musicaffect.evaluation.plots import plot_learning_curves

    save_figure(plot_learning_curves(history), run_dir / "learning_curves.png")


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
