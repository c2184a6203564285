"""Loading clip arrays: both file forms, views, and every kind of corrupt file."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import numpy as np
import pytest

from musicaffect.data.arrays import VIEW_ROWS, load_array, n_features, peek_shape, select_view
from musicaffect.errors import ConfigError, DataError


def _write(path: Path, a: np.ndarray) -> Path:
    buf = io.BytesIO()
    np.save(buf, a)
    data = buf.getvalue()
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path


@pytest.mark.parametrize("name", ["1.fused.full.npy", "1.fused.full.npy.gz"])
def test_load_casts_to_float32_and_keeps_values(tmp_path, rng, name):
    a = rng.uniform(-80, 0, size=(140, 37))
    out = load_array(_write(tmp_path / name, a))
    assert out.dtype == np.float32 and out.shape == (140, 37)
    np.testing.assert_allclose(out, a, rtol=1e-6)
    assert peek_shape(tmp_path / name) == (140, 37)


def test_sample_files_load_in_both_forms(sample_root, sample_root_gz):
    folder = "fma_genre_spectrograms_beat/test"
    plain = sorted((Path(sample_root) / folder).iterdir())[0]
    packed = Path(sample_root_gz) / folder / (plain.name + ".gz")
    np.testing.assert_array_equal(load_array(plain), load_array(packed))


@pytest.mark.parametrize("view, rows", [("mel", (0, 128)), ("chroma", (128, 140)),
                                        ("fused", (0, 140))])
def test_views(rng, view, rows):
    a = rng.normal(size=(140, 9)).astype(np.float32)
    out = select_view(a, view)
    assert out.shape == (rows[1] - rows[0], 9) == (n_features(view), 9)
    np.testing.assert_array_equal(out, a[rows[0]:rows[1]])
    assert VIEW_ROWS[view] == slice(*rows)


def test_unknown_view(rng):
    with pytest.raises(ConfigError, match="unknown view"):
        select_view(np.zeros((140, 2)), "mfcc")


def _assert_names_file(err: pytest.ExceptionInfo, path: Path) -> None:
    assert err.value.path == str(path)
    assert str(path) in str(err.value)
    assert "--skip-bad" in str(err.value)


def test_corrupt_gzip(tmp_path):
    path = tmp_path / "2.fused.full.npy.gz"
    path.write_bytes(b"this is not gzip data")
    with pytest.raises(DataError, match="corrupt gzip") as err:
        load_array(path)
    _assert_names_file(err, path)


def test_truncated_gzip(tmp_path, rng):
    path = _write(tmp_path / "3.fused.full.npy.gz", rng.normal(size=(140, 50)))
    path.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(DataError, match="corrupt gzip") as err:
        load_array(path)
    _assert_names_file(err, path)


@pytest.mark.parametrize("name", ["4.fused.full.npy", "4.fused.full.npy.gz"])
def test_corrupt_npy(tmp_path, name):
    path = tmp_path / name
    data = b"\x93NUMPY garbage that is no header"
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    with pytest.raises(DataError, match="corrupt .npy") as err:
        load_array(path)
    _assert_names_file(err, path)
    with pytest.raises(DataError):
        peek_shape(path)


@pytest.mark.parametrize("shape", [(128, 40), (140,), (140, 0), (2, 140, 3)])
def test_wrong_shape(tmp_path, shape):
    path = _write(tmp_path / "5.fused.full.npy", np.zeros(shape))
    with pytest.raises(DataError, match="expected \\(140, T\\)") as err:
        load_array(path)
    _assert_names_file(err, path)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values(tmp_path, bad):
    a = np.zeros((140, 10))
    a[3, 4] = bad
    path = _write(tmp_path / "6.fused.full.npy.gz", a)
    with pytest.raises(DataError, match="1 NaN/inf") as err:
        load_array(path)
    _assert_names_file(err, path)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="cannot read"):
        load_array(tmp_path / "7.fused.full.npy")
