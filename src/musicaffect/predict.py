"""Predict genre and/or the regression targets of songs (audio files), with the names
(classes, targets) each checkpoint carries.

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

from musicaffect.data.arrays import select_view
from musicaffect.errors import MusicAffectError
from musicaffect.tasks import scalar_tasks

log = logging.getLogger(__name__)

WINDOW_SECONDS = 30.0


@dataclass
class SongPrediction:
    """Song-level predictions of one audio file (``error`` set when it failed)."""

    file: str
    seconds: float = 0.0
    windows: int = 0
    genre: list[tuple[str, float]] = field(default_factory=list)   # top classes, prob
    affect: dict[str, float] = field(default_factory=dict)
    decisions: dict[str, int] = field(default_factory=dict)   # binary target -> 0/1
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
        d.update({f"{k}_label": v for k, v in self.decisions.items()})
        if self.beat_fallback:
            d["beat_fallback"] = True
        return d


def load_models(paths: list[str | Path], *, device: str | None = None):
    """Load checkpoints, run folders (deep or classical) and ensemble folders for prediction,
    as one :class:`~musicaffect.evaluation.predictor.Predictor`."""
    from musicaffect.evaluation.predictor import Predictor

    return Predictor.load(paths, device=device)


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
    return _cut_windows(features, win, max(1, win // 2))


def _cut_windows(x: np.ndarray, frames: int, hop: int | None) -> list[np.ndarray]:
    """The evenly spaced windows (:func:`~musicaffect.data.windows.window_starts`) of a
    feature-major (F, T) array, cut by :func:`~musicaffect.data.windows.cut`: (F, t) views."""
    from musicaffect.data.windows import cut, window_starts

    xt = x.T                                                        # (T, F)
    return [cut(xt, s, frames).T for s in window_starts(x.shape[1], frames, hop)]


def member_windows(member, feats: dict[str, np.ndarray], seconds: float, *,
                   file=None) -> list[np.ndarray]:
    """The windows a model sees of one song: what the member makes of the audio ``file``
    itself when it has a ``song_windows(file)`` hook that gives them (the pretrained family:
    musicnn's own input), else its own excerpt windows (``data.chunk_frames``, every
    ``data.chunk_hop`` frames) when it was trained on excerpts, else windows of the training
    clips' length (:func:`windows`)."""
    own = getattr(member, "song_windows", None)
    if own is not None and file is not None:
        wins = own(file)
        if wins is not None:
            return wins
    d = member.cfg.data
    x = select_view(feats[d.rate], d.view)                          # (F, T)
    if d.chunk_frames is not None:
        return _cut_windows(x, d.chunk_frames, d.chunk_hop)
    return windows(x, seconds=seconds)


def member_feature_params(member):
    """The :class:`~musicaffect.features.params.FeatureParams` to compute a model's
    features with: those stored in its checkpoint, else the dataset's recipe."""
    from musicaffect.features.params import FeatureParams

    p = getattr(member, "feature_params", None)
    return p if isinstance(p, FeatureParams) else FeatureParams()


def model_targets(models) -> list[str]:
    """The regression targets a Predictor's members predict, in first-seen order."""
    out: list[str] = []
    for m in models.members:
        out += [t for t in scalar_tasks(m.specs) if t not in out]
    return out


def predict_files(models, files: list[str | Path], *, top: int = 3,
                  device: str | None = None, progress: bool = True,
                  threshold: float | None = None) -> list[SongPrediction]:
    """Predict every file with a Predictor (from :func:`load_models`); a file that fails
    gets ``error`` set and the others go on.

    ``threshold``: also decide each binary target (``score >= threshold`` -> 1).
    """
    from tqdm.auto import tqdm

    from musicaffect.features.audio import extract_file

    if device is not None:
        models.to(device)
    # each model's features are made with the parameters its training data was made with
    # (stored in its checkpoint); models that share them share one extraction
    params = {id(m): member_feature_params(m) for m in models.members}
    results = []
    for f in tqdm(files, desc="predict", unit="song", disable=not progress):
        pred = SongPrediction(file=str(f), models=list(models.names))
        feats_by: dict = {}
        try:
            for p in dict.fromkeys(params.values()):
                feats_by[p] = extract_file(f, params=p, apply_length=False)
        except (MusicAffectError, OSError) as err:
            pred.error = str(err)
            log.error("%s", err)
            results.append(pred)
            continue
        info = next(iter(feats_by.values()))["info"]
        pred.seconds = float(info.get("source_seconds", info["seconds"]))
        pred.beat_fallback = any(bool(v["info"].get("beat_fallback", False))
                                 for v in feats_by.values())
        res, pred.windows = models.predict_clip(
            lambda m, fb=feats_by, seconds=pred.seconds, f=f: member_windows(
                m, fb[params[id(m)]], seconds, file=f))
        if res.probs is not None:
            p = res.probs[0]
            order = np.argsort(-p)[:top]
            pred.genre = [(res.classes[i], float(p[i])) for i in order]
        # shown on the labels' scale ([0, 1] on the Kaggle data; an unbounded head can step
        # slightly outside the range of the training labels)
        ranges = {t: r for m in models.members for t, r in m.ranges.items()}
        pred.affect = {t: float(np.clip(v[0], *ranges.get(t, (-np.inf, np.inf))))
                       for t, v in res.values.items()}
        if threshold is not None:
            specs = {t: s for m in models.members for t, s in m.specs.items()}
            pred.decisions = {t: int(v >= threshold) for t, v in pred.affect.items()
                              if specs[t].has_binary_labels}
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
            parts.append("  ".join(f"{k} {v:.2f}" + (f" -> {p.decisions[k]}"
                                                      if k in p.decisions else "")
                                   for k, v in p.affect.items()))
        lines.append(" | ".join(parts))
    return "\n".join(lines)


def to_csv_rows(preds: list[SongPrediction], *, top: int,
                targets: list[str] | None = None) -> tuple[list[str], list[list]]:
    """CSV header and rows; ``targets``: the target columns (default: those predicted)."""
    if targets is None:
        targets = []
        for p in preds:
            targets += [t for t in p.affect if t not in targets]
    decided = [t for t in targets if any(t in p.decisions for p in preds)]
    header = ["file", "seconds", "windows"]
    header += [f"genre{i + 1}" for i in range(top)] + [f"p{i + 1}" for i in range(top)]
    header += list(targets) + [f"{t}_label" for t in decided] + ["error"]
    rows = []
    for p in preds:
        g = p.genre + [("", math.nan)] * (top - len(p.genre))
        rows.append([p.file, f"{p.seconds:.2f}", p.windows, *[c for c, _ in g[:top]],
                     *["" if math.isnan(q) else f"{q:.4f}" for _, q in g[:top]],
                     *[f"{p.affect[t]:.4f}" if t in p.affect else "" for t in targets],
                     *[p.decisions.get(t, "") for t in decided],
                     p.error or ""])
    return header, rows
