"""Predict genre and/or valence, energy, danceability for songs (audio files).

The features are computed exactly as the dataset's (:mod:`musicaffect.features.audio`), at
the rate (full or beat-synchronous) and view each model was trained on. A song longer than
the training clips (30 s) is cut into windows of that length (half-overlapping); the model
sees each window as it saw training clips, and the song-level result is the mean over windows
of the genre probabilities and of the affect values. Shorter songs are one window. A model
trained on excerpts (``data.chunk_frames``) instead sees the song as it saw evaluation clips:
evenly spaced windows of its own ``chunk_frames`` (hop ``chunk_hop``, default half a window)
over the whole song, averaged the same way.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from musicaffect.data.arrays import select_view
from musicaffect.data.labels import CLASSES, GENRE_TASK, TARGETS
from musicaffect.errors import MusicAffectError

log = logging.getLogger(__name__)

WINDOW_SECONDS = 30.0


@dataclass
class LoadedModel:
    """A checkpoint ready for prediction."""

    name: str
    model: torch.nn.Module
    rate: str
    view: str
    tasks: list[str]
    bounded: bool
    path: str
    chunk_frames: int | None = None     # trained on excerpts: windows of this many frames
    chunk_hop: int | None = None


@dataclass
class SongPrediction:
    """Song-level predictions of one audio file (``error`` set when it failed)."""

    file: str
    seconds: float = 0.0
    windows: int = 0
    genre: list[tuple[str, float]] = field(default_factory=list)   # top classes, prob
    affect: dict[str, float] = field(default_factory=dict)
    models: list[str] = field(default_factory=list)
    beat_fallback: bool = False
    error: str | None = None

    def to_dict(self, top: int | None = None) -> dict:
        d = {"file": self.file, "seconds": round(self.seconds, 2), "windows": self.windows,
             "models": self.models}
        if self.error:
            d["error"] = self.error
            return d
        if self.genre:
            d["genre"] = [{"class": c, "probability": round(p, 4)}
                          for c, p in self.genre[:top or len(self.genre)]]
        d.update({k: round(v, 4) for k, v in self.affect.items()})
        if self.beat_fallback:
            d["beat_fallback"] = True
        return d


def load_models(paths: list[str | Path]) -> list[LoadedModel]:
    """Load checkpoints (run folders or .pt files) for prediction."""
    from musicaffect.config import config_from_dict
    from musicaffect.training.checkpoint import load_model

    out = []
    for p in paths:
        model, ckpt = load_model(p)
        cfg = config_from_dict(ckpt["config"])
        out.append(LoadedModel(cfg.name, model, cfg.data.rate, cfg.data.view,
                               list(ckpt["model"]["tasks"]), cfg.loss.bounded, ckpt["path"],
                               cfg.data.chunk_frames, cfg.data.chunk_hop))
    return out


def windows(features: np.ndarray, *, seconds: float,
            window_seconds: float = WINDOW_SECONDS) -> list[np.ndarray]:
    """Cut ``features`` (F, T) into half-overlapping windows of ``window_seconds``.

    The window length in frames follows from the song's own frame rate (``T / seconds``), so
    the same rule serves full-rate frames and beat-synchronous segments. Returns a list of
    (F, t) arrays; a song not longer than one window is returned whole.
    """
    F, T = features.shape
    if seconds <= window_seconds or T < 2:
        return [features]
    win = max(1, int(round(T * window_seconds / seconds)))
    hop = max(1, win // 2)
    starts = list(range(0, T - win + 1, hop))
    if starts[-1] + win < T:
        starts.append(T - win)
    return [features[:, s:s + win] for s in starts]


@torch.no_grad()
def _run_model(m: LoadedModel, feats: dict[str, np.ndarray], seconds: float,
               device: torch.device) -> tuple[dict[str, np.ndarray], int]:
    from musicaffect.training.losses import predict_transform

    x_full = select_view(feats[m.rate], m.view)                  # (F, T)
    if m.chunk_frames is not None:
        from musicaffect.data.windows import window_starts

        wins = [x_full[:, s:s + m.chunk_frames]
                for s in window_starts(x_full.shape[1], m.chunk_frames, m.chunk_hop)]
    else:
        wins = windows(x_full, seconds=seconds)
    lengths = torch.tensor([w.shape[1] for w in wins])
    Tmax = int(lengths.max())
    x = torch.zeros(len(wins), Tmax, x_full.shape[0])            # (B, T, F) time-major
    for i, w in enumerate(wins):
        x[i, :w.shape[1]] = torch.from_numpy(np.ascontiguousarray(w.T))
    out = m.model(x.to(device), lengths)
    res = {}
    for t in m.tasks:
        y = predict_transform(t, out[t].float().cpu(), m.bounded)
        res[t] = np.asarray(y).mean(axis=0)                     # mean over windows
    return res, len(wins)


def predict_files(models: list[LoadedModel], files: list[str | Path], *, top: int = 3,
                  device: str | None = None, progress: bool = True) -> list[SongPrediction]:
    """Predict every file; a file that fails gets ``error`` set and the others go on."""
    from tqdm.auto import tqdm

    from musicaffect.features.audio import FeatureParams, extract_file

    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    for m in models:
        m.model.to(dev).eval()
    params = FeatureParams()
    results = []
    for f in tqdm(files, desc="predict", unit="song", disable=not progress):
        pred = SongPrediction(file=str(f), models=[m.name for m in models])
        try:
            feats = extract_file(f, params=params, apply_length=False)
        except (MusicAffectError, OSError) as err:
            pred.error = str(err)
            log.error("%s", err)
            results.append(pred)
            continue
        pred.seconds = float(feats["info"].get("source_seconds", feats["info"]["seconds"]))
        pred.beat_fallback = bool(feats["info"].get("beat_fallback", False))
        probs, affect = [], {t: [] for t in TARGETS}
        for m in models:
            res, n = _run_model(m, feats, pred.seconds, dev)
            pred.windows = max(pred.windows, n)
            if GENRE_TASK in res:
                probs.append(res[GENRE_TASK])
            for t in TARGETS:
                if t in res:
                    affect[t].append(float(res[t]))
        if probs:
            p = np.mean(probs, axis=0)
            order = np.argsort(-p)[:top]
            pred.genre = [(CLASSES[i], float(p[i])) for i in order]
        # shown on the labels' [0, 1] scale (an unbounded head can step slightly outside)
        pred.affect = {t: float(np.clip(np.mean(v), 0.0, 1.0)) for t, v in affect.items() if v}
        results.append(pred)
    return results


def format_table(preds: list[SongPrediction]) -> str:
    """Human-readable table: one line per song."""
    lines = []
    for p in preds:
        name = Path(p.file).name
        if p.error:
            lines.append(f"{name}: ERROR {p.error}")
            continue
        parts = [f"{name} ({p.seconds:.1f}s, {p.windows} window{'s' * (p.windows != 1)})"]
        if p.genre:
            parts.append("genre: " + ", ".join(f"{c} {100 * q:.0f}%" for c, q in p.genre))
        if p.affect:
            parts.append("  ".join(f"{k} {v:.2f}" for k, v in p.affect.items()))
        lines.append(" | ".join(parts))
    return "\n".join(lines)


def to_csv_rows(preds: list[SongPrediction], *, top: int) -> tuple[list[str], list[list]]:
    header = ["file", "seconds", "windows"]
    header += [f"genre{i + 1}" for i in range(top)] + [f"p{i + 1}" for i in range(top)]
    header += list(TARGETS) + ["error"]
    rows = []
    for p in preds:
        g = p.genre + [("", math.nan)] * (top - len(p.genre))
        rows.append([p.file, f"{p.seconds:.2f}", p.windows, *[c for c, _ in g[:top]],
                     *["" if math.isnan(q) else f"{q:.4f}" for _, q in g[:top]],
                     *[f"{p.affect[t]:.4f}" if t in p.affect else "" for t in TARGETS],
                     p.error or ""])
    return header, rows
