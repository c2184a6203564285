"""What training returns, for every model family (its own module, so that the families and
the trainer share it without importing each other)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass
class FitResult:
    """What a family's ``fit`` returns (the deep trainer also writes it to
    ``run_dir/summary.json``). Runs without epochs (classical, ensemble) have ``best_epoch``
    0 or an empty ``history``."""

    run_dir: Path
    best_epoch: int
    best_score: float
    monitor: str
    history: list[dict]
    stopped_early: bool
    best_metrics: dict
    seconds: float

    def write_summary(self) -> None:
        """``run_dir/summary.json``: the best epoch, its score and metrics, time taken."""
        summary = {"best_epoch": self.best_epoch, "best_score": self.best_score,
                   "monitor": self.monitor, "stopped_early": self.stopped_early,
                   "epochs": len(self.history), "best_metrics": self.best_metrics,
                   "seconds": self.seconds}
        (self.run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
