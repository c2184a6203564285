"""The scores sample as a whole: works rendered to clips, the clips chosen per style, their
label files, and the dataset built from them (:func:`build_scores_sample`)."""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import time
import zlib
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from musicaffect.data.labels import TARGETS
from musicaffect.errors import ConfigError, DataError
from musicaffect.samples.affect import derive_affect
from musicaffect.samples.arrange import choose_arrangement, n_windows, perform, window
from musicaffect.samples.corpus import (
    STYLES,
    Work,
    candidate_works,
    corpus_root,
    genre_styles,
    parse_work,
    score_data,
    style_quotas,
)
from musicaffect.samples.render import render_midi, resolve_renderer, soundfont_path, to_midi

log = logging.getLogger(__name__)

#: folder (under the data root) that holds the rendered WAVs and their labels
AUDIO_DIR = "scores_audio"
LABELS_FILE = "labels.csv"
WORKS_FILE = "works.csv"
SOURCE_FILE = "SOURCE.txt"


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
