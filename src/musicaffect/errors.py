"""One exception root for every error a user can cause.

Messages name the offending file (and line where there is one) and say what to do.
The CLI turns any :class:`MusicAffectError` into a one-line message and exit code 2.
"""

from __future__ import annotations

import os


class MusicAffectError(Exception):
    """Root of all musicaffect errors caused by user input (data, configs, checkpoints)."""


class DataError(MusicAffectError):
    """A data file, folder or label is missing, malformed or out of range.

    Parameters
    ----------
    message : str
        What is wrong and what to do about it.
    path : str or os.PathLike, optional
        The offending file or folder; prefixed to the message.
    line : int, optional
        1-based line number inside ``path``.
    """

    def __init__(self, message: str, *, path: str | os.PathLike | None = None,
                 line: int | None = None):
        self.path = None if path is None else os.fspath(path)
        self.line = line
        where = ""
        if self.path is not None:
            where = f"{self.path}:{line}: " if line is not None else f"{self.path}: "
        super().__init__(where + message)


class ConfigError(MusicAffectError):
    """A run configuration has an unknown key, a wrong type or an invalid value."""


class CheckpointError(MusicAffectError):
    """A checkpoint is missing, corrupt, or does not fit the data it is used with."""


class RunError(MusicAffectError):
    """A run folder cannot be used as asked (exists already, nothing to resume, ...)."""


class OutputError(MusicAffectError):
    """An output path cannot be written (a file in the way, no permission, ...)."""
