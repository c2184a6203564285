"""Writing files so that a reader never sees half of one: temporary file + rename.

Every file the project writes that another step or a later run reads (checkpoints, label
files, arrays, tables, reports) goes through :func:`atomic_write` or :func:`atomic_open`.
The temporary file lies in the destination folder (so the rename is atomic on POSIX and
Windows) and is named ``.<name>.<pid>.<random>.tmp``; it is removed when the write fails.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

__all__ = ["TMP_SUFFIX", "atomic_open", "atomic_write"]

#: suffix of every temporary file (a crashed writer's leftovers match ``.*.tmp``)
TMP_SUFFIX = ".tmp"


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb", *, fsync: bool = False,
                encoding: str | None = None, newline: str | None = None) -> Iterator[IO]:
    """Open a temporary file beside ``path``; on success rename it over ``path``.

    Parameters
    ----------
    path : path-like
        The destination; its folder is created when missing.
    mode : {"wb", "w"}
        Binary or text.
    fsync : bool
        Flush the data to disk before the rename (checkpoints: survive a power cut).

    Examples
    --------
    >>> with atomic_open(tmp / "x.npy") as f:   # doctest: +SKIP
    ...     np.save(f, a)
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"mode must be 'wb' or 'w', not {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=TMP_SUFFIX,
                               dir=path.parent)
    try:
        kw = {} if mode == "wb" else {"encoding": encoding or "utf-8", "newline": newline}
        with os.fdopen(fd, mode, **kw) as f:
            yield f
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give a normal file's mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, data: bytes | str, *, fsync: bool = False) -> Path:
    """Write ``data`` (bytes, or text as UTF-8) to ``path`` atomically; returns the path."""
    with atomic_open(path, "wb" if isinstance(data, bytes) else "w", fsync=fsync) as f:
        f.write(data)
    return Path(path)
