"""Shared fixtures: a seeded rng and small generated datasets in the exact Kaggle layout."""

from __future__ import annotations

import os

import numpy as np  # noqa: I001
import pytest

os.environ.setdefault("MPLBACKEND", "Agg")
# as the CLI does: idle OpenMP threads sleep rather than spin (see musicaffect.cli)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory):
    """Clip caches of the test session go to a temporary folder, not ~/.cache."""
    old = os.environ.get("MUSICAFFECT_CACHE")
    os.environ["MUSICAFFECT_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if old is None:
        os.environ.pop("MUSICAFFECT_CACHE", None)
    else:
        os.environ["MUSICAFFECT_CACHE"] = old


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def sample_root(tmp_path_factory) -> str:
    """A small synthetic dataset (plain ``.npy`` files), shared read-only by the session."""
    from musicaffect.data.sample import write_sample_dataset

    root = tmp_path_factory.mktemp("sample") / "data"
    write_sample_dataset(root, size="small", seed=0, gz=False)
    return str(root)


@pytest.fixture(scope="session")
def sample_root_gz(tmp_path_factory) -> str:
    """The same small synthetic dataset in the original ``.npy.gz`` release form."""
    from musicaffect.data.sample import write_sample_dataset

    root = tmp_path_factory.mktemp("sample_gz") / "data"
    write_sample_dataset(root, size="small", seed=0, gz=True)
    return str(root)
