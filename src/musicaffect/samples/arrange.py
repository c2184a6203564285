"""How a score is played: the arrangement of a work (tempo, instruments, loudness,
accompaniment), the timed notes of its performance, and the windows cut from it."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from musicaffect.errors import DataError
from musicaffect.samples.corpus import ScoreData, Style
from musicaffect.samples.theory import accompaniment, chords_per_bar, estimate_key, key_weights


@dataclass(frozen=True)
class Arrangement:
    """How a work is played: tempo, instruments, loudness, accompaniment."""

    qpm: float
    programs: tuple[int, ...]
    velocity: int
    pattern: str | None
    tonic: int
    mode: str


def choose_arrangement(data: ScoreData, style: Style, rng: np.random.Generator) -> Arrangement:
    """Draw tempo, ensemble, loudness and accompaniment pattern for a work (seeded)."""
    if style.use_marking and data.qpm is not None:
        qpm = data.qpm * float(rng.uniform(0.95, 1.05))
    else:
        qpm = float(rng.uniform(*style.beat_bpm)) * data.beat_q
    melody_only = len(data.parts) == 1
    choices = style.lead_ensembles if melody_only else style.ensembles
    ensemble = choices[int(rng.integers(len(choices)))]
    n_tracks = 3 if melody_only else len(data.parts)
    programs = tuple(ensemble[i % len(ensemble)] for i in range(n_tracks))
    velocity = int(rng.integers(style.velocity[0], style.velocity[1] + 1))
    pattern = style.patterns[int(rng.integers(len(style.patterns)))] if melody_only else None
    tonic, mode, _ = estimate_key(key_weights(data))
    return Arrangement(qpm=qpm, programs=programs, velocity=velocity, pattern=pattern,
                       tonic=tonic, mode=mode)


@dataclass
class Performance:
    """Timed notes of a whole performance, in seconds.

    ``notes``: ``(n, 5)`` of (pitch, start, end, velocity, track); ``beats``: beat times;
    ``programs``: GM program per track; ``duration``: seconds.
    """

    notes: np.ndarray
    beats: np.ndarray
    programs: tuple[int, ...]
    duration: float


def perform(data: ScoreData, arrangement: Arrangement, rng: np.random.Generator
            ) -> Performance:
    """Turn a score into timed notes: accompaniment added, tempo and dynamics applied.

    The melody track (or the top part) is played a little louder, the accompaniment
    softer; bar downbeats get a small accent and every note a small random variation.
    """
    tracks = list(data.parts)
    if arrangement.pattern is not None:
        chords = chords_per_bar(data, arrangement.tonic, arrangement.mode)
        upper, bass = accompaniment(chords, data.measures, beat_q=data.beat_q,
                                    pattern=arrangement.pattern)
        tracks = [tracks[0], upper, bass]
    spq = 60.0 / arrangement.qpm
    downbeats = data.measures[:, 0] if len(data.measures) else np.zeros(0)
    rows = []
    for t, notes in enumerate(tracks):
        if not len(notes):
            continue
        offset = 10 if t == 0 else (-15 if arrangement.pattern is not None else 0)
        accent = np.isin(np.round(notes[:, 1], 3), np.round(downbeats, 3)) * 8
        vel = arrangement.velocity + offset + accent + rng.integers(-6, 7, len(notes))
        start = notes[:, 1] * spq
        end = start + np.maximum(notes[:, 2] * spq * 0.95, 0.05)
        rows.append(np.column_stack([notes[:, 0], start, end, np.clip(vel, 20, 127),
                                     np.full(len(notes), t)]))
    perf = np.concatenate(rows) if rows else np.zeros((0, 5))
    return Performance(notes=perf[np.argsort(perf[:, 1], kind="stable")],
                       beats=data.beats * spq, programs=arrangement.programs,
                       duration=data.total_q * spq)


def window(perf: Performance, *, start: float, seconds: float) -> Performance:
    """The notes sounding in ``[start, start + seconds)``, looped when the piece is shorter,
    shifted to start at 0 and cut at the end."""
    if perf.duration <= 0:
        raise DataError("the score has zero length")
    reps = max(1, math.ceil((start + seconds) / perf.duration))
    notes = np.concatenate([perf.notes + np.array([0, k * perf.duration, k * perf.duration,
                                                   0, 0]) for k in range(reps)])
    beats = np.concatenate([perf.beats + k * perf.duration for k in range(reps)])
    keep = (notes[:, 1] >= start) & (notes[:, 1] < start + seconds)
    notes = notes[keep] - np.array([0, start, start, 0, 0])
    notes[:, 2] = np.minimum(notes[:, 2], seconds)
    beats = beats[(beats >= start) & (beats < start + seconds)] - start
    return Performance(notes=notes, beats=beats, programs=perf.programs, duration=seconds)


def n_windows(perf: Performance, *, seconds: float, max_windows: int) -> int:
    """How many non-overlapping windows of ``seconds`` a performance gives (at least 1)."""
    return max(1, min(max_windows, int(perf.duration // seconds)))
