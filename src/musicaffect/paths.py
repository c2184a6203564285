"""Output paths checked before any work starts (so no computed result is thrown away).

Every command that writes a file or a folder calls :func:`check_output_file` or
:func:`check_output_dir` first. They create nothing; they walk up to the nearest existing
folder and raise :class:`~musicaffect.errors.OutputError` (exit 2 in the CLI) when a
regular file is in the way, when the path itself has the wrong kind, or when that folder is
not writable.
"""

from __future__ import annotations

import os
from pathlib import Path

from musicaffect.errors import OutputError


def _nearest_existing(path: Path, what: str, shown: Path) -> Path:
    """The nearest existing ancestor folder of ``path``; raises when a file is in the way."""
    for parent in path.parents:
        if parent.exists() or parent.is_symlink():
            if not parent.is_dir():
                raise OutputError(f"{shown}: cannot write the {what} there: {parent} is a "
                                  "file, not a folder; choose another path")
            return parent
    return Path(path.anchor or ".")  # pragma: no cover - the root always exists


def _check_writable(folder: Path, what: str, shown: Path) -> None:
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"{shown}: cannot write the {what} there: no write permission in "
                          f"{folder}; choose another path")


def check_output_file(path: str | os.PathLike, *, what: str = "output file") -> Path:
    """Check that ``path`` can be written as a file (its folders may not exist yet).

    Returns the path. Raises :class:`OutputError` when ``path`` is a folder, a file is in
    the way of one of its folders, or the nearest existing folder is not writable.
    """
    shown = Path(path)
    p = Path(os.path.abspath(os.path.expanduser(os.fspath(path))))
    if p.is_dir():
        raise OutputError(f"{shown}: is a folder; give a file name for the {what}")
    if p.exists():
        if not os.access(p, os.W_OK):
            raise OutputError(f"{shown}: the {what} exists and is not writable; choose "
                              "another path or change its permissions")
        _check_writable(p.parent, what, shown)
        return shown
    _check_writable(_nearest_existing(p, what, shown), what, shown)
    return shown


def check_output_dir(path: str | os.PathLike, *, what: str = "output folder") -> Path:
    """Check that ``path`` is (or can be created as) a writable folder. Returns the path."""
    shown = Path(path)
    p = Path(os.path.abspath(os.path.expanduser(os.fspath(path))))
    if p.exists() or p.is_symlink():
        if not p.is_dir():
            raise OutputError(f"{shown}: is a file, not a folder; choose a folder for the "
                              f"{what}")
        _check_writable(p, what, shown)
        return shown
    _check_writable(_nearest_existing(p, what, shown), what, shown)
    return shown
