"""One rule for every output folder, and who owns a folder while it is used (issue 15).

The rule (the one ``train`` follows for its run folders, :mod:`musicaffect.training.rundir`):

- a command writes into a new or empty folder, or into a folder that the same kind of
  command made, recognised by its marker file ``.musicaffect-<kind>`` (written when the
  folder is claimed);
- everything else is refused, naming the files that would be overwritten; a folder of
  another kind (a run, a data root, a lab ...) is never written into;
- ``sample-data`` and ``build-dataset`` never write into a data root they did not make.

A folder in use is *held*: :func:`hold_folder` takes an OS lock (``fcntl.flock``) on
``<folder>/.musicaffect-lock`` and writes the holder (pid, command, start time) into it. The
lock goes with the process, so a killed process frees it; a second writer is refused and
told who holds the folder (:func:`check_not_held`). Within one process a held folder may be
taken again (the lab trains its runs in the process that holds the lab folder).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import yaml

from musicaffect.errors import OutputError, RunError
from musicaffect.paths import check_output_dir

#: marker file names are ``MARKER_PREFIX + kind``; a run folder's marker is ``.musicaffect-run``
MARKER_PREFIX = ".musicaffect-"
#: the marker of a run folder (training.rundir claims and replaces run folders)
MARKER = MARKER_PREFIX + "run"
LOCK_FILE = ".musicaffect-lock"

#: what each kind of folder is called in messages
KIND_NAMES = {
    "run": "run folder (`musicaffect train`)",
    "ensemble": "ensemble folder (`musicaffect ensemble`)",
    "lab": "lab folder (`musicaffect lab`)",
    "cv": "cross-validation folder (`musicaffect cv`)",
    "explore": "explore folder (`musicaffect explore`)",
    "evaluate": "evaluation folder (`musicaffect evaluate --out`)",
    "suite": "suite folder (`musicaffect suite`)",
    "sample-data": "sample data root (`musicaffect sample-data`)",
    "build-dataset": "data root (`musicaffect build-dataset`)",
    "data": "data root",
}

#: files or folders that make a folder a data root even without a marker (the Kaggle layout,
#: a build-dataset output)
DATA_ROOT_SIGNS = ("fma_genre_spectrograms", "fma_genre_spectrograms_beat",
                   "multitask_dataset", "multitask_dataset_beat", "feature_params.json")


def pid_alive(pid: int) -> bool:
    """True when process ``pid`` exists (or cannot be signalled: it belongs to someone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def marker_name(kind: str) -> str:
    return MARKER_PREFIX + kind


def is_run_dir(path: str | os.PathLike) -> bool:
    """True when ``path`` is a musicaffect run folder (marker, or config.yaml + checkpoints/)."""
    p = Path(path)
    if (p / MARKER).is_file():
        return True
    cfg, ckpts = p / "config.yaml", p / "checkpoints"
    if not (cfg.is_file() and ckpts.is_dir()):
        return False
    try:
        data = yaml.safe_load(cfg.read_text())
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return False
    return isinstance(data, dict) and {"data", "model", "train"} <= set(data)


def folder_kind(path: str | os.PathLike) -> str | None:
    """The kind of musicaffect folder ``path`` is (its marker; a run folder or data root
    without one is recognised by its files), or None."""
    p = Path(path)
    if not p.is_dir():
        return None
    for f in sorted(p.glob(MARKER_PREFIX + "*")):
        kind = f.name[len(MARKER_PREFIX):]
        if f.is_file() and kind in KIND_NAMES:
            return kind
    if is_run_dir(p):
        return "run"
    if (p / "ensemble.json").is_file():
        return "ensemble"
    if any((p / s).exists() for s in DATA_ROOT_SIGNS):
        return "data"
    return None


def _listing(p: Path, names, limit: int = 6) -> str:
    names = list(names)
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def is_empty_folder(path: str | os.PathLike) -> bool:
    """True for a folder holding nothing (or only a lock file left by a finished holder)."""
    p = Path(path)
    return p.is_dir() and not any(c.name != LOCK_FILE for c in p.iterdir())


def claim_output_dir(path: str | os.PathLike, kind: str, *, what: str | None = None,
                     writes: tuple[str, ...] = (),
                     legacy: Callable[[Path], bool] | None = None) -> Path:
    """:func:`check_output_folder`, then create ``path`` and mark it as ``kind``'s."""
    check_output_folder(path, kind, what=what, writes=writes, legacy=legacy)
    return mark_output_dir(path, kind)


@contextlib.contextmanager
def claiming(path: str | os.PathLike, kind: str, **kw) -> Iterator[Path]:
    """Check ``path`` (:func:`check_output_folder`), run the block, then mark the folder
    when the block made it (also after a failure, so a rerun may continue there); a
    command refused before it wrote anything leaves nothing behind."""
    p = check_output_folder(path, kind, **kw)
    try:
        yield p
    finally:
        if Path(p).is_dir() and not is_empty_folder(p):
            mark_output_dir(p, kind)


def mark_output_dir(path: str | os.PathLike, kind: str) -> Path:
    """Create ``path`` when missing and write its marker (after :func:`check_output_folder`)."""
    p = Path(path)
    marker = p / marker_name(kind)
    p.mkdir(parents=True, exist_ok=True)
    if not marker.is_file():
        marker.write_text(json.dumps({"kind": kind, "made": time.strftime("%Y-%m-%d %H:%M:%S"),
                                      "pid": os.getpid()}) + "\n")
    return p


def check_output_folder(path: str | os.PathLike, kind: str, *, what: str | None = None,
                        writes: tuple[str, ...] = (),
                        legacy: Callable[[Path], bool] | None = None) -> Path:
    """Check the rule of this module for ``path`` (writes nothing).

    ``writes`` are the fixed file
    names the command writes (named in the refusal); ``legacy(path)`` is True for a folder
    of this kind made before markers existed (it is then marked and used).

    Raises
    ------
    OutputError
        When ``path`` is a folder of another kind, or a non-empty folder that this kind of
        command did not make. Nothing is written then.
    """
    what = what or KIND_NAMES.get(kind, f"{kind} folder")
    check_output_dir(path, what=what)
    p = Path(path)
    marker = p / marker_name(kind)
    if p.is_dir() and not is_empty_folder(p):
        if marker.is_file():
            return p
        mine = legacy is not None and legacy(p) and not any(
            f.is_file() for f in p.glob(MARKER_PREFIX + "*") if f.name != LOCK_FILE)
        found = None if mine else folder_kind(p)
        clash = [f for f in writes if (p / f).exists()]
        if found is not None:
            named = f" (it would overwrite {_listing(p, clash)})" if clash else ""
            raise OutputError(
                f"{p}: is a {KIND_NAMES[found]}; the {what} is never written into it"
                f"{named}. Nothing was changed: give a new or empty folder")
        if not mine:
            present = sorted(c.name for c in p.iterdir())
            held = (f"it would overwrite {_listing(p, clash)}" if clash
                    else f"it holds {_listing(p, present)}")
            raise OutputError(
                f"{p}: folder exists and was not made by this command (no {marker.name}); "
                f"{held}. Nothing was changed: give a new or empty folder for the {what}")
    return p


# --------------------------------------------------------------------------- locks

#: folders this process holds: resolved path -> open lock file
_HELD: dict[str, object] = {}


def _command_line() -> str:
    return " ".join(["musicaffect", *sys.argv[1:]]) if sys.argv else "musicaffect"


def holder(path: str | os.PathLike) -> dict | None:
    """Who holds ``path`` now (pid, command, started), or None when nobody does."""
    import fcntl

    lock = Path(path) / LOCK_FILE
    key = str(Path(path).resolve())
    if key in _HELD or not lock.is_file():
        return None
    try:
        fd = os.open(lock, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                info = json.loads(lock.read_text() or "{}")
            except (OSError, ValueError):
                info = {}
            return info if isinstance(info, dict) else {}
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _held_message(path, info: dict) -> str:
    who = (f"pid {info.get('pid', '?')}, `{info.get('command', '?')}`, started "
           f"{info.get('started', '?')}")
    return (f"{path}: is in use by another musicaffect process ({who}); nothing was "
            "changed: wait for it to finish (or stop it), or give another folder")


def check_not_held(path: str | os.PathLike) -> None:
    """Raise :class:`RunError` when another live process holds ``path``."""
    info = holder(path)
    if info is not None:
        raise RunError(_held_message(path, info))


def hold_folder(path: str | os.PathLike) -> None:
    """Hold ``path`` (an existing folder) until this process ends or :func:`release_folder`.

    Raises :class:`RunError` naming the holder when another process holds it.
    """
    import fcntl

    p = Path(path)
    key = str(p.resolve())
    if key in _HELD:
        return
    fd = os.open(p / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        try:
            info = json.loads((p / LOCK_FILE).read_text() or "{}")
        except (OSError, ValueError):
            info = {}
        raise RunError(_held_message(path, info if isinstance(info, dict) else {})) from None
    text = json.dumps({"pid": os.getpid(), "command": _command_line(),
                       "started": time.strftime("%Y-%m-%d %H:%M:%S")}).encode()
    os.ftruncate(fd, 0)
    os.pwrite(fd, text + b"\n", 0)
    _HELD[key] = fd


def release_folder(path: str | os.PathLike) -> None:
    """Give up a folder held by :func:`hold_folder` (no-op when not held)."""
    import fcntl

    fd = _HELD.pop(str(Path(path).resolve()), None)
    if fd is not None:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


# --------------------------------------------------------------------------- full disks

#: OS errors that mean "the disk cannot take it", with what to do
DISK_ERRORS = {
    errno.ENOSPC: ("the disk is full", "free some space (or write elsewhere) and rerun"),
    errno.EDQUOT: ("the disk quota is exceeded", "free some space (or write elsewhere) "
                   "and rerun"),
    errno.EROFS: ("the file system is read-only", "give a folder on a writable disk and "
                  "rerun"),
}


def disk_error_message(err: BaseException, *, where=None) -> str | None:
    """A message for a full or read-only disk found in ``err`` (or its causes), or None.

    ``where`` (the command's output) is named when the error itself names no file."""
    seen = 0
    e: BaseException | None = err
    while e is not None and seen < 8:
        code = getattr(e, "errno", None)
        text = str(e)
        if code not in DISK_ERRORS:
            if "No space left" in text or "enforce fail at inline_container" in text:
                code = errno.ENOSPC
            elif "Read-only file system" in text:
                code = errno.EROFS
        if code in DISK_ERRORS:
            problem, todo = DISK_ERRORS[code]
            where = getattr(e, "filename", None) or where
            where = f" {where}" if where else ""
            return (f"cannot write{where}: {problem}. Files written before stay as they "
                    f"were (nothing finished was lost); {todo}")
        e = e.__cause__ or e.__context__
        seen += 1
    return None
