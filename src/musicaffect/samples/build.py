"""The scores sample as a whole: works rendered to clips, the clips chosen per style, their
label files, and the dataset built from them (:func:`build_scores_sample`)."""

from __future__ import annotations

import csv
import io
import json
import logging
import math
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
from musicaffect.features.params import FeatureParams
from musicaffect.samples.affect import derive_affect
from musicaffect.samples.arrange import choose_arrangement, perform, window, window_starts
from musicaffect.samples.corpus import (
    STYLES,
    Work,
    candidate_works,
    check_styles,
    corpus_root,
    parse_work,
    score_data,
)
from musicaffect.samples.render import render_midi, resolve_renderer, soundfont_path, to_midi

log = logging.getLogger(__name__)

#: folder (under the data root) that holds the rendered WAVs and their labels
AUDIO_DIR = "scores_audio"
LABELS_FILE = "labels.csv"
WORKS_FILE = "works.csv"
SOURCE_FILE = "SOURCE.txt"


# ---------------------------------------------------------------------------------------
# sizes


@dataclass(frozen=True)
class SampleSize:
    """A size of the sample: its styles, the clips wanted per style, and how many excerpts
    (windows) a work gives at most (a style's own :attr:`Style.windows` can raise it)."""

    name: str
    styles: tuple[str, ...]
    clips_per_style: int
    windows: int
    description: str = ""


SIZES: dict[str, SampleSize] = {s.name: s for s in (
    SampleSize("small", ("renaissance", "chorale", "quartet", "folksong", "fiddle", "ragtime"),
               clips_per_style=7, windows=1,
               description="the quick demo: 6 styles, one excerpt per work, ~42 clips"),
    SampleSize("dev", tuple(STYLES), clips_per_style=50, windows=3,
               description="a development set to choose models with: 8 styles, up to 3 "
                           "excerpts per work, ~350 clips"),
)}

#: what the ``genre`` column of ``labels.csv`` holds: the FMA genre name of the style, or
#: the style's own name
LABEL_BY: tuple[str, ...] = ("genre", "style")


def sample_quotas(size: str = "small", *, styles: Sequence[str] | None = None,
                  clips_per_style: int | None = None) -> dict[str, int]:
    """Clips wanted per style, in :data:`STYLES` order.

    Parameters
    ----------
    size : str
        A key of :data:`SIZES`.
    styles : sequence of str, optional
        Styles to build (default: the size's styles).
    clips_per_style : int, optional
        Clips wanted per style (default: the size's).

    Raises
    ------
    ConfigError
        Unknown size or style; ``clips_per_style`` < 1.
    """
    if size not in SIZES:
        raise ConfigError(f"unknown size {size!r} for the scores sample: choose "
                          f"{' or '.join(SIZES)}")
    spec = SIZES[size]
    names = check_styles(spec.styles if styles is None else styles)
    n = spec.clips_per_style if clips_per_style is None else clips_per_style
    if n < 1:
        raise ConfigError(f"clips_per_style must be at least 1, got {n}")
    return dict.fromkeys(names, n)


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
    ensemble: str
    programs: str
    renderer: str
    valence: float
    energy: float
    danceability: float
    split: str = ""


def render_work(work: Work, audio_dir: str | os.PathLike, *, seed: int = 0,
                clip_seconds: float = 30.0, sr: int = FeatureParams.sr, renderer: str = "auto",
                windows: int = 1) -> list[ClipInfo]:
    """Parse, arrange and render one work to WAV clips in ``audio_dir``.

    Resumable: when the work's sidecar ``<slug>.json`` (same seed, clip length, sample rate
    and windows) and all its WAVs exist, they are read back instead of rendered. Everything
    random is seeded by ``seed`` and the work.

    Parameters
    ----------
    windows : int
        Excerpts at most (:func:`~musicaffect.samples.arrange.window_starts`); with more than
        one, the score's repeats are expanded first.

    Returns
    -------
    clips : list of ClipInfo
        One per excerpt, in time order.

    Raises
    ------
    DataError
        The score cannot be parsed or has no notes.
    """
    audio_dir = Path(audio_dir)
    sidecar = audio_dir / f"{work.slug}.json"
    key = {"clip_seconds": clip_seconds, "sr": sr, "seed": seed, "windows": windows,
           "version": RENDER_VERSION}
    cached = _read_sidecar(sidecar, audio_dir, key)
    if cached is not None:
        return cached
    style = STYLES[work.style]
    try:
        score = parse_work(work, expand_repeats=windows > 1)
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
    clips = []
    for k, start in enumerate(window_starts(perf, seconds=clip_seconds, max_windows=windows)):
        part = window(perf, start=start, seconds=clip_seconds)
        y = render_midi(to_midi(part), seconds=clip_seconds, sr=sr, renderer=name)
        file = f"{work.slug}-w{k}.wav"
        _write_wav(audio_dir / file, y, sr)
        labels = derive_affect(part, tonic_mode=(arrangement.tonic, arrangement.mode))
        clips.append(ClipInfo(
            file=file, style=work.style, genre=style.genre, group=work.group, work=work.key,
            title=data.title, window=k, start=start, qpm=round(arrangement.qpm, 2),
            key=f"{_PC_NAMES[arrangement.tonic]} {arrangement.mode}",
            ensemble=arrangement.ensemble, programs=" ".join(map(str, arrangement.programs)),
            renderer=name, **{t: round(labels[t], 4) for t in TARGETS}))
    _write_text_atomic(sidecar, json.dumps({**key, "clips": [asdict(c) for c in clips]},
                                           indent=1))
    return clips


