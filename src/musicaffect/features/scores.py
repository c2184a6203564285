"""A small labelled dataset of real compositions, rendered from scores to audio.

The scores are the public-domain works that ship inside the ``music21`` package (its
``corpus``). Each selected work is arranged (tempo, General MIDI instruments, dynamics, an
accompaniment for single-melody tunes), rendered to a mono 22050 Hz WAV with the General
MIDI SoundFont that ships in ``pretty_midi`` (``TimGM6mb.sf2``), and the folder of WAVs is
passed through :func:`musicaffect.features.build.build_dataset`.

Styles and their FMA genre label (:data:`STYLES`):

============  ==============================================================  =========
style         works (music21 corpus)                                          genre
============  ==============================================================  =========
chorale       J. S. Bach, four-part chorales                                  Classical
renaissance   Palestrina mass movements, Monteverdi madrigals                 Classical
quartet       string quartets by Haydn, Mozart, Beethoven, R. Schumann        Classical
folksong      German folk songs of the Essen collection (+ accompaniment)     Folk
fiddle        O'Neill's Irish and Ryan's Mammoth fiddle tunes (+ accomp.)     Folk
ragtime       Joplin's Maple Leaf Rag, Berlin's Alexander's Ragtime Band      Jazz
============  ==============================================================  =========

Affect labels (valence, energy, danceability in [0, 1]) are *derived* from measurable
properties of the rendered notes (:func:`derive_affect`), not annotated by listeners.

Renderers, tried in this order by ``renderer="auto"`` (:data:`RENDERERS`): the
``tinysoundfont`` package, the ``midirenderer`` package, the ``fluidsynth`` program.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import re
import shutil
import subprocess
import tempfile
import time
import zlib
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from musicaffect.data.labels import TARGETS
from musicaffect.errors import ConfigError, DataError

log = logging.getLogger(__name__)

#: renderers in the order ``renderer="auto"`` tries them
RENDERERS: tuple[str, ...] = ("tinysoundfont", "midirenderer", "fluidsynth")

#: folder (under the data root) that holds the rendered WAVs and their labels
AUDIO_DIR = "scores_audio"
LABELS_FILE = "labels.csv"
WORKS_FILE = "works.csv"
SOURCE_FILE = "SOURCE.txt"

_INSTALL_HINT = ("install the optional extra: pip install 'musicaffect[scores]' (music21, "
                 "pretty_midi, midirenderer)")

# Krumhansl & Kessler's key profiles (probe-tone ratings), C major / C minor.
_MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29,
                           2.88])
_MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34,
                           3.17])


# ---------------------------------------------------------------------------------------
# styles


@dataclass(frozen=True)
class Style:
    """One style of the sample: where its works come from and how it is played.

    ``families`` are regular expressions over corpus paths (relative, with ``/``); candidates
    are drawn from the families in turn so that no collection crowds out the others.
    ``ensembles`` are General MIDI programs for multi-part scores, one per part (top to
    bottom, cycled); ``lead_ensembles`` are ``(melody, chords, bass)`` for single-melody
    scores, which get an accompaniment.
    ``beat_bpm`` is the tempo range, in beats of the time signature per minute, used when
    the score has no tempo marking (or ``use_marking`` is False).
    """

    name: str
    genre: str
    families: tuple[str, ...]
    ensembles: tuple[tuple[int, ...], ...]
    lead_ensembles: tuple[tuple[int, int, int], ...]
    beat_bpm: tuple[float, float]
    velocity: tuple[int, int]
    patterns: tuple[str, ...] = ("block",)
    use_marking: bool = False
    max_windows: int = 1
    description: str = ""


STYLES: dict[str, Style] = {s.name: s for s in (
    Style("chorale", "Classical", (r"bach/bwv\d+(\.\d+)?\.mxl",),
          ensembles=((52,), (19,), (48,), (0,), (56, 60, 57, 58), (73, 68, 71, 70)),
          lead_ensembles=((52, 19, 19),), beat_bpm=(60, 84), velocity=(60, 85),
          description="J. S. Bach, four-part chorales"),
    Style("renaissance", "Classical",
          (r"palestrina/.+\.krn", r"monteverdi/madrigal\.\d+\.\d+\.mxl"),
          ensembles=((52,), (53,), (74, 74, 71, 70), (48,), (19,), (40, 41, 42, 42), (0,)),
          lead_ensembles=((52, 19, 19),), beat_bpm=(55, 80), velocity=(55, 80),
          description="Palestrina mass movements and Monteverdi madrigals"),
    Style("quartet", "Classical",
          (r"haydn/opus\w+/movement\d\.mxl", r"mozart/k(80|155|156|458)/movement\d\.mxl",
           r"beethoven/opus(18no1|59no\d)/movement\d\.mxl",
           r"schumann_robert/opus41no1/movement\d\.mxl"),
          ensembles=((40, 40, 41, 42), (40, 40, 41, 42), (48,), (0,), (73, 68, 71, 70)),
          lead_ensembles=((40, 48, 42),), beat_bpm=(70, 130), velocity=(60, 100), use_marking=True,
          description="string quartets by Haydn, Mozart, Beethoven and Robert Schumann"),
    Style("folksong", "Folk",
          (r"essenFolksong/(altdeu|ballad|boehme|dva|erk|fink|kinder|zuccal)\d+\.abc",),
          ensembles=((73, 40, 42, 32),),
          lead_ensembles=((73, 24, 32), (53, 0, 0), (40, 48, 42), (0, 0, 0), (71, 21, 32),
                          (21, 21, 21)),
          beat_bpm=(80, 120), velocity=(65, 95),
          patterns=("block", "arpeggio", "oompah"),
          description="German folk songs of the Essen collection, with an accompaniment"),
    Style("fiddle", "Folk", (r"oneills1850/.+\.abc", r"ryansMammoth/.+\.abc"),
          ensembles=((40, 73, 42, 32),),
          lead_ensembles=((40, 25, 32), (110, 0, 0), (73, 24, 32), (21, 21, 21), (0, 0, 0),
                          (71, 48, 42)),
          beat_bpm=(95, 130), velocity=(75, 105),
          patterns=("oompah", "block", "arpeggio"),
          description="Irish (O'Neill's 1850) and American (Ryan's Mammoth) fiddle tunes, "
                      "with an accompaniment"),
    Style("ragtime", "Jazz", (r"joplin/maple_leaf_rag\.mxl",
                              r"leadSheet/berlinAlexandersRagtime\.mxl"),
          ensembles=((0,), (1,), (3,)),
          lead_ensembles=((0, 0, 0), (56, 0, 58), (65, 0, 32), (71, 0, 32)),
          beat_bpm=(80, 105), velocity=(70, 100), patterns=("oompah",), max_windows=8,
          description="Joplin's Maple Leaf Rag (piano) and Berlin's Alexander's Ragtime Band "
                      "(lead sheet with its chord symbols)"),
)}


def genre_styles(styles: Sequence[str] | None = None) -> dict[str, list[str]]:
    """Group style names by their FMA genre, in :data:`STYLES` order."""
    out: dict[str, list[str]] = {}
    for name in styles or list(STYLES):
        if name not in STYLES:
            raise ConfigError(f"unknown score style {name!r}: choose from {', '.join(STYLES)}")
        out.setdefault(STYLES[name].genre, []).append(name)
    return out


def style_quotas(n: int, k: int) -> list[int]:
    """Split ``n`` clips over ``k`` styles as evenly as possible (earlier styles get the
    remainder)."""
    return [n // k + (i < n % k) for i in range(k)]


# ---------------------------------------------------------------------------------------
# the corpus


@dataclass(frozen=True)
class Work:
    """One work of the corpus: a file, and a tune number inside a multi-tune ABC file."""

    style: str
    path: str
    number: int | None = None

    @property
    def key(self) -> str:
        """Unique text key, e.g. ``"oneills1850/0001-0050.abc#3"``."""
        return self.path if self.number is None else f"{self.path}#{self.number}"

    @property
    def group(self) -> str:
        """The larger work this belongs to (a quartet, a mass): clips of one group stay on
        one side of the train/test split."""
        if self.style == "quartet":
            return self.path.rsplit("/", 1)[0]
        if self.path.startswith("palestrina/"):
            m = re.search(r"_(\d+)(_[a-z])?\.krn$", self.path)
            return f"palestrina/mass{m.group(1)}" if m else self.path
        return self.key

    @property
    def slug(self) -> str:
        """File-name-safe name (letters, digits, ``-`` and ``_``; no dots)."""
        text = re.sub(r"\.(mxl|xml|krn|abc|musicxml)$", "", self.path)
        text = re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()
        number = "" if self.number is None else f"-n{self.number}"
        return f"{self.style}_{text}{number}"


def corpus_root() -> Path:
    """Folder of the music21 corpus (raises ConfigError when music21 is missing)."""
    try:
        import music21
    except ImportError:
        raise ConfigError(f"the scores sample needs music21: {_INSTALL_HINT}") from None
    return Path(str(music21.common.getCorpusFilePath()))


@lru_cache(maxsize=1)
def corpus_paths() -> tuple[str, ...]:
    """All files of music21's core corpus, relative to :func:`corpus_root`, sorted."""
    from music21 import corpus

    root = corpus_root()
    return tuple(sorted(Path(str(p)).relative_to(root).as_posix()
                        for p in corpus.getCorePaths()))


