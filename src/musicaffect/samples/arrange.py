"""How a score is played: the arrangement of a work (tempo, instruments, loudness,
accompaniment), the timed notes of its performance, and the windows cut from it."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from musicaffect.errors import DataError
from musicaffect.samples.corpus import TEMPO_SPREAD, ScoreData, Style
from musicaffect.samples.theory import accompaniment, chords_per_bar, estimate_key, key_weights

#: Ensembles for multi-part scores: General MIDI programs from the top part to the bottom
#: one (the bottom part takes the last program, the parts above it the others in order,
#: the last-but-one repeated when there are more parts). Every style draws from all of them.
ENSEMBLES: dict[str, tuple[int, ...]] = {
    "piano": (0,),
    "bright piano": (1,),
    "electric piano": (4,),
    "harpsichord": (6,),
    "church organ": (19,),
    "reed organ": (20,),
    "accordion": (21,),
    "guitars": (24, 24, 25, 32),
    "harp": (46,),
    "strings": (40, 40, 41, 42),
    "string orchestra": (48,),
    "choir": (52,),
    "voices": (53,),
    "woodwinds": (73, 68, 71, 70),
    "recorders and bassoon": (74, 74, 71, 70),
    "brass": (56, 60, 57, 58),
    "saxophones": (64, 65, 66, 67),
    "mallets": (11, 12, 12, 32),
    "mixed consort": (40, 73, 71, 42),
}

#: Instruments of a mixed trio: the melody (top part), chord (middle parts) and bass (bottom
#: part) instruments are drawn each on its own. A single-melody score gets its
#: accompaniment played by the chord and bass instruments.
LEADS: dict[str, int] = {
    "piano": 0, "vibraphone": 11, "accordion": 21, "harmonica": 22, "nylon guitar": 24,
    "violin": 40, "voice": 53, "trumpet": 56, "alto sax": 65, "oboe": 68, "clarinet": 71,
    "flute": 73, "recorder": 74, "fiddle": 110,
}
CHORD_INSTRUMENTS: dict[str, int] = {
    "piano": 0, "electric piano": 4, "harpsichord": 6, "church organ": 19, "accordion": 21,
    "nylon guitar": 24, "steel guitar": 25, "harp": 46, "strings": 48,
}
BASS_INSTRUMENTS: dict[str, int] = {
    "piano": 0, "acoustic bass": 32, "electric bass": 33, "cello": 42, "contrabass": 43,
    "tuba": 58, "bassoon": 70,
}

#: share of works played by a mixed trio rather than one of :data:`ENSEMBLES`
MIXED_SHARE = 0.5

#: beat rate limits (beats per minute) of a tempo taken from a score's marking
BEAT_BPM_LIMITS: tuple[float, float] = (40.0, 200.0)


@dataclass(frozen=True)
class Arrangement:
    """How a work is played: tempo, instruments (``ensemble`` names them), loudness,
    accompaniment, and the key it was heard in."""

    qpm: float
    programs: tuple[int, ...]
    velocity: int
    pattern: str | None
    tonic: int
    mode: str
    ensemble: str = ""


def part_programs(ensemble: tuple[int, ...], n_parts: int) -> tuple[int, ...]:
    """Programs of ``n_parts`` parts (top to bottom) played by an ensemble of
    :data:`ENSEMBLES`: the bottom part takes the ensemble's last instrument, the others take
    its instruments in order (the last-but-one repeated)."""
    if n_parts < 1:
        return ()
    if len(ensemble) == 1:
        return (ensemble[0],) * n_parts
    upper = tuple(ensemble[min(i, len(ensemble) - 2)] for i in range(n_parts - 1))
    return (*upper, ensemble[-1]) if n_parts > 1 else (ensemble[0],)


def choose_tempo(data: ScoreData, style: Style, rng: np.random.Generator) -> float:
    """Quarter notes per minute for a work: the score's marking times a factor drawn from
    :data:`~musicaffect.samples.corpus.TEMPO_SPREAD` when the style uses markings (the beat
    rate kept within :data:`BEAT_BPM_LIMITS`), otherwise a beat rate drawn from the style's
    range."""
    if style.use_marking and data.qpm is not None:
        bpm = data.qpm / data.beat_q * float(rng.uniform(*TEMPO_SPREAD))
        bpm = float(np.clip(bpm, *BEAT_BPM_LIMITS))
    else:
        bpm = float(rng.uniform(*style.beat_bpm))
    return bpm * data.beat_q


def choose_instruments(n_tracks: int, rng: np.random.Generator) -> tuple[str, tuple[int, ...]]:
    """Instruments for a work of ``n_tracks`` tracks (parts, or melody + chords + bass), from
    pools shared by every style and every texture: with probability :data:`MIXED_SHARE` a
    mixed trio (:data:`LEADS`, :data:`CHORD_INSTRUMENTS`, :data:`BASS_INSTRUMENTS`, drawn
    each on its own), otherwise one of :data:`ENSEMBLES`; spread over the tracks by
    :func:`part_programs`.

    Returns
    -------
    name : str
        The ensemble's name, or the trio's instruments joined by " + ".
    programs : tuple of int
        General MIDI program per track, top to bottom.
    """
    if rng.random() < MIXED_SHARE:
        picks = [list(pool)[int(rng.integers(len(pool)))]
                 for pool in (LEADS, CHORD_INSTRUMENTS, BASS_INSTRUMENTS)]
        trio = (LEADS[picks[0]], CHORD_INSTRUMENTS[picks[1]], BASS_INSTRUMENTS[picks[2]])
        return " + ".join(picks), part_programs(trio, n_tracks)
    name = list(ENSEMBLES)[int(rng.integers(len(ENSEMBLES)))]
    return name, part_programs(ENSEMBLES[name], n_tracks)


def choose_arrangement(data: ScoreData, style: Style, rng: np.random.Generator) -> Arrangement:
    """Draw tempo, instruments, loudness and accompaniment pattern for a work (seeded).

    The instruments (:func:`choose_instruments`) do not depend on the style or on the
    score's texture, so that the SoundFont's timbre does not tell the style. A
    single-melody score gets three tracks: melody, chords, bass.
    """
    qpm = choose_tempo(data, style, rng)
    melody_only = len(data.parts) == 1
    ensemble, programs = choose_instruments(3 if melody_only else len(data.parts), rng)
    velocity = int(rng.integers(style.velocity[0], style.velocity[1] + 1))
    pattern = style.patterns[int(rng.integers(len(style.patterns)))] if melody_only else None
    tonic, mode, _ = estimate_key(key_weights(data))
    return Arrangement(qpm=qpm, programs=programs, velocity=velocity, pattern=pattern,
                       tonic=tonic, mode=mode, ensemble=ensemble)


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


def window_starts(perf: Performance, *, seconds: float, max_windows: int) -> list[float]:
    """Start times of the excerpts of a performance: :func:`n_windows` of them, spread
    evenly from the start to the end (the first at 0, the last ending with the piece), so
    that they do not overlap and cover the whole work, not only its opening."""
    count = n_windows(perf, seconds=seconds, max_windows=max_windows)
    if count == 1:
        return [0.0]
    last = max(perf.duration - seconds, 0.0)
    return [round(float(s), 3) for s in np.linspace(0.0, last, count)]