#: bump when the arrangement or rendering changes, so that resumed builds re-render
RENDER_VERSION = 3

_PC_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")


def _read_sidecar(path: Path, audio_dir: Path, key: dict[str, Any]) -> list[ClipInfo] | None:
    if not path.is_file():
        return None
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
        if any(meta.get(k) != v for k, v in key.items()):
            return None
        clips = [ClipInfo(**c) for c in meta["clips"]]
    except (ValueError, KeyError, TypeError):
        return None
    if not clips or not all((audio_dir / c.file).is_file() for c in clips):
        return None
    return clips


def _write_wav(path: Path, y: np.ndarray, sr: int) -> None:
    import soundfile as sf

    from musicaffect.io import atomic_open

    with atomic_open(path) as f:
        sf.write(f, y, sr, subtype="PCM_16", format="WAV")


def _write_text_atomic(path: Path, text: str) -> None:
    from musicaffect.io import atomic_write

    atomic_write(path, text)


def _render_task(work: Work, windows: int, audio_dir: str, options: dict[str, Any]
                 ) -> tuple[Work, list[ClipInfo], str | None]:
    try:
        return work, render_work(work, audio_dir, windows=windows, **options), None
    except DataError as err:
        return work, [], str(err)


# ---------------------------------------------------------------------------------------
# choosing the clips


def works_wanted(quota: int, rendered: Sequence[Sequence[ClipInfo]], *, windows: int) -> int:
    """How many more works of a style to render, given the clips of the works rendered so
    far (one list per work).

    Enough for the missing clips at the excerpts per work seen so far (``windows`` before
    any), and at least two works in all, so that a style can have a work on each side of
    the train/test split.
    """
    have = sum(len(w) for w in rendered)
    more_works = max(0, 2 - len(rendered))
    if have >= quota:
        return more_works
    per_work = have / len(rendered) if rendered else windows
    return max(math.ceil((quota - have) / max(per_work, 1.0)), more_works)


def pick_clips(works: Sequence[Sequence[ClipInfo]], *, quota: int) -> list[ClipInfo]:
    """Share a quota of clips between the excerpts of several works, in turn: the first
    excerpt of each work (in the given order), then the second, and so on.

    Parameters
    ----------
    works : sequence of sequence of ClipInfo
        Each work's clips in excerpt order; works in (seeded) candidate order.
    quota : int
        Clips wanted.

    Returns
    -------
    clips : list of ClipInfo
        At most ``quota``.
    """
    works = [list(w) for w in works if len(w)]
    out: list[ClipInfo] = []
    for k in range(max((len(w) for w in works), default=0)):
        for w in works:
            if k < len(w) and len(out) < quota:
                out.append(w[k])
    return out