def abc_numbers(text: str) -> list[int]:
    """Tune numbers (``X:`` fields) of an ABC file's text, in file order."""
    return [int(m.group(1)) for m in re.finditer(r"^X:\s*(\d+)", text, flags=re.M)]


def _family_works(style: str, pattern: str, paths: Sequence[str], root: Path) -> list[Work]:
    works: list[Work] = []
    for p in paths:
        if not re.fullmatch(pattern, p):
            continue
        numbers: list[int] = []
        if p.endswith(".abc"):
            numbers = abc_numbers((root / p).read_text(encoding="utf-8", errors="replace"))
        if len(numbers) > 1:
            works.extend(Work(style, p, n) for n in numbers)
        else:
            works.append(Work(style, p, numbers[0] if numbers else None))
    return works


def candidate_works(style: str, *, seed: int = 0, paths: Sequence[str] | None = None,
                    root: Path | None = None) -> list[Work]:
    """All works of a style in a seeded order, the style's families interleaved.

    Parameters
    ----------
    style : str
        A key of :data:`STYLES`.
    seed : int
        Seed of the order.
    paths, root : optional
        Corpus file list and folder (default: music21's core corpus).

    Returns
    -------
    works : list of Work
        Every candidate once; families alternate (A, B, A, B, ...) until one runs out.
    """
    spec = STYLES[style]
    root = corpus_root() if root is None else root
    paths = corpus_paths() if paths is None else paths
    rng = np.random.default_rng([seed, zlib.crc32(style.encode())])
    families = []
    for pattern in spec.families:
        works = _family_works(style, pattern, paths, root)
        families.append([works[i] for i in rng.permutation(len(works))])
    out: list[Work] = []
    for i in range(max((len(f) for f in families), default=0)):
        out.extend(f[i] for f in families if i < len(f))
    return out


