"""Build a dataset in the Kaggle layout from a folder of audio files and a labels CSV.

The labels CSV has a ``file`` column (path relative to the audio folder) and any of:

- ``genre``: any genre names (``disco``, ``k-pop``; case variants are one name). With the
  genre map ``lab`` they must be the 20 FMA genre names, mapped to the lab's 10 classes
  (:data:`musicaffect.data.labels.GENRES20`); ``auto`` (the default) picks ``lab`` when every
  name is an FMA name and ``none`` (your names are the classes) otherwise; a mapping file
  maps raw names to classes;
- any other column is a numeric regression target (``valence``, ``arousal``, ``tension``
  ...; binary 0/1 labels too): all of them, or none, per row;
- ``split``: ``train`` or ``test`` (empty: chosen by the seeded rule);
- ``group``: clips of one group (song, artist, ...) stay on one side of the split;
- ``style``: a description, read and ignored (the scores sample writes it).

The classes, targets (with their kind, binary or continuous) and where the groups live are
written to ``labels.json`` (:mod:`musicaffect.data.vocab`), which every command reads.

Where each clip goes:

- rows with a genre -> ``fma_genre_spectrograms[_beat]/{train,test}/<id>.fused.full.npy``,
  listed in ``train_labels.txt`` / ``test_labels.txt`` (``Id<TAB>Genre``, with the dataset's
  file-name variants ``<id>.fused.full.npy.gz``, ``<id>.full.fused.npy.gz``,
  ``<id>.beatsync.fused.npy.gz``);
- rows with valence/energy/danceability -> ``multitask_dataset[_beat]/{train,test}/``;
  train clips are listed in ``train_labels.txt`` (``Id,valence,energy,danceability``),
  test clips are unlabelled, as on Kaggle (their labels are kept in ``clips.csv``);
- rows without any label -> ``multitask_dataset[_beat]/test/`` (clips to predict).

With ``segment`` every file is cut into consecutive clips of that many seconds (a shorter
rest is dropped; a file shorter than one segment is one clip); each clip has the labels of
its row and the row's group (or, without one, its file), so one song never crosses a split.

Clip ids are integers given in sorted file order and kept across resumed runs; ``clips.csv``
maps id -> source file, split, labels and status. The split is stratified by genre (seeded);
with groups, whole groups are assigned. ``feature_params.json`` records the parameters and
rules, ``errors.csv`` lists every file that could not be used (missing, unreadable, empty,
silent, too short) with the reason. Each clip is written atomically, so an interrupted build
resumes where it stopped.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import posixpath
import re
import shutil
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from pathlib import Path, PureWindowsPath
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from musicaffect.data.labels import CLASS_MAPPING, CLASSES, GENRES20
from musicaffect.data.layout import FOLDERS, RATES, SPLITS, genre_label_name, label_file_name
from musicaffect.data.splits import assign_splits
from musicaffect.data.vocab import (
    GENRE_MAPS,
    Vocabulary,
    check_target_name,
    read_genre_map,
    sort_classes,
    target_kind,
)
from musicaffect.errors import ConfigError, DataError
from musicaffect.features.audio import FeatureParams, extract_file, warm_up
from musicaffect.features.params import PARAMS_FILE
from musicaffect.io import atomic_open, atomic_write

log = logging.getLogger(__name__)

#: the labels CSV's columns that are not regression targets (``style``: a description that
#: the scores sample writes beside its label; read and ignored)
LABEL_COLUMNS: tuple[str, ...] = ("file", "genre", "split", "group", "style")

#: file name of a clip on disk (the dataset's unpacked name)
CLIP_SUFFIX = ".fused.full.npy"
#: names written in the genre label files, per (rate, split) (the dataset's variants)

CLIPS_FILE = "clips.csv"
ERRORS_FILE = "errors.csv"
#: size and modification time of every built clip's audio file, so that a resumed build
#: recomputes a clip whose audio changed
SOURCES_FILE = "sources.json"

_OWN_CLIP = re.compile(r"^\d+\.fused\.full\.npy$")


@dataclass(frozen=True)
class LabelRow:
    """One row of the labels CSV, checked.

    ``targets`` is empty or holds every target column of the CSV. ``start`` and
    ``seconds`` (None: the whole file) select a segment of the file.
    """

    file: str
    line: int
    genre: str | None = None
    targets: dict[str, float] = field(default_factory=dict)
    split: str | None = None
    group: str | None = None
    start: float | None = None
    seconds: float | None = None

    @property
    def key(self) -> str:
        """Unique name of the clip: the file, plus ``@<start>`` for a segment."""
        return self.file if self.start is None else f"{self.file}@{self.start:g}"

    @property
    def datasets(self) -> tuple[str, ...]:
        """The dataset folders the clip goes to: "genre" and/or "multitask"."""
        out = ("genre",) if self.genre else ()
        if self.targets or not self.genre:
            out += ("multitask",)
        return out


@dataclass
class BuildReport:
    """What :func:`build_dataset` did.

    ``done``: clips computed in this run; ``skipped``: clips already built (resume);
    ``failed``: files listed in ``errors_file``; ``counts``: built clips per
    ``"<dataset>/<split>"``; ``beat_fallbacks``: clips that used the no-beat rule.
    """

    out: Path
    done: int = 0
    skipped: int = 0
    failed: int = 0
    beat_fallbacks: int = 0
    seconds: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)
    errors: list[tuple[str, str]] = field(default_factory=list)
    errors_file: Path | None = None
    params_file: Path | None = None
    clips_file: Path | None = None
    labels_file: Path | None = None
    vocab: Vocabulary | None = None

    @property
    def built(self) -> int:
        """Clips available in the output (done + skipped)."""
        return self.done + self.skipped

    def summary(self) -> str:
        """A few human-readable lines."""
        lines = [f"{self.out}: {self.built} clips built ({self.done} computed, "
                 f"{self.skipped} already there), {self.failed} failed, "
                 f"{self.seconds:.1f} s"]
        if self.counts:
            lines.append("  " + ", ".join(f"{k}: {v}" for k, v in sorted(self.counts.items())))
        if self.vocab is not None:
            v = self.vocab
            if v.classes:
                lines.append(f"  genre classes ({v.genre_map} map): {', '.join(v.classes)}")
            if v.targets:
                lines.append("  targets: " + ", ".join(f"{t} ({v.kind(t)})" for t in v.targets))
        if self.beat_fallbacks:
            lines.append(f"  {self.beat_fallbacks} clips had no detectable beats (fixed "
                         "120 BPM segments used; see feature_params.json)")
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------
# labels CSV


def read_labels(labels_csv: str | os.PathLike, *,
                genre_map: str | os.PathLike = "auto") -> list[LabelRow]:
    """Read and check a labels CSV; see :func:`read_label_table` (the rows only)."""
    return read_label_table(labels_csv, genre_map=genre_map)[0]


def read_label_table(labels_csv: str | os.PathLike, *, genre_map: str | os.PathLike = "auto"
                     ) -> tuple[list[LabelRow], Vocabulary]:
    """Read and check a labels CSV and the label vocabulary it defines.

    Parameters
    ----------
    labels_csv : str or os.PathLike
        Comma-separated, header line first; columns as in the module docstring.
    genre_map : {"auto", "lab", "none"} or path
        How genre names become classes (see the module docstring).

    Returns
    -------
    rows : list of LabelRow
        In file order; genres in their canonical spelling (the FMA spelling with ``lab``,
        the first spelling seen with ``none``, the mapping file's with a file).
    vocab : Vocabulary
        Classes, targets (CSV column order), kinds and ranges, the genre mapping.

    Raises
    ------
    DataError
        Missing file, no ``file`` column, a column that is not numeric (named), empty or
        duplicate file, genre unknown to the mapping, a target that is not a finite number,
        only some of the targets, unknown split, a training row without labels.
    """
    path = Path(labels_csv)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"cannot read the labels CSV ({err}): give a CSV with a 'file' "
                        "column", path=path) from err
    reader = csv.reader(text.splitlines())
    header = next(reader, None)
    if not header:
        raise DataError("labels CSV is empty: it needs a header line with a 'file' column",
                        path=path, line=1)
    columns = [h.strip().lower() for h in header]
    if "file" not in columns:
        raise DataError("no 'file' column (paths relative to the audio folder): the columns "
                        f"are {', '.join(LABEL_COLUMNS)} and numeric targets", path=path,
                        line=1)
    dup = [c for c, n in Counter(columns).items() if n > 1]
    if dup:
        raise DataError(f"column {dup[0]!r} appears twice", path=path, line=1)
    for name in columns:
        if name not in LABEL_COLUMNS:
            check_target_name(name, where=path, line=1)
    records: list[tuple[int, dict[str, str]]] = []
    for lineno, fields_ in enumerate(reader, start=2):
        if not any(f.strip() for f in fields_):
            continue
        if len(fields_) != len(columns):
            raise DataError(f"row has {len(fields_)} fields, the header {len(columns)}: fix "
                            "the row (quote file names that hold commas)", path=path,
                            line=lineno)
        records.append((lineno, {c: f.strip() for c, f in zip(columns, fields_)}))
    # a target column must hold a value somewhere; wholly empty columns are ignored
    targets = [c for c in columns if c not in LABEL_COLUMNS and any(r[c] for _, r in records)]
    for c in columns:
        if c not in LABEL_COLUMNS and c not in targets:
            log.warning("%s: column %r holds no value; ignored", path, c)
    canon = _genre_canon([r.get("genre", "") for _, r in records], genre_map, path)
    rows: list[LabelRow] = []
    seen: dict[str, int] = {}
    for lineno, rec in records:
        row = _parse_row(rec, path, lineno, targets=targets, canon=canon)
        if row.file in seen:
            raise DataError(f"file {row.file!r} is listed twice (first on line "
                            f"{seen[row.file]}): keep one row", path=path, line=lineno)
        seen[row.file] = lineno
        rows.append(row)
    return rows, _vocabulary(rows, targets, canon)


@dataclass
class _Canon:
    """Canonical genre spelling by case-folded name, and the genre mapping."""

    genre_map: str
    names: dict[str, str]                    # casefold -> canonical raw name
    mapping: dict[str, str | None] | None    # canonical raw name -> class (None: identity)
    source: str = ""


def _genre_canon(values: list[str], genre_map: str | os.PathLike, path: Path) -> _Canon:
    given = [v for v in values if v]
    gm = str(genre_map)
    if gm == "auto":
        fma = {g.casefold() for g in GENRES20}
        gm = "lab" if all(v.casefold() in fma for v in given) else "none"
    if gm == "lab":
        return _Canon("lab", {g.casefold(): g for g in GENRES20}, dict(CLASS_MAPPING))
    if gm == "none":
        names: dict[str, str] = {}
        for v in given:
            names.setdefault(v.casefold(), v)
        return _Canon("none", names, None)
    if gm in GENRE_MAPS:  # pragma: no cover (all handled above)
        raise ConfigError(f"unknown genre map {gm!r}")
    mapping = read_genre_map(genre_map)
    return _Canon(f"file:{Path(genre_map).name}", {g.casefold(): g for g in mapping}, mapping,
                  source=str(genre_map))


def _vocabulary(rows: list[LabelRow], targets: list[str], canon: _Canon) -> Vocabulary:
    found = sort_classes(r.genre for r in rows if r.genre)
    if canon.genre_map == "lab":
        mapping = {g: CLASS_MAPPING[g] for g in found}
        classes = CLASSES
    elif canon.mapping is None:
        mapping = {g: g for g in found}
        classes = found
    else:
        mapping = dict(canon.mapping)
        classes = sort_classes(c for c in mapping.values() if c is not None)
    values = {t: [r.targets[t] for r in rows if t in r.targets] for t in targets}
    return Vocabulary(
        classes=classes if found else (), targets=tuple(targets),
        kinds={t: target_kind(values[t]) for t in targets},
        ranges={t: (min(values[t]), max(values[t])) for t in targets if values[t]},
        mapping=mapping, genre_map=canon.genre_map, source="labels.json",
        groups={"file": CLIPS_FILE, "id": "id", "group": "group"})


def _parse_row(rec: dict[str, str], path: Path, lineno: int, *, targets: list[str],
               canon: _Canon) -> LabelRow:
    file = rec["file"].replace("\\", "/")
    if not file:
        raise DataError("empty 'file' value: give the audio path relative to the audio "
                        "folder", path=path, line=lineno)
    norm = posixpath.normpath(file)
    if file.startswith("/") or PureWindowsPath(file).drive or norm == ".." or \
            norm.startswith("../"):
        raise DataError(f"file {file!r} is outside the audio folder: 'file' paths must stay "
                        "inside AUDIO_DIR (no leading '/' or '..'); move the file there or "
                        "give a parent AUDIO_DIR", path=path, line=lineno)
    genre = None
    if rec.get("genre"):
        genre = canon.names.get(rec["genre"].casefold())
        if genre is None:
            if canon.genre_map == "lab":
                raise DataError(f"unknown genre {rec['genre']!r}: with the lab's genre map "
                                f"use one of {', '.join(GENRES20)} (or --genre-map none to "
                                "keep your own names)", path=path, line=lineno)
            raise DataError(f"genre {rec['genre']!r} is not in the genre map "
                            f"{canon.source}: add it there", path=path, line=lineno)
        if any(c in genre for c in "\t\r\n"):
            raise DataError(f"genre {genre!r} holds a tab or line break, which the label "
                            "files cannot store", path=path, line=lineno)
    given = {t: rec[t] for t in targets if rec.get(t)}
    if given and len(given) != len(targets):
        missing = [t for t in targets if t not in given]
        raise DataError(f"only some targets are given ({', '.join(missing)} missing): "
                        f"give all of {', '.join(targets)} or none", path=path, line=lineno)
    values: dict[str, float] = {}
    for name, text in given.items():
        try:
            value = float(text)
        except ValueError:
            raise DataError(f"column {name!r} holds {text!r}, which is not a number: every "
                            f"column besides {', '.join(LABEL_COLUMNS)} is a numeric target; "
                            "remove the column or fix the value", path=path,
                            line=lineno) from None
        if not math.isfinite(value):
            raise DataError(f"{name} = {text} is not a finite number", path=path, line=lineno)
        values[name] = value
    targets_ = values
    split = rec.get("split", "").lower() or None
    if split is not None and split not in SPLITS:
        raise DataError(f"unknown split {rec['split']!r}: use train, test or leave it empty",
                        path=path, line=lineno)
    if split == "train" and genre is None and not targets_:
        raise DataError("a training clip needs labels (genre or targets): add them or set "
                        "split to test", path=path, line=lineno)
    return LabelRow(file=file, line=lineno, genre=genre, targets=targets_, split=split,
                    group=rec.get("group") or None)


# ---------------------------------------------------------------------------------------
# split


# ---------------------------------------------------------------------------------------
# segments


def audio_seconds(path: str | os.PathLike) -> float:
    """Duration of an audio file in seconds, from its header where the format allows."""
    import warnings

    import librosa

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(librosa.get_duration(path=os.fspath(path)))


def segment_rows(rows: Sequence[LabelRow], audio_dir: str | os.PathLike, segment: float
                 ) -> tuple[list[LabelRow], list[tuple[str, str]]]:
    """One row per consecutive ``segment``-second clip of each row's file.

    A rest shorter than ``segment`` is dropped; a file shorter than one segment stays one
    clip. Every clip keeps its row's labels and split, and its group (the row's, or the file
    when the row has none). Returns the rows and ``(file, reason)`` for files whose duration
    cannot be read (missing files are left to the build, which reports them).
    """
    out: list[LabelRow] = []
    errors: list[tuple[str, str]] = []
    for row in rows:
        source = Path(audio_dir) / row.file
        group = row.group if row.group is not None else row.file
        if not source.is_file():
            out.append(replace(row, group=group))
            continue
        try:
            total = audio_seconds(source)
        except Exception as err:  # any decoder error: report the file and go on
            errors.append((row.file, f"cannot read the duration ({type(err).__name__}: "
                                     f"{err}): the file is corrupt or in an unknown format"))
            continue
        n = max(1, int(math.floor(total / segment + 1e-9)))
        for k in range(n):
            out.append(replace(row, group=group, start=round(k * segment, 6),
                               seconds=segment if total >= segment else None))
    return out, errors


# ---------------------------------------------------------------------------------------
# work items


@dataclass(frozen=True)
class _Task:
    id: int
    source: str
    dests: dict[str, tuple[str, ...]]  # rate -> destination paths
    start: float | None = None
    seconds: float | None = None


def _init_worker() -> None:
    """One BLAS/OpenMP/numba thread per worker process (the pool gives the parallelism)."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                "NUMBA_NUM_THREADS"):
        os.environ[var] = "1"
    from threadpoolctl import threadpool_limits

    global _THREAD_LIMITS
    _THREAD_LIMITS = threadpool_limits(limits=1)