def assign_style_splits(clips: Sequence[ClipInfo], *, test_fraction: float = 0.2,
                        seed: int = 0) -> list[ClipInfo]:
    """Train/test split of the clips, stratified by style, whole groups (works) together.

    Per style, the groups are shuffled (seeded by ``seed`` and the style) and taken into test
    while that does not take the style's test count further from ``round(test_fraction *
    n_clips)``. A style with two groups or more always has one in test (the group whose size
    is closest to that count) when ``test_fraction`` > 0, and always keeps one in train.

    Returns
    -------
    clips : list of ClipInfo
        The same clips, in the same order, with ``split`` set to "train" or "test".

    Raises
    ------
    ConfigError
        ``test_fraction`` not in [0, 1).
    """
    if not 0.0 <= test_fraction < 1.0:
        raise ConfigError(f"test_fraction must be in [0, 1), got {test_fraction}")
    groups: dict[str, dict[str, int]] = {}
    for c in clips:
        sizes = groups.setdefault(c.style, {})
        sizes[c.group] = sizes.get(c.group, 0) + 1
    test: set[tuple[str, str]] = set()
    for style, sizes in groups.items():
        keys = sorted(sizes)
        rng = np.random.default_rng([seed, zlib.crc32(style.encode())])
        order = [keys[i] for i in rng.permutation(len(keys))]
        target = round(test_fraction * sum(sizes.values()))
        chosen: list[str] = []
        n_test = 0
        for g in order:
            if target > 0 and abs(n_test + sizes[g] - target) <= abs(n_test - target):
                chosen.append(g)
                n_test += sizes[g]
        if len(keys) >= 2 and test_fraction > 0 and not chosen:
            chosen = [min(order, key=lambda g: abs(sizes[g] - target))]
        if len(keys) >= 2 and len(chosen) == len(keys):
            chosen.pop()
        test.update((style, g) for g in chosen)
    return [replace(c, split="test" if (c.style, c.group) in test else "train") for c in clips]


def _run_batch(pool: ProcessPoolExecutor | None, batch: list[tuple[Work, int]], audio_dir: str,
               options: dict[str, Any]) -> list[tuple[Work, list[ClipInfo], str | None]]:
    """Render a batch of (work, windows); results in batch order (so the choice is
    deterministic)."""
    if pool is None:
        return [_render_task(w, n, audio_dir, options) for w, n in batch]
    futures = {pool.submit(_render_task, w, n, audio_dir, options): i
               for i, (w, n) in enumerate(batch)}
    results: list[Any] = [None] * len(batch)
    for fut in as_completed(futures):
        results[futures[fut]] = fut.result()
    return results


def select_and_render(audio_dir: str | os.PathLike, quotas: dict[str, int], *,
                      windows: int = 1, seed: int = 0, clip_seconds: float = 30.0,
                      jobs: int | None = None, sr: int = FeatureParams.sr, renderer: str = "auto",
                      progress: bool | None = None) -> list[ClipInfo]:
    """Choose works (seeded) and render them until every style has its quota of clips.

    Works are taken in candidate order (:func:`~musicaffect.samples.corpus.candidate_works`),
    as many as :func:`works_wanted` says, each giving up to ``max(windows,
    style.windows)`` excerpts; works that fail to parse are logged and replaced by the next
    candidates. Each style's clips are then chosen by :func:`pick_clips`. A style whose
    works give fewer clips than its quota (ragtime: two works in the corpus) keeps what
    they give, and the shortfall is logged.

    Returns
    -------
    clips : list of ClipInfo
        Grouped by style (in the order of ``quotas``), sorted by file name within a style;
        ``split`` not set.
    """
    audio_dir = Path(audio_dir)
    audio_dir.mkdir(parents=True, exist_ok=True)
    name = resolve_renderer(renderer)
    caps = {s: max(windows, STYLES[s].windows) for s in quotas}
    candidates = {s: candidate_works(s, seed=seed) for s in quotas}
    cursor = dict.fromkeys(quotas, 0)
    rendered: dict[str, list[list[ClipInfo]]] = {s: [] for s in quotas}
    options = {"seed": seed, "clip_seconds": clip_seconds, "sr": sr, "renderer": name}
    jobs = max(1, jobs or os.cpu_count() or 1)
    bar = tqdm(total=sum(quotas.values()), desc="render scores", unit="clip",
               disable=None if progress is None else not progress)
    pool = ProcessPoolExecutor(max_workers=jobs) if jobs > 1 else None
    try:
        while True:
            batch: list[tuple[Work, int]] = []
            for s, quota in quotas.items():
                n = works_wanted(quota, rendered[s], windows=caps[s])
                take = candidates[s][cursor[s]:cursor[s] + n]
                cursor[s] += len(take)
                batch.extend((w, caps[s]) for w in take)
            if not batch:
                break
            for work, clips, err in _run_batch(pool, batch, str(audio_dir), options):
                s = work.style
                if err is not None:
                    log.warning("skipped %s: %s", work.key, err)
                    continue
                shown = min(quotas[s], sum(map(len, rendered[s])))
                rendered[s].append(clips)
                bar.update(min(quotas[s], shown + len(clips)) - shown)
    finally:
        bar.close()
        if pool is not None:
            pool.shutdown()
    out: list[ClipInfo] = []
    for s, quota in quotas.items():
        chosen = pick_clips(rendered[s], quota=quota)
        if len(chosen) < quota:
            log.warning("style %s: %d of %d clips (its %d works in the corpus give no more)",
                        s, len(chosen), quota, len(candidates[s]))
        out.extend(sorted(chosen, key=lambda c: c.file))
    return out