# ---------------------------------------------------------------------------------------
# scores -> notes


@dataclass
class ScoreData:
    """What the arranger needs from a score, in quarter-note units from the score's start.

    ``parts``: per part, an array ``(n, 3)`` of (MIDI pitch, onset, duration);
    ``measures``: ``(m, 2)`` bar (start, end); ``beats``: beat onsets;
    ``beat_q``: beat length of the (first) time signature; ``chords``: chord symbols as
    (onset, pitch classes) when the score has them; ``qpm``: the first tempo marking.
    """

    parts: list[np.ndarray]
    measures: np.ndarray
    beats: np.ndarray
    beat_q: float
    total_q: float
    chords: list[tuple[float, tuple[int, ...]]] = field(default_factory=list)
    qpm: float | None = None
    title: str = ""


def parse_work(work: Work) -> Any:
    """Parse a work with music21 (repeats expanded when the style takes several windows)."""
    from music21 import corpus

    score = corpus.parse(work.path, number=work.number) if work.number is not None \
        else corpus.parse(work.path)
    if STYLES[work.style].max_windows > 1:
        try:
            score = score.expandRepeats()
        except Exception as err:  # music21 raises many types on odd repeats
            log.debug("%s: repeats not expanded (%s)", work.key, err)
    return score


def score_data(score: Any) -> ScoreData:
    """Notes, bars, beats, chord symbols and tempo of a parsed music21 score."""
    from music21 import harmony, meter, stream, tempo

    parts = list(score.parts) if hasattr(score, "parts") and len(score.parts) else [score]
    notes: list[np.ndarray] = []
    chords: list[tuple[float, tuple[int, ...]]] = []
    for part in parts:
        rows = []
        for el in part.flatten().stripTies().notes:
            if isinstance(el, harmony.ChordSymbol):
                pcs = list(dict.fromkeys(p.pitchClass for p in el.pitches))
                if pcs:
                    root = el.root().pitchClass if el.root() is not None else pcs[0]
                    chords.append((float(el.offset),
                                   (root, *sorted(pc for pc in pcs if pc != root))))
                continue
            dur = float(el.quarterLength)
            if dur <= 0 or not hasattr(el, "pitches"):
                continue
            rows.extend((p.midi, float(el.offset), dur) for p in el.pitches)
        if rows:
            notes.append(np.array(sorted(rows, key=lambda r: (r[1], -r[0])), dtype=float))
    if not notes:
        raise DataError("the score has no notes")
    total_q = max(float((a[:, 1] + a[:, 2]).max()) for a in notes)
    total_q = max(total_q, float(score.highestTime))
    measures, beats, beat_q = [], [], None
    ts = None
    for m in parts[0].getElementsByClass(stream.Measure):
        ts = m.timeSignature or ts
        if ts is None:
            ts = meter.TimeSignature("4/4")
        bq = float(ts.beatDuration.quarterLength)
        beat_q = beat_q or bq
        start = float(m.offset)
        end = start + float(m.duration.quarterLength)
        measures.append((start, end))
        origin = start - float(m.paddingLeft or 0.0)
        k = math.ceil((start - origin) / bq - 1e-6)
        while origin + k * bq < end - 1e-6:
            beats.append(origin + k * bq)
            k += 1
    if not measures:
        beat_q = 1.0
        measures = [(float(s), float(min(s + 4.0, total_q))) for s in np.arange(0, total_q, 4.0)]
        beats = list(np.arange(0.0, total_q, 1.0))
    marks = list(score.recurse().getElementsByClass(tempo.MetronomeMark))
    qpm = None
    for mark in marks:
        value = mark.getQuarterBPM()
        if value and 20 <= value <= 300:
            qpm = float(value)
            break
    title = ""
    if score.metadata is not None and score.metadata.title:
        title = str(score.metadata.title)
    return ScoreData(parts=notes, measures=np.array(measures, dtype=float),
                     beats=np.array(beats, dtype=float), beat_q=float(beat_q), total_q=total_q,
                     chords=sorted(chords), qpm=qpm, title=title)


