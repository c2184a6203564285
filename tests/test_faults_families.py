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


# --------------------------------------------------------------------------- ensembles

FAST = ["--set", "model.params.cv_folds=2", "--no-progress"]


@pytest.fixture(scope="module")
def genre_and_affect(sample_root, tmp_path_factory):
    from musicaffect.cli import main

    base = tmp_path_factory.mktemp("mixed")
    assert main(["train", sample_root, "--preset", "classical-logreg", "--out",
                 str(base / "genre"), *FAST]) == 0
    assert main(["train", sample_root, "--preset", "affect-classical-ridge", "--out",
                 str(base / "affect"), *FAST]) == 0
    return base / "genre", base / "affect"


def test_ensemble_of_runs_of_different_tasks_is_refused(genre_and_affect, tmp_path, capsys):
    from musicaffect.cli import main

    genre, affect = genre_and_affect
    capsys.readouterr()
    assert main(["ensemble", str(genre), str(affect), "--out", str(tmp_path / "e")]) == 2
    err = capsys.readouterr().err
    assert "same tasks" in err and "valence" in err and str(affect) in err
    assert not (tmp_path / "e").exists()


@pytest.mark.parametrize("order", [0, 1])
def test_evaluate_of_runs_of_different_tasks_is_refused_in_either_order(
        genre_and_affect, sample_root, tmp_path, capsys, order):
    from musicaffect.cli import main

    runs = [str(r) for r in genre_and_affect][::1 if order == 0 else -1]
    capsys.readouterr()
    assert main(["evaluate", *runs, sample_root, "--out", str(tmp_path / "d")]) == 2
    assert "evaluate the others separately" in capsys.readouterr().err
    assert not (tmp_path / "d" / "metrics.json").exists()


def test_members_of_different_classes_are_refused():
    from types import SimpleNamespace

    from musicaffect.families.ensemble import check_members

    a = SimpleNamespace(path="A", tasks=["genre"], n_classes=2, classes=["rock", "pop"])
    b = SimpleNamespace(path="B", tasks=["genre"], n_classes=2, classes=["rock", "jazz"])
    check_members([a, a])
    with pytest.raises(ConfigError, match="B has the classes rock, jazz but A has rock, pop"):
        check_members([a, b])


# --------------------------------------------------------------------------- undefined Spearman

def test_an_undefined_validation_spearman_is_nan_and_logged_as_na():
    import warnings

    from musicaffect.evaluation.metrics import regression_metrics
    from musicaffect.training.callbacks import _fmt

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        one_clip = regression_metrics({"valence": np.array([0.3])}, {"valence": np.array([0.5])})
        constant = regression_metrics({"valence": np.arange(5.0), "energy": np.arange(5.0)},
                                      {"valence": np.ones(5), "energy": np.arange(5.0)})
    assert np.isnan(one_clip["per_target"]["valence"]["spearman"])
    assert np.isnan(one_clip["spearman_mean"])
    assert np.isnan(constant["per_target"]["valence"]["spearman"])
    assert constant["spearman_mean"] == pytest.approx(1.0)     # the defined target only
    line = _fmt({"epoch": 0, "val_loss": 0.25, "val_spearman_mean": float("nan"),
                 "seconds": 1.0})
    assert "val_spearman_mean=n/a" in line and "val_loss=0.2500" in line


@pytest.mark.parametrize("minimise", [False, True])
def test_a_nan_monitor_is_never_the_best_epoch(minimise):
    from musicaffect.training.callbacks import EarlyStopping

    nan = float("nan")
    good, better = (0.5, 0.4) if minimise else (0.1, 0.2)
    es = EarlyStopping(minimise, patience=3)
    assert es.update(nan, 0)                  # the first epoch stands in for none
    assert es.update(good, 1) and es.best_epoch == 1
    assert not es.update(nan, 2) and es.best == good and es.bad_epochs == 1
    assert es.update(better, 3) and es.best_epoch == 3 and es.bad_epochs == 0
    for e in range(4, 7):
        assert not es.update(nan, e)
    assert es.should_stop and es.best_epoch == 3


# --------------------------------------------------------------------------- suites

RIDGE = {"experiment": "affect-classical-ridge", "preset": "affect-classical-ridge",
         "label": "ridge"}
BROKEN = {"experiment": "no-such-preset", "preset": "no-such-preset", "label": "broken"}


def _experiments(**kw):
    base = {"affect": [BROKEN, RIDGE], "multitask": [BROKEN, RIDGE],
            "transfer": {"source": "no-such-preset", "baseline": [],
                         "variants": [dict(BROKEN, freeze=False)]}}
    return lambda: {**base, **kw}


def test_a_failing_affect_preset_is_a_row_and_lab_exits_non_zero(sample_root, tmp_path,
                                                                 monkeypatch, capsys):
    import json

    from musicaffect import suites
    from musicaffect.cli import main

    monkeypatch.setattr(suites, "suite_experiments", _experiments())
    out = tmp_path / "lab"
    assert main(["lab", sample_root, "--out", str(out), "--steps", "affect",
                 "--budget", "tiny", "--no-progress"]) == 1
    state = json.loads((out / "lab_state.json").read_text())["steps"]["affect"]
    rows = {r["experiment"]: r for r in state["table"]["rows"]}
    assert "unknown preset" in rows["no-such-preset"]["error"]
    assert rows["affect-classical-ridge"]["mean"] is not None
    assert not rows["affect-classical-ridge"]["error"]
    assert "no-such-preset" in state["failed_presets"]


@pytest.mark.parametrize("suite", ["multitask", "transfer"])
def test_a_failing_multitask_or_transfer_preset_is_a_row(suite, sample_root, tmp_path,
                                                        monkeypatch):
    from musicaffect import suites

    monkeypatch.setattr(suites, "suite_experiments", _experiments())
    run = getattr(suites, f"{suite}_suite")
    res = run(sample_root, tmp_path / suite, budget="tiny", progress=False,
              genre_run=tmp_path / "unused-genre-source")
    rows = {r["experiment"]: r for r in res.rows}
    assert "unknown preset" in rows["no-such-preset"]["error"]
    assert "error" in res.columns and rows["no-such-preset"]["mean"] is None
    if suite == "multitask":
        assert rows["affect-classical-ridge"]["mean"] is not None
        assert res.runs["affect-classical-ridge"]
