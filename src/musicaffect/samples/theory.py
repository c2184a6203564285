"""Music theory for the scores sample: key estimation, harmonisation of a melody and the
accompaniment patterns that go under single-melody tunes."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from musicaffect.errors import ConfigError
from musicaffect.samples.corpus import ScoreData

# Krumhansl & Kessler's key profiles (probe-tone ratings), C major / C minor.
MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29,
                          2.88])
MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34,
                          3.17])



def estimate_key(weights: np.ndarray) -> tuple[int, str, float]:
    """Key of a pitch-class histogram by correlation with the Krumhansl-Kessler profiles.

    Parameters
    ----------
    weights : np.ndarray [shape=(12,)]
        Duration (or count) per pitch class, C = 0.

    Returns
    -------
    tonic : int
        Pitch class of the tonic (0-11).
    mode : {"major", "minor"}
    r : float
        Correlation of the best key, in [-1, 1] (0 for an empty histogram).
    """
    w = np.asarray(weights, dtype=float)
    if w.shape != (12,):
        raise ValueError(f"weights must have shape (12,), got {w.shape}")
    if not np.any(w > 0) or np.allclose(w, w[0]):
        return 0, "major", 0.0
    best = (0, "major", -2.0)
    for mode, profile in (("major", MAJOR_PROFILE), ("minor", MINOR_PROFILE)):
        for tonic in range(12):
            r = float(np.corrcoef(w, np.roll(profile, tonic))[0, 1])
            if r > best[2]:
                best = (tonic, mode, r)
    return best


def pitch_class_weights(notes: np.ndarray) -> np.ndarray:
    """Total duration per pitch class of notes ``(n, >=3)`` (pitch, onset, duration, ...):
    shape (12,)."""
    w = np.zeros(12)
    if len(notes):
        np.add.at(w, notes[:, 0].astype(int) % 12, notes[:, 2])
    return w


def key_weights(data: ScoreData) -> np.ndarray:
    """Pitch-class weights of a score: its notes' durations plus, when it has chord symbols,
    each chord's pitch classes held until the next chord. Shape (12,)."""
    w = sum((pitch_class_weights(p) for p in data.parts), np.zeros(12))
    ends = [c[0] for c in data.chords[1:]] + [data.total_q]
    for (onset, pcs), end in zip(data.chords, ends):
        w[list(pcs)] += max(end - onset, 0.0)
    return w


def diatonic_triads(tonic: int, mode: str) -> list[tuple[int, ...]]:
    """Pitch classes (root first) of the usual triads of a key, the most common first:
    major I, V, IV, vi, ii, iii; minor i, V (harmonic minor), iv, VI, III, VII."""
    major = [(0, 4, 7), (7, 11, 2), (5, 9, 0), (9, 0, 4), (2, 5, 9), (4, 7, 11)]
    minor = [(0, 3, 7), (7, 11, 2), (5, 8, 0), (8, 0, 3), (3, 7, 10), (10, 2, 5)]
    return [tuple((tonic + i) % 12 for i in chord) for chord in (major if mode == "major"
                                                                  else minor)]


def harmonize(melody: np.ndarray, measures: np.ndarray, *, tonic: int, mode: str
              ) -> list[tuple[int, ...]]:
    """One triad per bar that best fits the melody notes sounding in it.

    Each candidate (:func:`diatonic_triads`) scores the melody duration on its tones, plus a
    bonus for the bar's first note and a small prior that favours the common chords; the
    last bar takes the tonic.

    Parameters
    ----------
    melody : np.ndarray [shape=(n, 3)]
        (pitch, onset, duration) in quarter notes.
    measures : np.ndarray [shape=(m, 2)]
        Bar (start, end).

    Returns
    -------
    chords : list of tuple of int, length m
        Pitch classes of each bar's chord, root first.
    """
    triads = diatonic_triads(tonic, mode)
    prior = np.array([0.3, 0.2, 0.15, 0.05, 0.0, 0.0])
    out: list[tuple[int, ...]] = []
    for i, (start, end) in enumerate(measures):
        if i == len(measures) - 1:
            out.append(triads[0])
            continue
        on = (melody[:, 1] < end) & (melody[:, 1] + melody[:, 2] > start)
        sel = melody[on]
        scores = prior.copy()
        if len(sel):
            overlap = np.minimum(sel[:, 1] + sel[:, 2], end) - np.maximum(sel[:, 1], start)
            first = int(sel[np.argmin(sel[:, 1]), 0]) % 12
            for j, triad in enumerate(triads):
                hit = np.isin(sel[:, 0].astype(int) % 12, triad)
                scores[j] += overlap[hit].sum() / max(end - start, 1e-6)
                scores[j] += 0.25 * (first in triad)
        out.append(triads[int(np.argmax(scores))])
    return out