# ---------------------------------------------------------------------------------------
# harmony


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
    for mode, profile in (("major", _MAJOR_PROFILE), ("minor", _MINOR_PROFILE)):
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


def _chords_per_bar(data: ScoreData, tonic: int, mode: str) -> list[tuple[int, ...]]:
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


# ---------------------------------------------------------------------------------------
# arrangement


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
        chords = _chords_per_bar(data, arrangement.tonic, arrangement.mode)
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


# ---------------------------------------------------------------------------------------
# derived affect labels


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
        profile = _MAJOR_PROFILE if mode == "major" else _MINOR_PROFILE
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


# ---------------------------------------------------------------------------------------
# rendering


def soundfont_path() -> Path:
    """The General MIDI SoundFont that ships with ``pretty_midi`` (``TimGM6mb.sf2``)."""
    try:
        import pretty_midi
    except ImportError:
        raise ConfigError(f"the scores sample needs pretty_midi: {_INSTALL_HINT}") from None
    path = Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"
    if not path.is_file():
        raise ConfigError(f"pretty_midi has no SoundFont at {path}: reinstall pretty_midi")
    return path


def available_renderers() -> list[str]:
    """The renderers usable here, in the order of :data:`RENDERERS`."""
    import importlib.util

    out = [name for name in ("tinysoundfont", "midirenderer")
           if importlib.util.find_spec(name) is not None]
    if shutil.which("fluidsynth"):
        out.append("fluidsynth")
    return out


def resolve_renderer(renderer: str = "auto") -> str:
    """The renderer to use: ``renderer`` itself (checked), or the first available."""
    available = available_renderers()
    if renderer == "auto":
        if not available:
            raise ConfigError("no MIDI renderer found: " + _INSTALL_HINT + ", or install "
                              "the fluidsynth program (apt-get install fluidsynth)")
        return available[0]
    if renderer not in RENDERERS:
        raise ConfigError(f"unknown renderer {renderer!r}: choose auto or one of "
                          f"{', '.join(RENDERERS)}")
    if renderer not in available:
        raise ConfigError(f"renderer {renderer!r} is not installed here (available: "
                          f"{', '.join(available) or 'none'}): {_INSTALL_HINT}")
    return renderer


def to_midi(perf: Performance) -> bytes:
    """Standard MIDI file bytes of a performance (one instrument per track)."""
    import pretty_midi

    pm = pretty_midi.PrettyMIDI(initial_tempo=120.0)
    for t, program in enumerate(perf.programs):
        inst = pretty_midi.Instrument(program=int(program), name=f"track{t}")
        for pitch, start, end, vel, _ in perf.notes[perf.notes[:, 4] == t]:
            if 0 <= pitch <= 127 and end > start:
                inst.notes.append(pretty_midi.Note(velocity=int(vel), pitch=int(pitch),
                                                   start=float(start), end=float(end)))
        if inst.notes:
            pm.instruments.append(inst)
    buf = io.BytesIO()
    pm.write(buf)
    return buf.getvalue()


@lru_cache(maxsize=2)
def _soundfont_bytes(path: str) -> bytes:
    return Path(path).read_bytes()


