"""Affect labels of the scores sample, derived by fixed rules from the notes as played (not
listener ratings)."""

from __future__ import annotations

import math

import numpy as np

from musicaffect.samples.arrange import Performance
from musicaffect.samples.theory import (
    MAJOR_PROFILE,
    MINOR_PROFILE,
    estimate_key,
    pitch_class_weights,
)


def derive_affect(perf: Performance, *, tonic_mode: tuple[int, str] | None = None
                  ) -> dict[str, float]:
    """Valence, energy and danceability in [0, 1] from measurable properties of the notes.

    These are *derived* labels (rules over the score as played), not listener ratings:

    - ``valence = 0.5 + 0.3 * m + 0.25 * (t - 0.5)``, where ``m`` is +c for a major key and
      -c for a minor one (c = the key correlation, :func:`estimate_key`, clipped to [0, 1])
      and ``t = clip((beat_bpm - 60) / 80, 0, 1)``;
    - ``energy = 0.45 * d + 0.35 * v + 0.2 * p``, with ``d = clip(onsets per second / 8)``,
      ``v = clip((mean velocity - 40) / 70)``, ``p = clip((mean sounding notes - 1) / 4)``;
    - ``danceability = 0.3 * b + 0.5 * f + 0.2 * r``, with ``b`` the share of beats that
      have an onset within 50 ms, ``f = exp(-((beat_bpm - 120) / 25)^2 / 2)`` (dance tempi
      lie around 100-130 BPM) and ``r`` the share of onsets on the beat grid's eighth
      (or, in compound time, third) subdivisions within 30 ms.

    Each is clipped to [0, 1].

    Parameters
    ----------
    perf : Performance
        A window of a performance (:func:`window`).
    tonic_mode : (int, str), optional
        The key; estimated from the notes when not given.

    Returns
    -------
    labels : dict
        ``{"valence": float, "energy": float, "danceability": float}``.
    """
    notes = perf.notes
    duration = max(perf.duration, 1e-6)
    if tonic_mode is None:
        w = pitch_class_weights(np.column_stack([notes[:, 0], notes[:, 1],
                                                 notes[:, 2] - notes[:, 1]]))
        _, mode, r = estimate_key(w)
    else:
        mode = tonic_mode[1]
        weights = pitch_class_weights(np.column_stack([notes[:, 0], notes[:, 1],
                                                       notes[:, 2] - notes[:, 1]]))
        profile = MAJOR_PROFILE if mode == "major" else MINOR_PROFILE
        r = float(np.corrcoef(weights, np.roll(profile, tonic_mode[0]))[0, 1]) \
            if np.any(weights > 0) and not np.allclose(weights, weights[0]) else 0.0
    beats = np.sort(perf.beats)
    ibi = float(np.median(np.diff(beats))) if len(beats) > 1 else 0.5
    bpm = 60.0 / max(ibi, 1e-3)
    m = (1.0 if mode == "major" else -1.0) * float(np.clip(r, 0.0, 1.0))
    t = float(np.clip((bpm - 60.0) / 80.0, 0.0, 1.0))
    valence = 0.5 + 0.3 * m + 0.25 * (t - 0.5)

    onsets = np.unique(np.round(notes[:, 1], 2)) if len(notes) else np.zeros(0)
    d = float(np.clip(len(onsets) / duration / 8.0, 0.0, 1.0))
    v = float(np.clip((notes[:, 3].mean() - 40.0) / 70.0, 0.0, 1.0)) if len(notes) else 0.0
    sounding = float((notes[:, 2] - notes[:, 1]).sum() / duration) if len(notes) else 0.0
    p = float(np.clip((sounding - 1.0) / 4.0, 0.0, 1.0))
    energy = 0.45 * d + 0.35 * v + 0.2 * p

    if len(beats) and len(onsets):
        nearest = np.min(np.abs(beats[:, None] - onsets[None, :]), axis=1)
        b = float(np.mean(nearest < 0.05))
        subdiv = 3 if ibi > 0 and _is_compound(beats, onsets, ibi) else 2
        grid = np.concatenate([beats + k * ibi / subdiv for k in range(subdiv)])
        r_grid = float(np.mean(np.min(np.abs(onsets[:, None] - grid[None, :]), axis=1)
                               < 0.03))
    else:
        b = r_grid = 0.0
    f = math.exp(-0.5 * ((bpm - 120.0) / 25.0) ** 2)
    dance = 0.3 * b + 0.5 * f + 0.2 * r_grid
    return {"valence": float(np.clip(valence, 0, 1)), "energy": float(np.clip(energy, 0, 1)),
            "danceability": float(np.clip(dance, 0, 1))}


def _is_compound(beats: np.ndarray, onsets: np.ndarray, ibi: float) -> bool:
    """True when onsets fall more often on beat thirds than on beat halves."""
    def share(k: int) -> float:
        grid = np.concatenate([beats + j * ibi / k for j in range(1, k)])
        return float(np.mean(np.min(np.abs(onsets[:, None] - grid[None, :]), axis=1) < 0.03))
    return share(3) > share(2)