# ---------------------------------------------------------------------------------------
# the whole sample


def write_labels(clips: Sequence[ClipInfo], audio_dir: str | os.PathLike, *,
                 label_by: str = "genre") -> tuple[Path, Path]:
    """Write ``labels.csv`` (the build-dataset input: file, genre, style, valence, energy,
    danceability, group, split) and ``works.csv`` (every field of :class:`ClipInfo`) in
    ``audio_dir``.

    ``label_by`` chooses what the ``genre`` column holds: ``"genre"``, the FMA genre name of
    the clip's style (:attr:`Style.genre`); ``"style"``, the style's own name. The ``style``
    column always holds the style's name.
    """
    if label_by not in LABEL_BY:
        raise ConfigError(f"unknown label_by {label_by!r}: choose {' or '.join(LABEL_BY)}")
    audio_dir = Path(audio_dir)
    labels, works = audio_dir / LABELS_FILE, audio_dir / WORKS_FILE
    for path, columns in ((labels, ("file", "genre", "style", *TARGETS, "group", "split")),
                          (works, tuple(ClipInfo.__dataclass_fields__))):
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(columns)
        for c in clips:
            rec = asdict(c)
            if path == labels and label_by == "style":
                rec["genre"] = c.style
            writer.writerow([rec[k] for k in columns])
        _write_text_atomic(path, buf.getvalue())
    return labels, works


SOURCE_TEXT = """\
REAL COMPOSITIONS RENDERED WITH A SOUNDFONT - NOT RECORDINGS

This dataset was built by `musicaffect sample-data --source scores --size {size}`
(seed {seed}). Audio: public-domain scores from the corpus that ships inside the music21 package
({n_works} works), arranged by musicaffect (tempo, General MIDI instruments drawn for each
work from pools shared by every style and texture, dynamics, and a simple chord/bass accompaniment for
single-melody tunes), rendered to {sr} Hz mono WAV with the TimGM6mb.sf2 General MIDI
SoundFont (shipped with pretty_midi) by the {renderers} renderer, then passed through
build-dataset ({clip_seconds:g} s clips, length rule crop). Excerpts per work: up to
{windows} (more for styles with few works).

Genre labels ({label_by}): {label_note}
Styles (FMA genre), clips train/test:
{mapping}
Affect labels (valence, energy, danceability) are DERIVED by fixed rules from the notes as
played (mode and key clarity, tempo, note density, loudness, polyphony, beat coverage and
metrical regularity): they are not listener ratings. See docs/SCORES.md.

Clips: {n_clips} ({n_train} train, {n_test} test). The WAVs, labels.csv and works.csv
(source, title, tempo, key, instruments) are in {audio_dir}/. The train/test split is
stratified by style and keeps each group (a work; a whole string quartet, a whole
Palestrina mass) on one side.
"""

_LABEL_NOTES = {
    "genre": "the style of the source collection mapped to an FMA genre name",
    "style": "the style's own name (the `style` column of labels.csv holds it either way)",
}