def render_midi(midi: bytes, *, seconds: float, sr: int = 22050, renderer: str = "auto",
                soundfont: str | os.PathLike | None = None) -> np.ndarray:
    """Render MIDI bytes to mono audio with a SoundFont.

    Parameters
    ----------
    midi : bytes
        A standard MIDI file.
    seconds : float
        Length of the output (cut or zero-padded; a 50 ms fade-out at the end).
    sr : int
        Sample rate of the output.
    renderer : str
        "auto" or one of :data:`RENDERERS`.
    soundfont : path, optional
        SF2 file (default :func:`soundfont_path`).

    Returns
    -------
    y : np.ndarray [shape=(round(seconds * sr),)]
        float32, peak-normalised to 0.9 (all zeros stays zeros).
    """
    name = resolve_renderer(renderer)
    sf2 = str(soundfont or soundfont_path())
    n = int(round(seconds * sr))
    if name == "tinysoundfont":
        import tinysoundfont

        synth = tinysoundfont.Synth(samplerate=sr)
        synth.sfload(_soundfont_bytes(sf2))
        seq = tinysoundfont.Sequencer(synth)
        seq.add(tinysoundfont.midi.load_memory(midi))
        stereo = np.frombuffer(synth.generate(n), dtype=np.float32).reshape(-1, 2)
        y = stereo.mean(axis=1)
    elif name == "midirenderer":
        import midirenderer
        import soundfile as sf

        wav = midirenderer.render_wave_from(_soundfont_bytes(sf2), midi)
        y, native = sf.read(io.BytesIO(wav), dtype="float32", always_2d=True)
        y = _resample(y.mean(axis=1), native, sr)
    else:
        y = _render_fluidsynth(midi, sf2=sf2, sr=sr)
    y = np.asarray(y, dtype=np.float32)[:n]
    y = np.pad(y, (0, n - len(y)))
    fade = min(n, int(0.05 * sr))
    if fade:
        y[n - fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    peak = float(np.abs(y).max()) if n else 0.0
    return y * np.float32(0.9 / peak) if peak > 0 else y


def _resample(y: np.ndarray, orig_sr: int, sr: int) -> np.ndarray:
    if orig_sr == sr:
        return y
    import librosa

    return librosa.resample(y, orig_sr=orig_sr, target_sr=sr)


def _render_fluidsynth(midi: bytes, *, sf2: str, sr: int) -> np.ndarray:
    import soundfile as sf

    with tempfile.TemporaryDirectory(prefix="musicaffect-fs-") as tmp:
        mid, wav = Path(tmp) / "in.mid", Path(tmp) / "out.wav"
        mid.write_bytes(midi)
        proc = subprocess.run(["fluidsynth", "-ni", "-g", "0.5", "-F", str(wav), "-r",
                               str(sr), sf2, str(mid)], capture_output=True, text=True,
                              check=False, timeout=600)
        if proc.returncode != 0 or not wav.is_file():
            raise DataError(f"fluidsynth failed ({proc.returncode}): {proc.stderr.strip()}",
                            path=mid)
        y, native = sf.read(wav, dtype="float32", always_2d=True)
    return _resample(y.mean(axis=1), native, sr)


# ---------------------------------------------------------------------------------------
# one work -> clips


@dataclass(frozen=True)
class ClipInfo:
    """One rendered clip: its WAV (relative to the audio folder), labels and provenance."""

    file: str
    style: str
    genre: str
    group: str
    work: str
    title: str
    window: int
    start: float
    qpm: float
    key: str
    programs: str
    renderer: str
    valence: float
    energy: float
    danceability: float
    split: str = ""


def render_work(work: Work, audio_dir: str | os.PathLike, *, seed: int = 0,
                clip_seconds: float = 30.0, sr: int = 22050, renderer: str = "auto"
                ) -> list[ClipInfo]:
    """Parse, arrange and render one work to WAV clips in ``audio_dir``.

    Resumable: when the work's sidecar ``<slug>.json`` and all its WAVs exist, they are
    read back instead of rendered. Everything random is seeded by ``seed`` and the work.

    Returns
    -------
    clips : list of ClipInfo
        One per window (see :attr:`Style.max_windows`).

    Raises
    ------
    DataError
        The score cannot be parsed or has no notes.
    """
    audio_dir = Path(audio_dir)
    sidecar = audio_dir / f"{work.slug}.json"
    cached = _read_sidecar(sidecar, audio_dir, clip_seconds=clip_seconds, sr=sr, seed=seed)
    if cached is not None:
        return cached
    style = STYLES[work.style]
    try:
        score = parse_work(work)
        data = score_data(score)
    except DataError as err:
        raise DataError(str(err), path=work.key) from None
    except Exception as err:  # music21 raises many exception types
        raise DataError(f"music21 cannot read this score ({type(err).__name__}: {err})",
                        path=work.key) from None
    rng = np.random.default_rng([seed, zlib.crc32(work.key.encode())])
    arrangement = choose_arrangement(data, style, rng)
    perf = perform(data, arrangement, rng)
    name = resolve_renderer(renderer)
    count = n_windows(perf, seconds=clip_seconds, max_windows=style.max_windows)
    clips = []
    for k in range(count):
        start = k * clip_seconds
        part = window(perf, start=start, seconds=clip_seconds)
        y = render_midi(to_midi(part), seconds=clip_seconds, sr=sr, renderer=name)
        file = f"{work.slug}-w{k}.wav"
        _write_wav(audio_dir / file, y, sr)
        labels = derive_affect(part, tonic_mode=(arrangement.tonic, arrangement.mode))
        clips.append(ClipInfo(
            file=file, style=work.style, genre=style.genre, group=work.group, work=work.key,
            title=data.title, window=k, start=start, qpm=round(arrangement.qpm, 2),
            key=f"{_PC_NAMES[arrangement.tonic]} {arrangement.mode}",
            programs=" ".join(map(str, arrangement.programs)), renderer=name,
            **{t: round(labels[t], 4) for t in TARGETS}))
    _write_text_atomic(sidecar, json.dumps({"clip_seconds": clip_seconds, "sr": sr,
                                            "seed": seed, "version": RENDER_VERSION,
                                            "clips": [asdict(c) for c in clips]}, indent=1))
    return clips


#: bump when the arrangement or rendering changes, so that resumed builds re-render
RENDER_VERSION = 1

_PC_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")


def _read_sidecar(path: Path, audio_dir: Path, *, clip_seconds: float, sr: int, seed: int
                  ) -> list[ClipInfo] | None:
    if not path.is_file():
        return None
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
        if (meta["clip_seconds"], meta["sr"], meta["seed"], meta.get("version")) != (
                clip_seconds, sr, seed, RENDER_VERSION):
            return None
        clips = [ClipInfo(**c) for c in meta["clips"]]
    except (ValueError, KeyError, TypeError):
        return None
    if not clips or not all((audio_dir / c.file).is_file() for c in clips):
        return None
    return clips


def _write_wav(path: Path, y: np.ndarray, sr: int) -> None:
    import soundfile as sf

    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.wav")
    sf.write(tmp, y, sr, subtype="PCM_16")
    os.replace(tmp, path)


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _render_task(work: Work, audio_dir: str, options: dict[str, Any]
                 ) -> tuple[Work, list[ClipInfo], str | None]:
    try:
        return work, render_work(work, audio_dir, **options), None
    except DataError as err:
        return work, [], str(err)


# ---------------------------------------------------------------------------------------
# the whole sample


SOURCE_TEXT = """\
REAL COMPOSITIONS RENDERED WITH A SOUNDFONT - NOT RECORDINGS

This dataset was built by `musicaffect sample-data --source scores` (seed {seed}).
Audio: public-domain scores from the corpus that ships inside the music21 package
({n_works} works), arranged by musicaffect (tempo, General MIDI instruments, dynamics, and a
simple chord/bass accompaniment for single-melody tunes), rendered to {sr} Hz mono WAV with
the TimGM6mb.sf2 General MIDI SoundFont (shipped with pretty_midi) by the {renderers}
renderer, then passed through build-dataset ({clip_seconds:g} s clips, length rule crop).

Genre labels: the style of the source collection mapped to an FMA genre name:
{mapping}
Affect labels (valence, energy, danceability) are DERIVED by fixed rules from the notes as
played (mode and key clarity, tempo, note density, loudness, polyphony, beat coverage and
metrical regularity): they are not listener ratings. See docs/SCORES.md.

Clips: {n_clips} ({counts}). The WAVs, labels.csv and works.csv (source, title, tempo, key,
instruments) are in {audio_dir}/. The train/test split keeps each work (for string
quartets the whole quartet, for Palestrina the whole mass) on one side.
"""


def select_and_render(audio_dir: str | os.PathLike, *, seed: int = 0,
                      clips_per_class: int = 16, clip_seconds: float = 30.0,
                      styles: Sequence[str] | None = None, jobs: int | None = None,
                      sr: int = 22050, renderer: str = "auto", test_fraction: float = 0.2,
                      progress: bool | None = None) -> list[ClipInfo]:
    """Choose works (seeded) and render them until every style has its quota of clips.

    Each genre gets ``clips_per_class`` clips, split evenly over its styles
    (:func:`style_quotas`). A one-window style takes one clip per work, in candidate order;
    works that fail to parse are logged and replaced by the next candidate. A multi-window
    style (ragtime: two works) renders all its works and shares its quota between them with
    an explicit split (:func:`plan_windows`).

    Returns
    -------
    clips : list of ClipInfo
        Grouped by style (in :data:`STYLES` order), sorted by file name within a style.
    """
    audio_dir = Path(audio_dir)
    audio_dir.mkdir(parents=True, exist_ok=True)
    name = resolve_renderer(renderer)
    quotas: dict[str, int] = {}
    for names in genre_styles(styles).values():
        for s, q in zip(names, style_quotas(clips_per_class, len(names))):
            quotas[s] = q
    candidates = {s: candidate_works(s, seed=seed) for s in quotas}
    multi = {s for s in quotas if STYLES[s].max_windows > 1}
    cursor = dict.fromkeys(quotas, 0)
    got: dict[str, list[ClipInfo]] = {s: [] for s in quotas}
    per_work: dict[str, list[list[ClipInfo]]] = {s: [] for s in multi}
    options = {"seed": seed, "clip_seconds": clip_seconds, "sr": sr, "renderer": name}
    jobs = max(1, jobs or os.cpu_count() or 1)
    bar = tqdm(total=sum(quotas.values()), desc="render scores", unit="clip",
               disable=None if progress is None else not progress)
    pool = ProcessPoolExecutor(max_workers=jobs) if jobs > 1 else None
    try:
        while True:
            batch: list[Work] = []
            for s, quota in quotas.items():
                want = len(candidates[s]) if s in multi else quota - len(got[s])
                take = candidates[s][cursor[s]:cursor[s] + max(want, 0)]
                cursor[s] += len(take)
                batch.extend(take)
            if not batch:
                break
            for work, clips, err in _run_batch(pool, batch, str(audio_dir), options):
                s = work.style
                if err is not None:
                    log.warning("skipped %s: %s", work.key, err)
                elif s in multi:
                    shown = min(quotas[s], sum(map(len, per_work[s])))
                    per_work[s].append(clips)
                    bar.update(min(quotas[s], shown + len(clips)) - shown)
                else:
                    room = quotas[s] - len(got[s])
                    got[s].extend(clips[:room])
                    bar.update(min(len(clips), room))
    finally:
        bar.close()
        if pool is not None:
            pool.shutdown()
    for s in multi:
        got[s] = plan_windows(per_work[s], quota=quotas[s], test_fraction=test_fraction)
    for s, quota in quotas.items():
        if len(got[s]) < quota:
            level = logging.INFO if s in multi else logging.WARNING
            log.log(level, "style %s: %d of %d clips (its %d works give no more)", s,
                    len(got[s]), quota, len(candidates[s]))
    return [c for s in quotas for c in sorted(got[s], key=lambda c: c.file)]


def plan_windows(works: Sequence[Sequence[ClipInfo]], *, quota: int,
                 test_fraction: float = 0.2) -> list[ClipInfo]:
    """Share a quota of clips between the windows of a few long works, with the split set.

    With one work, its first ``quota`` windows (split left to build-dataset). With more,
    the last work is the test work and gives its first ``max(1, round(quota *
    test_fraction))`` windows; the other works give the rest, taken in turn (first window of
    each, then the second, ...). A work is never on both sides.

    Parameters
    ----------
    works : sequence of sequence of ClipInfo
        Each work's clips in window order; works in (seeded) candidate order.
    quota : int
        Clips wanted.
    test_fraction : float
        Share of the quota for the test work.

    Returns
    -------
    clips : list of ClipInfo
        At most ``quota``; ``split`` is "train"/"test" when there are two works or more.
    """
    works = [list(w) for w in works if len(w)]
    if not works or quota < 1:
        return []
    if len(works) == 1:
        return works[0][:quota]
    test_work, train_works = works[-1], works[:-1]
    n_test = min(len(test_work), max(1, round(quota * test_fraction)))
    chosen = [replace(c, split="test") for c in test_work[:n_test]]
    train: list[ClipInfo] = []
    depth = max(len(w) for w in train_works)
    for k in range(depth):
        for w in train_works:
            if k < len(w) and len(train) < quota - n_test:
                train.append(replace(w[k], split="train"))
    return train + chosen


def _run_batch(pool: ProcessPoolExecutor | None, batch: list[Work], audio_dir: str,
               options: dict[str, Any]) -> list[tuple[Work, list[ClipInfo], str | None]]:
    """Render a batch of works; results in batch order (so the choice is deterministic)."""
    if pool is None:
        return [_render_task(w, audio_dir, options) for w in batch]
    futures = {pool.submit(_render_task, w, audio_dir, options): i for i, w in enumerate(batch)}
    results: list[Any] = [None] * len(batch)
    for fut in as_completed(futures):
        results[futures[fut]] = fut.result()
    return results


def write_labels(clips: Sequence[ClipInfo], audio_dir: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``labels.csv`` (the build-dataset input: file, genre, valence, energy,
    danceability, group, split) and ``works.csv`` (every field of :class:`ClipInfo`) in
    ``audio_dir``."""
    audio_dir = Path(audio_dir)
    labels, works = audio_dir / LABELS_FILE, audio_dir / WORKS_FILE
    for path, columns in ((labels, ("file", "genre", *TARGETS, "group", "split")),
                          (works, tuple(ClipInfo.__dataclass_fields__))):
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(columns)
        for c in clips:
            rec = asdict(c)
            writer.writerow([rec[k] for k in columns])
        _write_text_atomic(path, buf.getvalue())
    return labels, works


def build_scores_sample(out: str | os.PathLike, *, seed: int = 0, clips_per_class: int = 16,
                        clip_seconds: float = 30.0, jobs: int | None = None,
                        styles: Sequence[str] | None = None, renderer: str = "auto",
                        test_fraction: float = 0.2, progress: bool | None = None) -> Path:
    """Build a labelled dataset of real compositions in the Kaggle layout.

    Renders the selected works to ``out/scores_audio/`` (WAVs, ``labels.csv``,
    ``works.csv``), then runs :func:`musicaffect.features.build.build_dataset` into ``out``
    (genre and multitask folders, full and beat-synchronous; every clip has a genre and
    derived affect labels, so it is in both) and writes ``SOURCE.txt``. Re-running with the
    same arguments reuses the rendered WAVs and the built clips.

    Parameters
    ----------
    out : str or os.PathLike
        Data root to write.
    seed : int
        Drives the choice of works, their arrangement and the train/test split.
    clips_per_class : int
        Clips per genre (Classical, Folk, Jazz), split evenly over its styles; Jazz
        (ragtime) has two works in the corpus and yields fewer (at most 8 windows each).
    clip_seconds : float
        Length of each clip; short pieces are looped, long ones give their first window.
    jobs : int or None
        Worker processes (None: all cores).
    styles : sequence of str, optional
        Subset of :data:`STYLES` (default all).
    renderer : str
        "auto" or one of :data:`RENDERERS`.
    test_fraction : float
        Share of the works (per genre) in the test split.
    progress : bool or None
        Progress bars (None: only on a terminal).

    Returns
    -------
    root : Path
        The data root (``out``).

    Raises
    ------
    ConfigError
        music21, pretty_midi or a renderer is missing; unknown style or renderer;
        ``clips_per_class`` < 1.
    DataError
        No clip could be rendered.
    """
    from musicaffect.features.build import build_dataset

    if clips_per_class < 1:
        raise ConfigError(f"clips_per_class must be at least 1, got {clips_per_class}")
    t0 = time.perf_counter()
    root = Path(out)
    audio_dir = root / AUDIO_DIR
    corpus_root()
    soundfont_path()
    clips = select_and_render(audio_dir, seed=seed, clips_per_class=clips_per_class,
                              clip_seconds=clip_seconds, styles=styles, jobs=jobs,
                              renderer=renderer, test_fraction=test_fraction,
                              progress=progress)
    if not clips:
        raise DataError("no score could be rendered: see the warnings above", path=audio_dir)
    labels_csv, _ = write_labels(clips, audio_dir)
    t1 = time.perf_counter()
    report = build_dataset(audio_dir, root, labels_csv=labels_csv, test_fraction=test_fraction,
                           seed=seed, jobs=jobs, clip_seconds=clip_seconds, length_rule="crop",
                           resume=True, progress=progress)
    t2 = time.perf_counter()
    counts: dict[str, int] = {}
    for c in clips:
        counts[c.genre] = counts.get(c.genre, 0) + 1
    mapping = "".join(f"  {s.name:<12} {s.description} -> {s.genre}\n"
                      for name in (styles or STYLES) for s in [STYLES[name]])
    _write_text_atomic(root / SOURCE_FILE, SOURCE_TEXT.format(
        seed=seed, n_works=len({c.work for c in clips}), sr=22050,
        renderers=", ".join(sorted({c.renderer for c in clips})), clip_seconds=clip_seconds,
        mapping=mapping, n_clips=len(clips),
        counts=", ".join(f"{g} {n}" for g, n in counts.items()), audio_dir=AUDIO_DIR))
    log.info("scores sample: %d clips rendered in %.1f s, features in %.1f s (%d failed)",
             len(clips), t1 - t0, t2 - t1, report.failed)
    return root