def chords_per_bar(data: ScoreData, tonic: int, mode: str) -> list[tuple[int, ...]]:
    if not data.chords:
        return harmonize(data.parts[0], data.measures, tonic=tonic, mode=mode)
    onsets = np.array([c[0] for c in data.chords])
    out = []
    for start, _ in data.measures:
        j = int(np.searchsorted(onsets, start + 1e-6, side="right")) - 1
        out.append(data.chords[max(j, 0)][1])
    return out


def accompaniment(chords: Sequence[tuple[int, ...]], measures: np.ndarray, *, beat_q: float,
                  pattern: str) -> tuple[np.ndarray, np.ndarray]:
    """Chord and bass notes for a melody, one chord per bar.

    Parameters
    ----------
    chords : sequence of tuple of int
        Pitch classes per bar, root first (:func:`harmonize`).
    measures : np.ndarray [shape=(m, 2)]
        Bar (start, end) in quarter notes.
    beat_q : float
        Beat length in quarter notes.
    pattern : {"block", "oompah", "arpeggio"}
        Held chords; bass on strong beats with chords on the others; broken chords.

    Returns
    -------
    chord_notes, bass_notes : np.ndarray [shape=(n, 3)]
        (pitch, onset, duration) in quarter notes. Bars shorter than half the usual bar
        (pick-ups) are left out.
    """
    if pattern not in ("block", "oompah", "arpeggio"):
        raise ConfigError(f"unknown accompaniment pattern {pattern!r}: use block, oompah or "
                          "arpeggio")
    full = float(np.median(measures[:, 1] - measures[:, 0])) if len(measures) else 0.0
    upper: list[tuple[float, float, float]] = []
    bass: list[tuple[float, float, float]] = []
    for (start, end), pcs in zip(measures, chords):
        length = end - start
        if length < 0.5 * full or not pcs:
            continue
        root = 36 + (pcs[0] - 36) % 12  # C2..B2
        voicing = sorted(55 + (pc - 55) % 12 for pc in pcs)  # G3..F#4
        beats = np.arange(start, end - 1e-6, beat_q)
        if pattern == "block":
            bass.append((root, start, length))
            upper.extend((p, start, length) for p in voicing)
        elif pattern == "oompah":
            for k, b in enumerate(beats):
                d = min(beat_q, end - b) * 0.9
                if k % 2 == 0:
                    fifth = root + 7 if (k // 2) % 2 else root
                    bass.append((fifth, b, d))
                else:
                    upper.extend((p, b, d) for p in voicing)
            if len(beats) == 1:
                upper.extend((p, start + beat_q / 2, beat_q / 2 * 0.9) for p in voicing)
        else:
            bass.append((root, start, length))
            step = beat_q / 3 if abs(beat_q - 1.5) < 1e-6 else beat_q / 2
            tones = voicing + [voicing[0] + 12]
            for k, t in enumerate(np.arange(start, end - 1e-6, step)):
                upper.append((tones[k % len(tones)], t, min(step, end - t)))
    return (np.array(upper, dtype=float).reshape(-1, 3),
            np.array(bass, dtype=float).reshape(-1, 3))