_THREAD_LIMITS: Any = None


def _save_atomic(path: Path, a: np.ndarray) -> None:
    with atomic_open(path) as f:
        np.save(f, a)


def _run_task(task: _Task, params: dict[str, Any]) -> tuple[int, str | None, dict[str, Any]]:
    """Extract one clip and write it to all its destinations. Returns (id, error, info)."""
    try:
        out = extract_file(task.source, params=FeatureParams.from_dict(params),
                           offset=task.start or 0.0, duration=task.seconds)
    except DataError as err:
        return task.id, str(err).removeprefix(f"{task.source}: "), {}
    except Exception as err:  # one file must never stop the batch: report it and go on
        log.debug("feature extraction failed for %s", task.source, exc_info=True)
        return task.id, f"feature extraction failed ({type(err).__name__}: {err})", {}
    for rate, paths in task.dests.items():
        for p in paths:
            _save_atomic(Path(p), out[rate])
    return task.id, None, out["info"]


# ---------------------------------------------------------------------------------------
# the build


def build_dataset(audio_dir: str | os.PathLike, out: str | os.PathLike, *,
                  labels_csv: str | os.PathLike, test_fraction: float = 0.2, seed: int = 0,
                  jobs: int | None = None, clip_seconds: float = 30.0,
                  length_rule: str = "crop", resume: bool = True,
                  params: FeatureParams | None = None, progress: bool | None = None,
                  genre_map: str | os.PathLike = "auto", segment: float | None = None
                  ) -> BuildReport:
    """Extract the dataset's features from a folder of audio files into the Kaggle layout.

    Parameters
    ----------
    audio_dir : str or os.PathLike
        Folder the ``file`` column of the labels CSV is relative to.
    out : str or os.PathLike
        Data root to write (created); it then loads with :mod:`musicaffect.data`.
    labels_csv : str or os.PathLike
        See :func:`read_labels`.
    test_fraction : float in [0, 1)
        Share of the clips (per genre) put in the test split when ``split`` is not given.
    seed : int
        Seed of the split.
    jobs : int or None
        Worker processes (None: ``os.cpu_count()``; 1: in this process).
    clip_seconds : float
        Clip length of the length rule.
    length_rule : {"crop", "pad", "keep"}
        See :func:`musicaffect.features.audio.apply_length_rule`.
    resume : bool
        Skip clips already built with the same parameters (False: recompute all).
    params : FeatureParams, optional
        Other feature parameters (``clip_seconds`` and ``length_rule`` above win).
    progress : bool or None
        Show a progress bar (None: only on a terminal).
    genre_map : {"auto", "lab", "none"} or path
        How genre names become classes (see the module docstring); recorded in
        ``labels.json``.
    segment : float, optional
        Cut every file into consecutive clips of this many seconds (``clip_seconds`` is
        then ``segment``).

    Returns
    -------
    report : BuildReport

    Raises
    ------
    DataError
        Missing audio folder, bad labels CSV (see :func:`read_labels`), or ``out`` holding
        a dataset that this function did not build.
    """
    t0 = time.perf_counter()
    audio_dir, out = Path(audio_dir), Path(out)
    if not audio_dir.is_dir():
        raise DataError("audio folder does not exist: give the folder the labels CSV's "
                        "'file' paths are relative to", path=audio_dir)
    if segment is not None:
        if not segment > 0:
            raise ConfigError(f"segment must be a positive number of seconds, got {segment}")
        clip_seconds = float(segment)
    params = params or FeatureParams()
    extra = {}
    if segment is not None and params.min_seconds > segment:
        extra["min_seconds"] = float(segment)   # one segment is long enough
    params = replace(params, clip_seconds=clip_seconds, length_rule=length_rule, **extra)
    rows, vocab = read_label_table(labels_csv, genre_map=genre_map)
    probe_errors: list[tuple[str, str]] = []
    if segment is not None:
        rows, probe_errors = segment_rows(rows, audio_dir, float(segment))
    splits = assign_splits(rows, test_fraction=test_fraction, seed=seed)
    _check_out(out)
    params_file = out / PARAMS_FILE
    same_params = _same_params(params_file, params)
    if resume and not same_params and params_file.exists():
        log.warning("%s: built with other feature parameters; rebuilding every clip",
                    params_file)
    if not same_params:
        _remove_own_clips(out, keep=set())
    resume = resume and same_params
    out.mkdir(parents=True, exist_ok=True)
    params.write(params_file)
    _remove_temps(out)

    ids = _assign_ids([r.key for r in rows], out / CLIPS_FILE if resume else None)
    built_from = _read_sources(out / SOURCES_FILE) if resume else {}
    report = BuildReport(out=out, params_file=params_file)
    report.errors.extend(probe_errors)
    planned: set[Path] = set()
    tasks: list[_Task] = []
    status: dict[int, str] = {}
    for row, split in zip(rows, splits):
        cid = ids[row.key]
        dests = {rate: tuple(out / FOLDERS[ds, rate] / split / f"{cid}{CLIP_SUFFIX}"
                             for ds in row.datasets) for rate in RATES}
        planned.update(p for ps in dests.values() for p in ps)
        source = audio_dir / row.file
        if not source.is_file():
            report.errors.append((row.file, "file not found: check the path in the labels "
                                            f"CSV (line {row.line}), relative to {audio_dir}"))
            status[cid] = "failed"
        elif resume and built_from.get(row.file, _stamp(source)) != _stamp(source):
            log.info("%s: the audio file changed since it was built: computing it again",
                     row.file)
            tasks.append(_Task(cid, os.fspath(source),
                               {rate: tuple(map(os.fspath, ps)) for rate, ps in dests.items()},
                               row.start, row.seconds))
        elif resume and _reuse(dests, out, cid):
            status[cid] = "ok"
            report.skipped += 1
        else:
            tasks.append(_Task(cid, os.fspath(source),
                               {rate: tuple(map(os.fspath, ps)) for rate, ps in dests.items()},
                               row.start, row.seconds))
    for ds in {ds for row in rows for ds in row.datasets}:
        for rate in RATES:
            for split in SPLITS:
                (out / FOLDERS[ds, rate] / split).mkdir(parents=True, exist_ok=True)
    _remove_own_clips(out, keep=planned)

    file_of = {ids[r.key]: r.key for r in rows}
    for cid, err, info in _run_all(tasks, params, jobs=jobs, progress=progress):
        if err is None:
            status[cid] = "ok"
            report.done += 1
            report.beat_fallbacks += bool(info.get("beat_fallback"))
        else:
            status[cid] = "failed"
            report.errors.append((file_of[cid], err))
    report.failed = len(report.errors)

    ok_rows = [(r, s) for r, s in zip(rows, splits) if status.get(ids[r.key]) == "ok"]
    _write_label_files(out, ok_rows, ids, {ds for r in rows for ds in r.datasets}, vocab)
    for row, split in ok_rows:
        for ds in row.datasets:
            key = f"{ds}/{split}"
            report.counts[key] = report.counts.get(key, 0) + 1
    report.clips_file = _write_clips(out / CLIPS_FILE, rows, splits, ids, status, vocab)
    report.errors_file = _write_errors(out / ERRORS_FILE, report.errors)
    _write_text_atomic(out / SOURCES_FILE, json.dumps(
        {r.file: _stamp(audio_dir / r.file) for r, _ in ok_rows}, indent=0) + "\n")
    report.labels_file = vocab.write(out)
    report.vocab = vocab
    report.seconds = time.perf_counter() - t0
    log.info("%s", report.summary())
    return report


