"""Loading and checking one clip array; the three views (mel, chroma, fused).

A clip file holds one ``np.save`` array of shape (140, T) (gzip-wrapped in ``.npy.gz``):
rows 0-127 the log-mel spectrogram in dB, rows 128-139 the chromagram.
"""

from __future__ import annotations

import gzip
import io
import os
import zlib
from pathlib import Path

import numpy as np

from musicaffect.errors import ConfigError, DataError

N_MEL = 128
N_CHROMA = 12
N_ROWS = N_MEL + N_CHROMA

#: view name -> rows of the (140, T) array
VIEW_ROWS: dict[str, slice] = {
    "mel": slice(0, N_MEL),
    "chroma": slice(N_MEL, N_ROWS),
    "fused": slice(0, N_ROWS),
}

_HINT = "re-download the file, or pass --skip-bad (skip_bad=True) to skip it"


def _check_view(view: str) -> slice:
    try:
        return VIEW_ROWS[view]
    except KeyError:
        raise ConfigError(f"unknown view {view!r}: use one of {', '.join(VIEW_ROWS)}") from None


def n_features(view: str) -> int:
    """Number of features (rows) of a view: mel 128, chroma 12, fused 140."""
    rows = _check_view(view)
    return rows.stop - rows.start


def select_view(a: np.ndarray, view: str) -> np.ndarray:
    """Rows of a (140, T) clip for a view.

    Parameters
    ----------
    a : np.ndarray [shape=(140, T)]
    view : {"mel", "chroma", "fused"}

    Returns
    -------
    np.ndarray [shape=(F, T)]
        A view (no copy) of ``a``.
    """
    return a[_check_view(view)]


def _read_bytes(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as err:
        raise DataError(f"cannot read clip file ({err.strerror}): {_HINT}", path=path) from err
    if path.name.endswith(".gz"):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as err:
            raise DataError(f"corrupt gzip file ({err}): {_HINT}", path=path) from err
    return data


def check_array(a: np.ndarray, path: str | os.PathLike) -> np.ndarray:
    """Check a loaded clip: 2-D, 140 rows, at least one frame, finite. Returns float32."""
    if a.ndim != 2 or a.shape[0] != N_ROWS or a.shape[1] < 1:
        raise DataError(f"array has shape {a.shape}, expected ({N_ROWS}, T) "
                        f"(128 mel rows + 12 chroma rows); {_HINT}", path=path)
    if not np.issubdtype(a.dtype, np.number):
        raise DataError(f"array has dtype {a.dtype}, expected a float array; {_HINT}",
                        path=path)
    a = a.astype(np.float32, copy=False)
    if not np.isfinite(a).all():
        n_bad = int(np.size(a) - np.isfinite(a).sum())
        raise DataError(f"array holds {n_bad} NaN/inf values; {_HINT}", path=path)
    return a


def load_array(path: str | os.PathLike) -> np.ndarray:
    """Load one clip file (``.npy`` or ``.npy.gz``), checked and cast to float32.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    np.ndarray [shape=(140, T), dtype=float32]

    Raises
    ------
    DataError
        Unreadable, corrupt gzip or npy, wrong shape, NaN/inf; the message names the file.
    """
    path = Path(path)
    data = _read_bytes(path)
    try:
        a = np.load(io.BytesIO(data), allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise DataError(f"corrupt .npy data ({err}): {_HINT}", path=path) from err
    if not isinstance(a, np.ndarray):
        raise DataError(f"file holds no single array: {_HINT}", path=path)
    return check_array(a, path)


def peek_shape(path: str | os.PathLike) -> tuple[int, ...]:
    """Shape of the array in a clip file, read from its header only."""
    path = Path(path)
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, _, _ = np.lib.format.read_array_header_1_0(fh)
            else:
                shape, _, _ = np.lib.format.read_array_header_2_0(fh)
    except (ValueError, OSError, EOFError, zlib.error) as err:
        raise DataError(f"corrupt clip file header ({err}): {_HINT}", path=path) from err
    return tuple(shape)