def build_scores_sample(out: str | os.PathLike, *, size: str = "small", seed: int = 0,
                        clips_per_style: int | None = None, clip_seconds: float = 30.0,
                        jobs: int | None = None, styles: Sequence[str] | None = None,
                        renderer: str = "auto", test_fraction: float = 0.2,
                        label_by: str = "style", progress: bool | None = None) -> Path:
    """Build a labelled dataset of real compositions in the Kaggle layout.

    Renders the selected works to ``out/scores_audio/`` (WAVs, ``labels.csv``,
    ``works.csv``), then runs :func:`musicaffect.features.build.build_dataset` into ``out``
    (genre and multitask folders, full and beat-synchronous; every clip has a genre and
    derived affect labels, so it is in both) and writes ``SOURCE.txt``. Re-running with the
    same arguments reuses the rendered WAVs and the built clips; changing only ``label_by``
    re-labels without rendering again.

    Parameters
    ----------
    out : str or os.PathLike
        Data root to write.
    size : str
        A key of :data:`SIZES`: ``"small"`` (the quick demo, ~42 clips) or ``"dev"`` (a
        development set, ~350 clips over 8 styles).
    seed : int
        Drives the choice of works, their arrangement and the train/test split.
    clips_per_style : int, optional
        Clips wanted per style (default: the size's). Styles with few works in the corpus
        (ragtime: two) give fewer.
    clip_seconds : float
        Length of each clip; short pieces are looped, long ones give evenly spread excerpts.
    jobs : int or None
        Worker processes (None: all cores).
    styles : sequence of str, optional
        Subset of :data:`~musicaffect.samples.corpus.STYLES` (default: the size's styles).
    renderer : str
        "auto" or one of :data:`~musicaffect.samples.render.RENDERERS`.
    test_fraction : float
        Share of each style's clips in the test split (whole works).
    label_by : {"genre", "style"}
        What the ``genre`` column of ``labels.csv`` holds (:func:`write_labels`): the FMA
        genre name of the style (default; the 20 FMA names are what build-dataset knows) or
        the style's own name.
    progress : bool or None
        Progress bars (None: only on a terminal).

    Returns
    -------
    root : Path
        The data root (``out``).

    Raises
    ------
    ConfigError
        music21, pretty_midi or a renderer is missing; unknown size, style, renderer or
        ``label_by``; ``clips_per_style`` < 1; ``test_fraction`` outside [0, 1).
    DataError
        No clip could be rendered.
    """
    from musicaffect.features.build import build_dataset

    quotas = sample_quotas(size, styles=styles, clips_per_style=clips_per_style)
    if label_by not in LABEL_BY:
        raise ConfigError(f"unknown label_by {label_by!r}: choose {' or '.join(LABEL_BY)}")
    if not 0.0 <= test_fraction < 1.0:
        raise ConfigError(f"test_fraction must be in [0, 1), got {test_fraction}")
    t0 = time.perf_counter()
    root = Path(out)
    audio_dir = root / AUDIO_DIR
    corpus_root()
    soundfont_path()
    spec = SIZES[size]
    clips = select_and_render(audio_dir, quotas, windows=spec.windows, seed=seed,
                              clip_seconds=clip_seconds, jobs=jobs, renderer=renderer,
                              progress=progress)
    if not clips:
        raise DataError("no score could be rendered: see the warnings above", path=audio_dir)
    clips = assign_style_splits(clips, test_fraction=test_fraction, seed=seed)
    labels_csv, _ = write_labels(clips, audio_dir, label_by=label_by)
    t1 = time.perf_counter()
    stale = audio_changed(root, audio_dir, clips)
    if stale:
        log.info("%d rendered clips changed since the last build of %s: computing every "
                 "clip's features again", stale, root)
    report = build_dataset(audio_dir, root, labels_csv=labels_csv, test_fraction=test_fraction,
                           seed=seed, jobs=jobs, clip_seconds=clip_seconds, length_rule="crop",
                           resume=not stale, progress=progress)
    t2 = time.perf_counter()
    _write_text_atomic(root / SOURCE_FILE, source_text(
        clips, size=size, seed=seed, clip_seconds=clip_seconds, label_by=label_by))
    log.info("scores sample: %d clips rendered in %.1f s, features in %.1f s (%d failed)",
             len(clips), t1 - t0, t2 - t1, report.failed)
    return root


def audio_changed(root: Path, audio_dir: Path, clips: Sequence[ClipInfo]) -> int:
    """How many of the clips' WAVs were written after the data root's last build (its
    ``clips.csv``): a resumed build-dataset would keep their old features. 0 when the root
    was never built."""
    from musicaffect.features.build import CLIPS_FILE

    built = root / CLIPS_FILE
    if not built.is_file():
        return 0
    when = built.stat().st_mtime
    return sum((audio_dir / c.file).stat().st_mtime > when for c in clips
               if (audio_dir / c.file).is_file())


def source_text(clips: Sequence[ClipInfo], *, size: str, seed: int, clip_seconds: float,
                label_by: str, sr: int = FeatureParams.sr) -> str:
    """The text of ``SOURCE.txt`` for a built sample: where the audio and labels come from,
    and the clips per style and split."""
    styles = list(dict.fromkeys(c.style for c in clips))
    lines = []
    for s in styles:
        mine = [c for c in clips if c.style == s]
        n_test = sum(c.split == "test" for c in mine)
        n_groups = len({c.group for c in mine})
        lines.append(f"  {s:<12} ({STYLES[s].genre}) {len(mine) - n_test}/{n_test} clips, "
                     f"{n_groups} groups: {STYLES[s].description}")
    n_test = sum(c.split == "test" for c in clips)
    return SOURCE_TEXT.format(
        size=size, seed=seed, n_works=len({c.work for c in clips}), sr=sr,
        renderers=", ".join(sorted({c.renderer for c in clips})), clip_seconds=clip_seconds,
        windows=SIZES[size].windows if size in SIZES else 1, label_by=label_by,
        label_note=_LABEL_NOTES[label_by], mapping="\n".join(lines), n_clips=len(clips),
        n_train=len(clips) - n_test, n_test=n_test, audio_dir=AUDIO_DIR)