def _run_all(tasks: list[_Task], params: FeatureParams, *, jobs: int | None,
             progress: bool | None) -> Iterable[tuple[int, str | None, dict[str, Any]]]:
    """Run the tasks (in a process pool when jobs > 1), yielding results as they finish."""
    if not tasks:
        return
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(tasks)))
    p = params.to_dict()
    bar = tqdm(total=len(tasks), desc="build-dataset", unit="clip",
               disable=None if progress is None else not progress)
    with bar:
        if jobs == 1:
            for task in tasks:
                yield _run_task(task, p)
                bar.update()
            return
        warm_up()  # forked workers inherit librosa's compiled code instead of compiling it
        with ProcessPoolExecutor(max_workers=jobs, initializer=_init_worker) as pool:
            futures = {pool.submit(_run_task, t, p): t for t in tasks}
            for fut in as_completed(futures):
                task = futures[fut]
                try:
                    result = fut.result()
                except BrokenProcessPool as err:
                    result = (task.id, f"worker process died ({err}): the file may be too "
                                       "large for memory; retry with --jobs 1", {})
                bar.update()
                yield result


def _check_out(out: Path) -> None:
    from musicaffect.paths import check_output_dir

    check_output_dir(out, what="dataset folder")
    if not out.exists():
        return
    if not out.is_dir():
        raise DataError("output is not a folder: choose a folder to write the dataset to",
                        path=out)
    ours = (out / PARAMS_FILE).exists() or (out / CLIPS_FILE).exists()
    if not ours and any((out / f).exists() for f in FOLDERS.values()):
        raise DataError("output holds a dataset that build-dataset did not write: choose an "
                        "empty or new folder (nothing was changed)", path=out)


