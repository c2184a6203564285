"""The corpus side of the scores sample: its styles, the works of music21's corpus that make
them up, and the reading of a score into notes, bars, beats and chord symbols.

The scores are the public-domain works that ship inside the ``music21`` package (its
``corpus``); nothing is downloaded.
"""

from __future__ import annotations

import logging
import math
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from musicaffect.errors import ConfigError, DataError

log = logging.getLogger(__name__)

#: what to install when music21, pretty_midi or a renderer is missing
INSTALL_HINT = ("install the optional extra: pip install 'musicaffect[scores]' (music21, "
                "pretty_midi, midirenderer)")


# ---------------------------------------------------------------------------------------
# styles


@dataclass(frozen=True)
class Style:
    """One style of the sample: where its works come from and how it is played.

    ``families`` are regular expressions over corpus paths (relative, with ``/``); candidates
    are drawn from the families in turn so that no collection crowds out the others.
    ``genre`` is the FMA genre name the style is filed under (``label_by="genre"``).
    ``beat_bpm`` is the tempo range, in beats of the time signature per minute, used when
    the score has no tempo marking (or ``use_marking`` is False); with a marking, the tempo
    is the marking times a factor drawn from :data:`TEMPO_SPREAD`.
    ``patterns``: the accompaniment patterns for single-melody scores.
    ``windows``: excerpts per work at least (a style with few works takes more of each).
    The instruments are not part of the style: every style draws from the same pools
    (:mod:`musicaffect.samples.arrange`).
    """

    name: str
    genre: str
    families: tuple[str, ...]
    beat_bpm: tuple[float, float]
    velocity: tuple[int, int]
    patterns: tuple[str, ...] = ("block", "arpeggio", "oompah")
    use_marking: bool = False
    windows: int = 1
    description: str = ""


#: factor range applied to a score's own tempo marking (``Style.use_marking``)
TEMPO_SPREAD: tuple[float, float] = (0.8, 1.25)

STYLES: dict[str, Style] = {s.name: s for s in (
    Style("medieval", "Classical",
          (r"trecento/(?!.*_bak\.)(?!PMFC_13_01-.*\.mxl$).+\.(xml|mxl)", r"luca/gloria\.xml"),
          beat_bpm=(60, 110), velocity=(55, 90), use_marking=True,
          description="Italian Trecento (14th century): ballate, madrigals and mass movements "
                      "by Landini, Jacopo da Bologna, Giovanni da Firenze, Ciconia and others"),
    Style("renaissance", "Classical",
          (r"palestrina/.+\.krn", r"monteverdi/madrigal\.\d+\.\d+\.mxl"),
          beat_bpm=(50, 90), velocity=(55, 85),
          description="Palestrina mass movements and Monteverdi madrigals"),
    Style("chorale", "Classical", (r"bach/bwv(?!846\.)\d+(\.\d+)?\.mxl",),
          beat_bpm=(56, 96), velocity=(60, 90),
          description="J. S. Bach, four-part chorales"),
    Style("quartet", "Classical",
          (r"haydn/opus\w+/movement\d\.mxl", r"mozart/k(80|155|156|458)/movement\d\.mxl",
           r"beethoven/opus(18no1|59no\d)/movement\d\.mxl",
           r"schumann_robert/opus41no1/movement\d\.mxl"),
          beat_bpm=(60, 140), velocity=(60, 100), use_marking=True,
          description="string quartets by Haydn, Mozart, Beethoven and Robert Schumann"),
    Style("romantic", "Classical",
          (r"chopin/mazurka06-2\.krn", r"schumann_clara/(polonaise_op1n\d\.mxl|"
           r"opus17/movement3\.xml)", r"schumann_robert/dichterliebe_no2\.xml",
           r"schubert/Lindenbaum\.xml", r"verdi/laDonnaEMobile\.mxl",
           r"weber/concertino_clarinet\.mxl", r"beach/prayer_of_a_tired_child\.musicxml"),
          beat_bpm=(60, 120), velocity=(55, 100), use_marking=True, windows=6,
          description="19th-century piano music and song: Chopin, Clara and Robert Schumann, "
                      "Schubert, Verdi, Weber, Amy Beach"),
    Style("folksong", "Folk",
          (r"essenFolksong/(altdeu|ballad|boehme|dva|erk|fink|kinder|zuccal)\d+\.abc",),
          beat_bpm=(70, 130), velocity=(65, 95),
          description="German folk songs of the Essen collection, with an accompaniment"),
    Style("fiddle", "Folk", (r"oneills1850/.+\.abc", r"ryansMammoth/.+\.abc"),
          beat_bpm=(90, 140), velocity=(70, 105),
          description="Irish (O'Neill's 1850) and American (Ryan's Mammoth) fiddle tunes, "
                      "with an accompaniment"),
    Style("ragtime", "Jazz", (r"joplin/maple_leaf_rag\.mxl",
                              r"leadSheet/berlinAlexandersRagtime\.mxl"),
          beat_bpm=(70, 110), velocity=(70, 100), patterns=("oompah",), windows=8,
          description="Joplin's Maple Leaf Rag (piano) and Berlin's Alexander's Ragtime Band "
                      "(lead sheet with its chord symbols)"),
)}


def check_styles(styles: Sequence[str] | None = None) -> list[str]:
    """The style names asked for (default: all of :data:`STYLES`), checked, in
    :data:`STYLES` order and without repeats.

    Raises
    ------
    ConfigError
        An unknown style name, or an empty list.
    """
    if styles is None:
        return list(STYLES)
    for name in styles:
        if name not in STYLES:
            raise ConfigError(f"unknown score style {name!r}: choose from {', '.join(STYLES)}")
    out = [name for name in STYLES if name in set(styles)]
    if not out:
        raise ConfigError(f"no score style given: choose from {', '.join(STYLES)}")
    return out


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
        """The larger work this belongs to (a quartet, a mass, a set of polonaises; the
        versions of one Trecento piece): clips of one group stay on one side of the
        train/test split."""
        if self.style == "quartet":
            return self.path.rsplit("/", 1)[0]
        if self.path.startswith("palestrina/"):
            m = re.search(r"_(\d+)(_[a-z])?\.krn$", self.path)
            return f"palestrina/mass{m.group(1)}" if m else self.path
        if self.path.startswith("trecento/"):  # versions a/b and copies of one piece
            m = re.match(r"trecento/(PMFC_\d+[_-](?:[A-Za-z]+[_-])?\d+)[ab]?-", self.path)
            return f"trecento/{m.group(1)}" if m else self.path
        if self.path.startswith("schumann_clara/polonaise_op1"):
            return "schumann_clara/op1"
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
        raise ConfigError(f"the scores sample needs music21: {INSTALL_HINT}") from None
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


def parse_work(work: Work, *, expand_repeats: bool = False) -> Any:
    """Parse a work with music21 (repeats expanded when asked: when several excerpts of a
    work are taken)."""
    from music21 import corpus

    score = corpus.parse(work.path, number=work.number) if work.number is not None \
        else corpus.parse(work.path)
    if expand_repeats:
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
