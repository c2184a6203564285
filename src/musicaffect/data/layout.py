"""The Kaggle dataset's folder layout and label files, read into a list of clip records.

Label files list file names that do not match the files on disk (``.fused.full``,
``.full.fused``, ``.beatsync.fused``; ``.npy.gz`` vs ``.npy``), so clips are matched by id:
the file name up to its first dot. On disk both ``<id>*.npy`` and ``<id>*.npy.gz`` are
accepted.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from musicaffect.data.labels import TARGETS
from musicaffect.data.vocab import Vocabulary, load_vocabulary
from musicaffect.errors import ConfigError, DataError

log = logging.getLogger(__name__)

#: (dataset, rate) -> folder name under the data root
FOLDERS: dict[tuple[str, str], str] = {
    ("genre", "full"): "fma_genre_spectrograms",
    ("genre", "beat"): "fma_genre_spectrograms_beat",
    ("multitask", "full"): "multitask_dataset",
    ("multitask", "beat"): "multitask_dataset_beat",
}
DATASETS: tuple[str, ...] = ("genre", "multitask")
RATES: tuple[str, ...] = ("full", "beat")
SPLITS: tuple[str, ...] = ("train", "test")
#: file at the data root that marks generated (not real) data
SYNTHETIC_MARKER = "SYNTHETIC.txt"
#: suffixes of clip files on disk
CLIP_SUFFIXES: tuple[str, ...] = (".npy", ".npy.gz")

#: the file name a genre label file lists for clip ``<id>``: ``<id>`` + this suffix, by
#: (rate, split). The Kaggle release's variants, which do not match the files on disk
#: (``<id>.fused.full.npy``); clips are matched by id (:func:`clip_id`), so any works.
GENRE_LABEL_SUFFIX: dict[tuple[str, str], str] = {
    ("full", "train"): ".fused.full.npy.gz",
    ("full", "test"): ".full.fused.npy.gz",
    ("beat", "train"): ".beatsync.fused.npy.gz",
    ("beat", "test"): ".beatsync.fused.npy.gz",
}

GENRE_HEADER = ("Id", "Genre")
MULTITASK_HEADER = ("Id",) + TARGETS

_HINT_ROOT = ("point it at the folder holding fma_genre_spectrograms/ and multitask_dataset/ "
              "(download the Kaggle dataset 'patreco3-multitask-affective-music', or write "
              "synthetic data with `musicaffect sample-data OUT`)")
_HINT_SKIP = "fix or remove the row, or pass --skip-bad (skip_bad=True) to skip it"


@dataclass(frozen=True)
class ClipRecord:
    """One clip: where it is and its labels.

    ``genre20`` is the raw genre of the label file (an FMA genre on the Kaggle data),
    ``genre10`` its class under the root's genre mapping (the lab's 10 classes by default;
    None when dropped or for multitask clips); ``targets`` maps regression target names to
    values (in [0, 1] on the Kaggle data; empty when unlabelled).
    """

    id: str
    path: Path
    split: str
    genre20: str | None = None
    genre10: str | None = None
    targets: dict[str, float] = field(default_factory=dict)


def folder_name(dataset: str, rate: str) -> str:
    """Folder name of a (dataset, rate) pair, e.g. ``("genre", "beat")`` ->
    ``"fma_genre_spectrograms_beat"``."""
    try:
        return FOLDERS[dataset, rate]
    except KeyError:
        raise ConfigError(f"unknown dataset/rate {dataset!r}/{rate!r}: dataset is one of "
                          f"{DATASETS}, rate one of {RATES}") from None


def label_file_name(split: str) -> str:
    """The label file of a split inside a dataset folder: ``train_labels.txt`` /
    ``test_labels.txt`` (the multitask folders have only ``train_labels.txt``)."""
    return f"{split}_labels.txt"


def genre_label_name(cid: str, rate: str, split: str) -> str:
    """The name a genre label file lists for clip ``cid`` (:data:`GENRE_LABEL_SUFFIX`)."""
    return f"{cid}{GENRE_LABEL_SUFFIX[rate, split]}"


def clip_id(name: str) -> str:
    """Clip id of a file name: everything before the first dot (``"123.fused.full.npy"`` ->
    ``"123"``)."""
    return name.split(".", 1)[0]


def is_synthetic(root: str | os.PathLike) -> bool:
    """True when ``root`` was written by the sample-data generator (has ``SYNTHETIC.txt``)."""
    return (Path(root) / SYNTHETIC_MARKER).is_file()


def split_dir(root: str | os.PathLike, *, dataset: str = "genre", rate: str = "full",
              split: str = "train") -> Path:
    """The folder holding one split's clip files; raises DataError if it is missing."""
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}: use one of {SPLITS}")
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"data root does not exist: {_HINT_ROOT}", path=root)
    folder = root / folder_name(dataset, rate)
    if not folder.is_dir():
        raise DataError(f"dataset folder is missing under the data root: {_HINT_ROOT}",
                        path=folder)
    d = folder / split
    if not d.is_dir():
        raise DataError(f"split folder is missing: expected {folder.name}/{split}/ with one "
                        "file per clip (restore it from the dataset download)", path=d)
    return d