def _same_params(params_file: Path, params: FeatureParams) -> bool:
    if not params_file.is_file():
        return False
    try:
        return FeatureParams.read(params_file) == params
    except (DataError, ConfigError, TypeError):
        return False


def _own_dirs(out: Path) -> Iterable[Path]:
    for folder in FOLDERS.values():
        for split in SPLITS:
            d = out / folder / split
            if d.is_dir():
                yield d


def _remove_own_clips(out: Path, *, keep: set[Path]) -> None:
    """Remove clip files written by an earlier build that this build does not plan."""
    removed = 0
    for d in _own_dirs(out):
        for p in d.iterdir():
            if _OWN_CLIP.match(p.name) and p not in keep:
                p.unlink()
                removed += 1
    if removed:
        log.info("%s: removed %d clip files of an earlier build", out, removed)


def _remove_temps(out: Path) -> None:
    for d in _own_dirs(out):
        for p in d.glob(".*.tmp"):
            p.unlink(missing_ok=True)


def _stamp(path: Path) -> list[int] | None:
    """``[size, mtime_ns]`` of an audio file (None when it cannot be read)."""
    try:
        st = Path(path).stat()
    except OSError:
        return None
    return [int(st.st_size), int(st.st_mtime_ns)]


def _read_sources(path: Path) -> dict[str, list[int]]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _reuse(dests: dict[str, tuple[Path, ...]], out: Path, cid: int) -> bool:
    """True when all destinations exist, filling missing ones from an earlier build's copy
    of the same clip (split or label change)."""
    for rate, paths in dests.items():
        missing = [p for p in paths if not p.is_file()]
        if not missing:
            continue
        name = f"{cid}{CLIP_SUFFIX}"
        sources = [out / FOLDERS[ds, rate] / s / name for ds in ("genre", "multitask")
                   for s in SPLITS]
        found = next((s for s in sources if s.is_file()), None)
        if found is None:
            return False
        for p in missing:
            with open(found, "rb") as src, atomic_open(p) as dst:
                shutil.copyfileobj(src, dst)
    return True


