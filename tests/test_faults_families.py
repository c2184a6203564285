"""Faults that live in the family code (issue 15, the leftovers): tampered classical model
files whose SHA-256 was updated to match, and grid values scikit-learn refuses."""

from __future__ import annotations

import hashlib
import pickle

import numpy as np
import pytest

from musicaffect.errors import CheckpointError, ConfigError
from musicaffect.models.classical import classical_params, fit_task, load_task_model


def _entry(path, kind):
    return {"kind": kind, "file": path.name,
            "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}


def _blobs(n=40, d=6, k=2):
    rng = np.random.default_rng(0)
    y = np.arange(n) % k
    return rng.standard_normal((n, d)) + 1.5 * np.eye(k, d)[y], y


def test_npz_with_an_object_array_is_a_checkpoint_error(tmp_path):
    path = tmp_path / "best.genre.npz"
    np.savez(path, mean=np.zeros(3), scale=np.ones(3), coef=np.array([{"a": 1}], dtype=object),
             intercept=np.zeros(1))
    with pytest.raises(CheckpointError, match=r"best\.genre\.npz.*retrain"):
        load_task_model(tmp_path, _entry(path, "logistic"))


def test_npz_without_the_model_arrays_is_a_checkpoint_error(tmp_path):
    path = tmp_path / "best.genre.npz"
    np.savez(path, mean=np.zeros(3))
    with pytest.raises(CheckpointError, match="'scale'.*retrain"):
        load_task_model(tmp_path, _entry(path, "logistic"))


def test_pickle_in_place_of_the_skops_file_is_a_checkpoint_error(tmp_path):
    from sklearn.linear_model import LogisticRegression

    X, y = _blobs()
    path = tmp_path / "best.genre.skops"
    path.write_bytes(pickle.dumps(LogisticRegression().fit(X, y)))
    with pytest.raises(CheckpointError, match=r"best\.genre\.skops.*retrain"):
        load_task_model(tmp_path, _entry(path, "skops"))


def test_skops_file_of_an_unfitted_model_is_a_checkpoint_error(tmp_path):
    import skops.io as sio
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    path = tmp_path / "best.genre.skops"
    sio.dump(Pipeline([("scale", StandardScaler()), ("model", SVC())]), path)
    with pytest.raises(CheckpointError, match=r"best\.genre\.skops.*never fitted.*retrain"):
        load_task_model(tmp_path, _entry(path, "skops"))


@pytest.mark.parametrize("estimator,grid,key", [
    ("linear", {"C": [-1]}, "C"),
    ("svm", {"C": [1.0, "big"]}, "C"),
    ("hgb", {"learning_rate": [0.0]}, "learning_rate"),
])
def test_grid_values_the_estimator_refuses_are_config_errors(estimator, grid, key):
    X, y = _blobs()
    p = classical_params({"estimator": estimator, "grid": grid, "cv_folds": 2})
    with pytest.raises(ConfigError, match=rf"model\.params\.grid\.{key}"):
        fit_task(p, X, y, classify=True, seed=0)
