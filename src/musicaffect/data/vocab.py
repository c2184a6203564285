"""The data root's own label vocabulary: genre classes, regression targets, their kinds, groups.

A data root written by ``build-dataset`` holds ``labels.json``::

    {"format": "musicaffect-labels/1",
     "genre_map": "none",                      # lab | none | file:<name>
     "genres": ["disco", "k-pop", ...],        # raw genre strings in the label files
     "mapping": {"disco": "disco", ...},       # raw genre -> class (null: clip dropped)
     "classes": ["disco", "k-pop", ...],       # class index order
     "targets": ["arousal", "valence"],        # regression targets, label-file column order
     "kinds": {"arousal": "binary", ...},      # binary (values in {0, 1}) | continuous
     "ranges": {"arousal": [0, 1], ...},       # smallest and largest label
     "groups": {"file": "clips.csv", "id": "id", "group": "group"}}

A root without ``labels.json`` (the Kaggle dataset, the synthetic sample) has the lab's
vocabulary: the 20 FMA genres mapped to 10 classes (:mod:`musicaffect.data.labels`) and the
targets valence, energy, danceability in [0, 1]. ``genre_map`` (``lab``, ``none`` or a mapping
file) overrides the mapping of any root.
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from musicaffect.data.labels import CLASS_MAPPING, CLASSES, GENRE_TASK, GENRES20, TARGETS
from musicaffect.errors import ConfigError, DataError
from musicaffect.tasks import TaskSpec, multiclass, target_spec

LABELS_FILE = "labels.json"
FORMAT = "musicaffect-labels/1"
KINDS: tuple[str, ...] = ("continuous", "binary")
#: names a regression target cannot take (CSV columns, model outputs, task words)
RESERVED: frozenset[str] = frozenset({"file", "genre", "split", "group", "id", "embedding",
                                      "all", "start"})
_TARGET_NAME = re.compile(r"^[a-z][a-z0-9_.\-]*$")
#: the genre_map values besides a mapping file
GENRE_MAPS: tuple[str, ...] = ("auto", "lab", "none")


def check_target_name(name: str, *, where: str | os.PathLike | None = None,
                      line: int | None = None) -> str:
    """A regression target name, lower-cased; raises DataError when it cannot be one."""
    key = name.strip().lower()
    if key in RESERVED or not _TARGET_NAME.match(key):
        raise DataError(f"{name!r} cannot name a regression target: use a word of letters, "
                        "digits, '_', '-' or '.' starting with a letter, other than "
                        f"{', '.join(sorted(RESERVED))}", path=where, line=line)
    return key


def target_kind(values: Iterable[float]) -> str:
    """``"binary"`` when every value is 0 or 1 (and both occur), else ``"continuous"``."""
    vals = set(float(v) for v in values)
    return "binary" if vals and vals <= {0.0, 1.0} and len(vals) == 2 else "continuous"


@dataclass(frozen=True)
class Vocabulary:
    """The labels of one data root (or of one trained model).

    Attributes
    ----------
    classes : tuple of str
        Genre classes in index order (empty: no genre labels).
    targets : tuple of str
        Regression targets in the label file's column order.
    kinds : dict
        Target -> ``"binary"`` or ``"continuous"``.
    ranges : dict
        Target -> ``(smallest, largest)`` label.
    mapping : dict
        Raw genre name (as in the label files) -> class, or None when the clip is dropped.
    genre_map : str
        ``"lab"``, ``"none"`` or ``"file:<name>"``: how ``mapping`` was made.
    source : str
        ``"kaggle"`` (no labels.json: the lab's vocabulary) or ``"labels.json"``.
    groups : dict or None
        Where the clips' groups live (``{"file", "id", "group"}``, relative to the root).
    """

    classes: tuple[str, ...] = CLASSES
    targets: tuple[str, ...] = TARGETS
    kinds: dict[str, str] = field(default_factory=lambda: {t: "continuous" for t in TARGETS})
    ranges: dict[str, tuple[float, float]] = field(
        default_factory=lambda: {t: (0.0, 1.0) for t in TARGETS})
    mapping: dict[str, str | None] = field(default_factory=lambda: dict(CLASS_MAPPING))
    genre_map: str = "lab"
    source: str = "kaggle"
    groups: dict[str, str] | None = None

    # ------------------------------------------------------------------ queries

    @property
    def genres(self) -> tuple[str, ...]:
        """The raw genre names the mapping knows."""
        return tuple(self.mapping)

    @property
    def is_lab(self) -> bool:
        """True for the Kaggle dataset's own vocabulary (where LAB.md's numbers apply)."""
        return (self.source == "kaggle" and self.genre_map == "lab"
                and tuple(self.classes) == CLASSES and tuple(self.targets) == TARGETS)

    def map_genre(self, raw: str) -> str | None:
        """Class of a raw genre (None: dropped); raises KeyError when the name is unknown."""
        return self.mapping[raw]

    def class_index(self, name: str) -> int:
        try:
            return self.classes.index(name)
        except ValueError:
            raise DataError(f"genre class {name!r} is not in this vocabulary "
                            f"({', '.join(self.classes)})") from None

    def kind(self, target: str) -> str:
        return self.kinds.get(target, "continuous")

    def binary_targets(self) -> list[str]:
        return [t for t in self.targets if self.kind(t) == "binary"]

    def resolve_tasks(self, spec: str | int | Iterable[str | int], *,
                      targets_only: bool = False) -> list[str]:
        """Task names of a selection: ``"genre"``, target names, ``"all"`` (every target),
        the lab's column indices 1-3 (label-file column order of this root's targets), a
        comma-separated string, or a sequence of these. The one parser of task selections.

        ``targets_only``: regression targets only (``"genre"`` is then unknown).
        Raises ConfigError naming the data's targets when a name is not among them.
        """
        if isinstance(spec, (str, int)):
            items: Sequence[str | int] = spec.split(",") if isinstance(spec, str) else [spec]
        else:
            items = list(spec)
        out: list[str] = []
        for item in items:
            key = item.strip().lower() if isinstance(item, str) else item
            if isinstance(key, str) and key.isdigit():
                key = int(key)
            if key == GENRE_TASK and not targets_only:
                if not self.classes:
                    raise ConfigError("this data root has no genre labels (its labels.json "
                                      "lists no classes): choose regression targets "
                                      f"({', '.join(self.targets) or 'none'})")
                names = [GENRE_TASK]
            elif key == "all":
                names = list(self.targets)
            elif isinstance(key, int):
                if not 1 <= key <= len(self.targets):
                    cols = ", ".join(f"{i} ({t})" for i, t in enumerate(self.targets, 1))
                    raise ConfigError(f"target column {key} does not exist: this data has "
                                      f"{len(self.targets)}; use {cols or 'none'}")
                names = [self.targets[key - 1]]
            elif key in self.targets:
                names = [key]
            elif targets_only:
                raise ConfigError(f"unknown regression target {item!r}: choose from "
                                  f"{', '.join(self.targets) or 'none'} (or column 1-"
                                  f"{len(self.targets)}; {self.describe_source()})")
            else:
                raise ConfigError(f"unknown task {item!r}: this data root's targets are "
                                  f"{', '.join(self.targets) or 'none'}"
                                  + (", and genre" if self.classes else "")
                                  + f" ({self.describe_source()})")
            out += [n for n in names if n not in out]
        if not out:
            raise ConfigError("no regression target given" if targets_only else
                              "no task given: use 'genre' or regression targets")
        return out

    def task_spec(self, task: str, *, bounded: bool = False,
                  binary_as_regression: bool = False) -> TaskSpec:
        """The :class:`~musicaffect.tasks.TaskSpec` of one task of this data: ``genre`` is
        multiclass over :attr:`classes`; a target whose labels are 0/1 is binary (BCE),
        other targets regression (``bounded``: sigmoid on the output).
        ``binary_as_regression``: binary targets as checkpoints written before the BCE change
        trained them (regression scored as detectors)."""
        if task == GENRE_TASK:
            if len(self.classes) < 2:
                raise DataError(f"the data root holds a single genre class "
                                f"({', '.join(self.classes) or 'none'}, {self.describe_source()})"
                                "; a genre classifier needs at least two: add clips of another "
                                "genre, or train an affect preset")
            return multiclass(GENRE_TASK, self.classes)
        if task not in self.targets:
            raise ConfigError(f"unknown task {task!r}: this data root's targets are "
                              f"{', '.join(self.targets) or 'none'} ({self.describe_source()})")
        return target_spec(task, self.kind(task), bounded=bounded,
                           binary_as_regression=binary_as_regression)

    def task_specs(self, tasks: Iterable[str], *, bounded: bool = False,
                   binary_as_regression: bool = False) -> dict[str, TaskSpec]:
        """:meth:`task_spec` of each task, in order."""
        return {t: self.task_spec(t, bounded=bounded, binary_as_regression=binary_as_regression)
                for t in tasks}

    def describe_source(self) -> str:
        return ("labels.json of the data root" if self.source == "labels.json"
                else "the Kaggle dataset's labels")

    # ------------------------------------------------------------------ (de)serialise

    def to_dict(self) -> dict[str, Any]:
        """Plain types (for labels.json and checkpoints)."""
        return {"format": FORMAT, "genre_map": self.genre_map, "source": self.source,
                "genres": list(self.mapping), "mapping": dict(self.mapping),
                "classes": list(self.classes), "targets": list(self.targets),
                "kinds": {t: self.kind(t) for t in self.targets},
                "ranges": {t: [float(a), float(b)] for t, (a, b) in self.ranges.items()},
                "groups": dict(self.groups) if self.groups else None}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, path: str | os.PathLike | None = None
                  ) -> Vocabulary:
        try:
            targets = tuple(str(t) for t in d.get("targets", ()))
            classes = tuple(str(c) for c in d.get("classes", ()))
            mapping = d.get("mapping")
            if mapping is None:
                mapping = {g: g for g in d.get("genres", classes)}
            mapping = {str(k): (None if v is None else str(v)) for k, v in mapping.items()}
            kinds = {t: str(d.get("kinds", {}).get(t, "continuous")) for t in targets}
            ranges = {t: (float(a), float(b)) for t, (a, b) in d.get("ranges", {}).items()}
            groups = d.get("groups") or None
        except (TypeError, ValueError, AttributeError) as err:
            raise DataError(f"malformed label vocabulary ({err}): rebuild the data root "
                            "with `musicaffect build-dataset`", path=path) from err
        bad = [k for k in kinds.values() if k not in KINDS]
        if bad:
            raise DataError(f"unknown label kind {bad[0]!r}: use one of {', '.join(KINDS)}",
                            path=path)
        missing = sorted({c for c in mapping.values() if c is not None} - set(classes))
        if missing:
            raise DataError(f"the genre mapping names classes {missing} that 'classes' does "
                            "not list; rebuild the data root", path=path)
        return cls(classes=classes, targets=targets, kinds=kinds, ranges=ranges,
                   mapping=mapping, genre_map=str(d.get("genre_map", "none")),
                   source=str(d.get("source", "labels.json")), groups=groups)

    def write(self, root: str | os.PathLike) -> Path:
        """Write ``labels.json`` into ``root`` (atomic)."""
        from musicaffect.io import atomic_write

        return atomic_write(Path(root) / LABELS_FILE,
                            json.dumps(self.to_dict(), indent=2, ensure_ascii=False) + "\n")

    def with_genre_map(self, genre_map: str | os.PathLike | None,
                       *, where: str | os.PathLike | None = None) -> Vocabulary:
        """The same vocabulary with another genre mapping (``auto``/None: unchanged)."""
        if genre_map is None or str(genre_map) == "auto":
            return self
        if str(genre_map) == "lab":
            return replace(self, mapping=dict(CLASS_MAPPING), classes=CLASSES, genre_map="lab")
        if str(genre_map) == "none":
            raw = [g for g in self.mapping] or list(GENRES20)
            return replace(self, mapping={g: g for g in raw}, classes=tuple(sorted(raw, key=_key)),
                           genre_map="none")
        mapping = read_genre_map(genre_map)
        classes = tuple(sorted({c for c in mapping.values() if c is not None}, key=_key))
        return replace(self, mapping=mapping, classes=classes,
                       genre_map=f"file:{Path(genre_map).name}")


def _key(name: str) -> tuple[str, str]:
    return (name.casefold(), name)


def sort_classes(names: Iterable[str]) -> tuple[str, ...]:
    """Class index order: case-insensitive alphabetical (the lab's rule)."""
    return tuple(sorted(set(names), key=_key))


def lab_vocabulary() -> Vocabulary:
    """The Kaggle dataset's vocabulary: 20 FMA genres -> 10 classes; valence, energy,
    danceability in [0, 1]."""
    return Vocabulary()


def resolve_targets(spec: str | int | Iterable[str | int]) -> list[str]:
    """Normalise a selection of the lab's regression targets to their names: a name
    (``"energy"``), the lab's column index (1 = valence, 2 = energy, 3 = danceability),
    ``"all"``, a comma-separated string, or a sequence of these
    (:meth:`Vocabulary.resolve_tasks` of the lab's vocabulary, targets only)."""
    return lab_vocabulary().resolve_tasks(spec, targets_only=True)


def read_genre_map(path: str | os.PathLike) -> dict[str, str | None]:
    """A genre mapping file: JSON ``{"raw": "class" or null}``, or a CSV with two columns
    ``genre,class`` (header optional; an empty class drops the genre's clips)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"genre map {str(path)!r} is neither 'lab', 'none', 'auto' nor an "
                          "existing file: give one of these (a file maps raw genre -> class, "
                          "as JSON or a two-column CSV)")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"cannot read the genre map ({err})", path=path) from err
    out: dict[str, str | None] = {}
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise DataError(f"not valid JSON ({err}): write {{\"raw genre\": \"class\"}}",
                            path=path) from err
        if not isinstance(data, dict):
            raise DataError("a JSON genre map is one object {\"raw genre\": \"class\"}",
                            path=path)
        items = [(str(k), None if v in (None, "") else str(v)) for k, v in data.items()]
        lines = [None] * len(items)
    else:
        rows = [r for r in csv.reader(text.splitlines())]
        items, lines = [], []
        for lineno, r in enumerate(rows, start=1):
            if not any(f.strip() for f in r):
                continue
            if len(r) != 2:
                raise DataError(f"expected two columns 'genre,class', got {len(r)}",
                                path=path, line=lineno)
            if lineno == 1 and [f.strip().lower() for f in r] == ["genre", "class"]:
                continue
            items.append((r[0].strip(), r[1].strip() or None))
            lines.append(lineno)
    for (raw, cls), lineno in zip(items, lines):
        if not raw:
            raise DataError("empty genre name", path=path, line=lineno)
        if raw in out:
            raise DataError(f"genre {raw!r} is mapped twice", path=path, line=lineno)
        _check_genre_name(cls or "", path, lineno)
        out[raw] = cls
    if not any(v is not None for v in out.values()):
        raise DataError("the genre map maps no genre to a class", path=path)
    return out


def _check_genre_name(name: str, path, line) -> None:
    if any(c in name for c in "\t\r\n"):
        raise DataError(f"genre {name!r} holds a tab or line break, which the label files "
                        "cannot store", path=path, line=line)


def load_vocabulary(root: str | os.PathLike, *, genre_map: str | os.PathLike | None = None
                    ) -> Vocabulary:
    """The vocabulary of a data root: its ``labels.json``, or the lab's when there is none;
    then ``genre_map`` (``auto``/None, ``lab``, ``none`` or a mapping file) applied."""
    path = Path(root) / LABELS_FILE
    if path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise DataError(f"cannot read the label vocabulary ({err}): rebuild the data root "
                            "with `musicaffect build-dataset`", path=path) from err
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise DataError(f"not a musicaffect label vocabulary (format {FORMAT} expected): "
                            "rebuild the data root with `musicaffect build-dataset`", path=path)
        vocab = Vocabulary.from_dict(data, path=path)
    else:
        vocab = lab_vocabulary()
    return vocab.with_genre_map(genre_map)


def vocabulary_of_checkpoint(ckpt: Mapping[str, Any]) -> Vocabulary:
    """The vocabulary a checkpoint was trained with (older checkpoints: the lab's)."""
    if isinstance(ckpt.get("vocab"), Mapping):
        return Vocabulary.from_dict(ckpt["vocab"], path=ckpt.get("path"))
    vocab = lab_vocabulary()
    classes = tuple(str(c) for c in ckpt.get("classes") or ())
    if classes and classes != vocab.classes:
        return replace(vocab, classes=classes, mapping={c: c for c in classes},
                       genre_map="none", source="checkpoint")
    return vocab


#: group files a user may put in a data root (``id,group`` columns), read when labels.json
#: names none; ``clips.csv`` is the one build-dataset writes
GROUP_FILES = ("groups.csv", "clips.csv")


def read_groups(data_root: str | os.PathLike) -> dict[str, str]:
    """Clip id -> group from the data root (``groups.csv`` or ``clips.csv`` with ``id`` and
    ``group`` columns); empty when the data has no groups. Empty group cells are ignored."""
    groups: dict[str, str] = {}
    for name in GROUP_FILES:
        path = Path(data_root) / name
        if not path.is_file():
            continue
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames or not {"id", "group"} <= set(reader.fieldnames):
                continue
            for row in reader:
                cid, g = (row.get("id") or "").strip(), (row.get("group") or "").strip()
                if cid and g:
                    groups.setdefault(cid, g)
    return groups


def load_groups(root: str | os.PathLike, vocab: Vocabulary | None = None) -> dict[str, str]:
    """Clip id -> group of a data root (empty when the root stores no groups): the group
    file named by labels.json, over the ``groups.csv`` / ``clips.csv`` groups
    (:func:`read_groups`). The train/validation split and the ``cv`` folds both read them here.

    Clips that labels.json's group file lists without a group get their source file (or
    their id) as group, so every listed clip has one.
    """
    vocab = vocab if vocab is not None else load_vocabulary(root)
    out = read_groups(root)
    if not vocab.groups:
        return out
    g = vocab.groups
    path = Path(root) / g.get("file", "clips.csv")
    if not path.is_file():
        raise DataError("the group file named by labels.json is missing: rebuild the data "
                        "root with `musicaffect build-dataset`", path=path)
    id_col, group_col = g.get("id", "id"), g.get("group", "group")
    with open(path, newline="", encoding="utf-8") as f:
        for rec in csv.DictReader(f):
            cid = (rec.get(id_col) or "").strip()
            if cid:
                out[cid] = (rec.get(group_col) or "").strip() or rec.get("file") or cid
    return out