def _assign_ids(files: Sequence[str], clips_file: Path | None) -> dict[str, int]:
    """Integer ids in sorted file order, keeping the ids of an earlier build's clips."""
    old: dict[str, int] = {}
    if clips_file is not None and clips_file.is_file():
        with open(clips_file, newline="", encoding="utf-8") as f:
            for rec in csv.DictReader(f):
                if rec.get("id", "").isdigit() and rec.get("file"):
                    start = rec.get("start") or ""
                    old[rec["file"] + (f"@{start}" if start else "")] = int(rec["id"])
    ids = {f: old[f] for f in files if f in old}
    next_id = max(old.values(), default=-1) + 1
    for f in sorted(files):
        if f not in ids:
            ids[f] = next_id
            next_id += 1
    return ids


def _write_text_atomic(path: Path, text: str) -> Path:
    return atomic_write(path, text)


def _fmt(v: float) -> str:
    return f"{v:.10g}"


def _write_label_files(out: Path, ok_rows: list[tuple[LabelRow, str]], ids: dict[str, int],
                       datasets: set[str], vocab: Vocabulary) -> None:
    ordered = sorted(ok_rows, key=lambda rs: ids[rs[0].key])
    if "genre" in datasets:
        for rate in RATES:
            for split in SPLITS:
                lines = ["Id\tGenre"] + [f"{genre_label_name(str(ids[r.key]), rate, split)}"
                                         f"\t{r.genre}"
                                         for r, s in ordered if r.genre and s == split]
                _write_text_atomic(out / FOLDERS["genre", rate] / label_file_name(split),
                                   "\n".join(lines) + "\n")
    if "multitask" in datasets:
        lines = [",".join(("Id",) + vocab.targets)] + [
            ",".join([str(ids[r.key])] + [_fmt(r.targets[t]) for t in vocab.targets])
            for r, s in ordered if r.targets and s == "train"]
        for rate in RATES:
            _write_text_atomic(out / FOLDERS["multitask", rate] / label_file_name("train"),
                               "\n".join(lines) + "\n")