def list_clip_files(directory: str | os.PathLike) -> dict[str, Path]:
    """Clip files of a folder by id (``.npy`` preferred over ``.npy.gz`` when both exist)."""
    found: dict[str, Path] = {}
    with os.scandir(directory) as it:
        for entry in it:
            name = entry.name
            if not entry.is_file() or not name.endswith(CLIP_SUFFIXES):
                continue
            cid = clip_id(name)
            if cid in found and found[cid].name.endswith(".npy") and name.endswith(".gz"):
                continue
            found[cid] = Path(entry.path)
    return found


def write_skipped(skipped: list[tuple[str, str]], path: str | os.PathLike) -> Path:
    """Write the (path, reason) pairs collected with ``skip_bad=True`` as a TSV file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["path\treason"] + [f"{p}\t{r}" for p, r in skipped]
    path.write_text("\n".join(lines) + "\n")
    return path


def _read_lines(label_file: Path) -> list[str]:
    if not label_file.is_file():
        raise DataError("label file is missing: restore it from the dataset download "
                        "(the clips of this split cannot be labelled without it)",
                        path=label_file)
    try:
        return label_file.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"cannot read label file ({err}): restore it from the dataset "
                        "download", path=label_file) from err


def _check_header(lines: list[str], expected: tuple[str, ...], sep: str,
                  label_file: Path) -> None:
    got = tuple(f.strip() for f in lines[0].split(sep)) if lines else ()
    if got != expected:
        shown = "<TAB>".join(expected) if sep == "\t" else sep.join(expected)
        raise DataError(f"malformed header {lines[0] if lines else '<empty file>'!r}: "
                        f"expected {shown!r}; is this the right label file?",
                        path=label_file, line=1)


class _Collector:
    """Raises row errors, or logs and collects them when skipping bad input."""

    def __init__(self, skip_bad: bool, skipped: list[tuple[str, str]] | None):
        self.skip_bad = skip_bad
        self.skipped = skipped if skipped is not None else []

    def bad(self, err: DataError) -> None:
        if not self.skip_bad:
            raise err
        log.warning("skipped: %s", err)
        self.skipped.append((err.path or "", str(err)))


def _listed_once_with_file(cid: str, seen: set[str], files: dict[str, Path], label_file: Path,
                           split: str, lineno: int, bad: _Collector) -> bool:
    """True (and ``cid`` marked seen) when a label row's clip is new and has a file on disk;
    otherwise the problem goes to ``bad``."""
    if cid in seen:
        bad.bad(DataError(f"clip {cid!r} is listed twice; " + _HINT_SKIP,
                          path=label_file, line=lineno))
        return False
    if cid not in files:
        bad.bad(DataError(f"clip {cid!r} has no file {cid}.*.npy or .npy.gz in "
                          f"{label_file.parent.name}/{split}/; restore the file or "
                          + _HINT_SKIP, path=label_file, line=lineno))
        return False
    seen.add(cid)
    return True


def _genre_records(label_file: Path, files: dict[str, Path], split: str, *, mapped: bool,
                   bad: _Collector, vocab: Vocabulary) -> list[ClipRecord]:
    lines = _read_lines(label_file)
    _check_header(lines, GENRE_HEADER, "\t", label_file)
    records: list[ClipRecord] = []
    seen: set[str] = set()
    for lineno, raw in enumerate(lines[1:], start=2):
        if not raw.strip():
            continue
        fields = raw.rstrip("\r\n").split("\t")
        if len(fields) != 2 or not fields[0].strip() or not fields[1].strip():
            bad.bad(DataError(f"malformed row {raw!r}: expected '<file name><TAB><genre>'; "
                              + _HINT_SKIP, path=label_file, line=lineno))
            continue
        cid, genre = clip_id(fields[0].strip()), fields[1].strip()
        if genre not in vocab.mapping:
            hint = ("; map it with data.genre_map=none or a mapping file (build-dataset "
                    "--genre-map)" if vocab.genre_map == "lab" else "")
            bad.bad(DataError(f"unknown genre {genre!r} (known: {', '.join(vocab.genres)})"
                              f"{hint}; " + _HINT_SKIP, path=label_file, line=lineno))
            continue
        if not _listed_once_with_file(cid, seen, files, label_file, split, lineno, bad):
            continue
        genre10 = vocab.mapping[genre]
        if mapped and genre10 is None:
            continue
        records.append(ClipRecord(cid, files[cid], split, genre, genre10))
    return records


def _parse_target(text: str, name: str, label_file: Path, lineno: int, *,
                  unit: bool = True) -> float:
    text = text.strip()
    if not text:
        raise DataError(f"{name} is missing; " + _HINT_SKIP, path=label_file, line=lineno)
    try:
        value = float(text)
    except ValueError:
        raise DataError(f"{name} {text!r} is not a number; " + _HINT_SKIP,
                        path=label_file, line=lineno) from None
    if math.isnan(value):
        raise DataError(f"{name} is NaN; " + _HINT_SKIP, path=label_file, line=lineno)
    if unit and not 0.0 <= value <= 1.0:
        raise DataError(f"{name} = {value} is outside [0, 1]; " + _HINT_SKIP,
                        path=label_file, line=lineno)
    return value


def _multitask_records(label_file: Path, files: dict[str, Path], split: str,
                       bad: _Collector, vocab: Vocabulary) -> list[ClipRecord]:
    lines = _read_lines(label_file)
    header = ("Id",) + tuple(vocab.targets)
    _check_header(lines, header, ",", label_file)
    unit = vocab.source == "kaggle"   # the Kaggle labels are in [0, 1]; others any real
    records: list[ClipRecord] = []
    seen: set[str] = set()
    for lineno, raw in enumerate(lines[1:], start=2):
        if not raw.strip():
            continue
        fields = raw.rstrip("\r\n").split(",")
        if len(fields) != len(header) or not fields[0].strip():
            bad.bad(DataError(f"malformed row {raw!r}: expected "
                              f"'{','.join(header)}' fields; " + _HINT_SKIP,
                              path=label_file, line=lineno))
            continue
        cid = clip_id(fields[0].strip())
        try:
            targets = {name: _parse_target(text, name, label_file, lineno, unit=unit)
                       for name, text in zip(vocab.targets, fields[1:])}
        except DataError as err:
            bad.bad(err)
            continue
        if not _listed_once_with_file(cid, seen, files, label_file, split, lineno, bad):
            continue
        records.append(ClipRecord(cid, files[cid], split, targets=targets))
    return records


def genre_labels_by_id(root: str | os.PathLike, *, rate: str = "full", split: str = "train",
                       skip_bad: bool = False, vocab: Vocabulary | None = None
                       ) -> dict[str, str]:
    """Clip id -> raw genre of the genre folder's label file (empty when the folder or
    file is missing); for joining genre labels onto the clips of the multitask folder of a
    root made by ``build-dataset``, where one clip has one id in both folders."""
    folder = Path(root) / folder_name("genre", rate)
    if not (folder / split).is_dir() or not (folder / label_file_name(split)).is_file():
        return {}
    recs = index_clips(root, dataset="genre", rate=rate, split=split, skip_bad=skip_bad,
                       mapped=False, vocab=vocab)
    return {r.id: r.genre20 for r in recs if r.genre20}


def _id_key(cid: str) -> tuple[int, int | str]:
    return (0, int(cid)) if cid.isdigit() else (1, cid)


def index_clips(root: str | os.PathLike, *, dataset: str = "genre", rate: str = "full",
                split: str = "train", skip_bad: bool = False, mapped: bool = True,
                skipped: list[tuple[str, str]] | None = None,
                vocab: Vocabulary | None = None) -> list[ClipRecord]:
    """List the clips of one folder and split with their labels.

    Parameters
    ----------
    root : str or os.PathLike
        Data root holding the four dataset folders.
    dataset : {"genre", "multitask"}
    rate : {"full", "beat"}
    split : {"train", "test"}
        The multitask test split has no labels: it is listed from its folder (sorted by id)
        and its records have empty ``targets``.
    skip_bad : bool
        Log and skip bad label rows instead of raising :class:`DataError`.
    mapped : bool
        Genre data only: drop the clips of the 5 genres the lab's mapping leaves out.
        With ``mapped=False`` every clip is kept and ``genre10`` is None for those.
    skipped : list, optional
        Receives a ``(path, reason)`` pair per skipped row (see :func:`write_skipped`).
    vocab : Vocabulary, optional
        The label vocabulary (default: the root's ``labels.json``, or the lab's 20 -> 10
        mapping and valence/energy/danceability when there is none; see
        :mod:`musicaffect.data.vocab`). ``genre10`` is then the mapped class.

    Returns
    -------
    records : list of ClipRecord
        In label-file order.

    Raises
    ------
    DataError
        Missing root, folder or label file, malformed header (always); malformed row,
        unknown genre, missing/NaN/out-of-range target, duplicate row, row whose clip file
        is missing (unless ``skip_bad``).
    """
    directory = split_dir(root, dataset=dataset, rate=rate, split=split)
    vocab = vocab if vocab is not None else load_vocabulary(root)
    files = list_clip_files(directory)
    bad = _Collector(skip_bad, skipped)
    if dataset == "genre":
        label_file = directory.parent / label_file_name(split)
        records = _genre_records(label_file, files, split, mapped=mapped, bad=bad, vocab=vocab)
    elif split == "train":
        records = _multitask_records(directory.parent / label_file_name("train"), files, split, bad,
                                     vocab)
    else:
        records = [ClipRecord(cid, files[cid], split) for cid in sorted(files, key=_id_key)]
    log.debug("%s/%s: %d clips indexed (%d files on disk)", directory.parent.name, split,
              len(records), len(files))
    return records