def _write_clips(path: Path, rows: Sequence[LabelRow], splits: Sequence[str],
                 ids: dict[str, int], status: dict[int, str], vocab: Vocabulary) -> Path:
    header = ["id", "file", "start", "split", "group", "genre", *vocab.targets, "datasets",
              "status"]
    lines = [",".join(header)]
    for row, split in sorted(zip(rows, splits), key=lambda rs: ids[rs[0].key]):
        cid = ids[row.key]
        fields_ = [str(cid), row.file, "" if row.start is None else f"{row.start:g}", split,
                   row.group or "", row.genre or "",
                   *(_fmt(row.targets[t]) if row.targets else "" for t in vocab.targets),
                   "+".join(row.datasets), status.get(cid, "failed")]
        lines.append(_csv_line(fields_))
    return _write_text_atomic(path, "\n".join(lines) + "\n")


def _write_errors(path: Path, errors: list[tuple[str, str]]) -> Path:
    lines = ["file,reason"] + [_csv_line([f, r]) for f, r in sorted(errors)]
    return _write_text_atomic(path, "\n".join(lines) + "\n")


def _csv_line(fields_: Sequence[str]) -> str:
    return ",".join(f'"{f.replace(chr(34), chr(34) * 2)}"' if any(c in f for c in ',"\n')
                    else f for f in fields_)
