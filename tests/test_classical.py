"""The classical model family: features, hyperparameter search on the training part, saving
without pickle, reloading, and the train / evaluate / submit commands on it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from musicaffect.cli import main
from musicaffect.errors import CheckpointError, ConfigError
from musicaffect.evaluation.predictor import Predictor
from musicaffect.models.classical import (
    ClassicalMember,
    classical_params,
    clip_features,
    fit_task,
    load_task_model,
    save_task_model,
)

FAST = ["--set", "model.params.cv_folds=2", "--no-progress"]


def test_clip_features_are_row_statistics(rng):
    x = rng.standard_normal((3, 50))
    v = clip_features(x, percentiles=[10, 90], deltas=True)
    assert v.shape == (3 * 4 * 2,)
    np.testing.assert_allclose(v[:3], x.mean(1))
    np.testing.assert_allclose(v[3:6], x.std(1))
    np.testing.assert_allclose(v[6:9], np.percentile(x, 10, axis=1))
    np.testing.assert_allclose(v[12:15], np.diff(x, axis=1).mean(1))
    assert clip_features(x[:, :1], percentiles=[], deltas=True).shape == (3 * 2 * 2,)
    assert clip_features(x, percentiles=[50], deltas=False).shape == (3 * 3,)


def test_params_are_checked():
    assert classical_params({"estimator": "logreg"}).estimator == "linear"
    with pytest.raises(ConfigError, match="estimator"):
        classical_params({"estimator": "forest"})
    with pytest.raises(ConfigError, match="model.params.hidden_size"):
        classical_params({"hidden_size": 3})
    with pytest.raises(ConfigError, match="cv_folds"):
        classical_params({"cv_folds": 1})


def _blobs(rng, n=60, d=8, k=3):
    y = np.arange(n) % k
    X = rng.standard_normal((n, d)) + 1.5 * np.eye(k, d)[y]
    return X, y


@pytest.mark.parametrize("estimator", ["linear", "svm", "hgb"])
def test_saved_models_reload_to_the_same_predictions(estimator, rng, tmp_path):
    X, y = _blobs(rng)
    p = classical_params({"estimator": estimator, "cv_folds": 3, "max_iter": 30})
    model, info = fit_task(p, X, y, classify=True, seed=0)
    assert info["cv_folds"] == 3 and set(info["best_params"]) == set(info["grid"])
    entry = save_task_model(model, tmp_path, "genre", p.estimator)
    again = load_task_model(tmp_path, entry)
    np.testing.assert_allclose(again.predict_proba(X), model.predict_proba(X), rtol=1e-7,
                               atol=1e-10)
    yr = X[:, 0] * 0.1 + 0.5
    reg, _ = fit_task(p, X, yr, classify=False, seed=0)
    e2 = save_task_model(reg, tmp_path, "valence", p.estimator)
    np.testing.assert_allclose(load_task_model(tmp_path, e2).predict(X), reg.predict(X),
                               rtol=1e-7, atol=1e-10)
    # no pickle: linear models are plain arrays, the others skops files
    assert entry["file"].endswith(".npz" if estimator == "linear" else ".skops")
    if estimator == "linear":
        with np.load(tmp_path / entry["file"], allow_pickle=False) as z:
            assert set(z.files) == {"mean", "scale", "coef", "intercept", "classes"}
    # a changed file is refused
    path = tmp_path / entry["file"]
    path.write_bytes(path.read_bytes() + b"x")
    with pytest.raises(CheckpointError, match="SHA-256"):
        load_task_model(tmp_path, entry)


def test_hyperparameters_are_chosen_on_the_training_part_only(rng):
    X, y = _blobs(rng, n=40)
    p = classical_params({"estimator": "linear", "cv_folds": 4, "grid": {"C": [0.001, 10.0]}})
    _, info = fit_task(p, X, y, classify=True, seed=0)
    assert info["best_params"]["C"] == 10.0 and info["cv_folds"] == 4
    with pytest.raises(ConfigError, match="not a parameter"):
        fit_task(classical_params({"grid": {"gamma": [1]}}), X, y, classify=True, seed=0)


@pytest.fixture(scope="module")
def genre_run(sample_root, tmp_path_factory):
    run = tmp_path_factory.mktemp("classical") / "logreg"
    assert main(["train", sample_root, "--preset", "classical-logreg", "--out", str(run),
                 *FAST]) == 0
    return run


def test_classical_trains_saves_and_reloads_through_the_cli(genre_run, sample_root, capsys):
    files = {p.name for p in (genre_run / "checkpoints").iterdir()}
    assert files == {"best.classical.json", "best.genre.npz"}
    for name in ("config.yaml", "summary.json", "metrics.csv"):
        assert (genre_run / name).is_file()
    summary = json.loads((genre_run / "summary.json").read_text())
    assert summary["classical"]["estimator"] == "linear"
    assert summary["classical"]["search"]["genre"]["cv_folds"] == 2
    # the reloaded model gives the validation metrics recorded at training time
    from musicaffect.data.loading import prepare_data
    from musicaffect.families.classical import _val_metrics
    from musicaffect.models.classical import dataset_features

    m = ClassicalMember(genre_run)
    data = prepare_data(m.cfg, sample_root)
    X, ids, labels = dataset_features(data.val, m.params)
    val = m.predict_features(X, ids, labels)
    assert _val_metrics(val, m.specs)["val_accuracy"] == pytest.approx(
        summary["best_metrics"]["val_accuracy"])
    assert val.probs.shape == (len(ids), 10)
    np.testing.assert_allclose(val.probs.sum(1), 1.0)
    capsys.readouterr()
    assert main(["evaluate", str(genre_run), sample_root]) == 0
    out = capsys.readouterr().out
    assert "genre-full-test" in out and "macro avg" in out
    metrics = json.loads((genre_run / "eval" / "genre-full-test" / "metrics.json").read_text())
    assert metrics["epoch"] is None and 0.0 <= metrics["genre"]["accuracy"] <= 1.0


@pytest.mark.slow
def test_classical_and_deep_ensemble(genre_run, sample_root, tmp_path):
    assert main(["train", sample_root, "--preset", "lstm-beat-mel", "--out",
                 str(tmp_path / "lstm"), "--set", "model.params.hidden_size=16",
                 "--set", "train.epochs=1", "--set", "train.max_batches_per_epoch=1",
                 "--no-progress"]) == 0
    pred = Predictor.load([genre_run, tmp_path / "lstm"], device="cpu")
    res = pred.predict_split(sample_root, dataset="genre", split="test")
    alone = [Predictor.load(r, device="cpu").predict_split(
        sample_root, dataset="genre", split="test").reorder(res.ids)
        for r in (genre_run, tmp_path / "lstm")]
    np.testing.assert_allclose(res.probs, (alone[0].probs + alone[1].probs) / 2, rtol=1e-9)


def test_affect_classical_submits(sample_root, tmp_path, capsys):
    run = tmp_path / "ridge"
    assert main(["train", sample_root, "--preset", "affect-classical-ridge", "--out", str(run),
                 *FAST]) == 0
    assert {p.name for p in (run / "checkpoints").iterdir()} == {
        "best.classical.json", "best.valence.npz", "best.energy.npz", "best.danceability.npz"}
    capsys.readouterr()
    assert main(["evaluate", str(run), sample_root]) == 0
    assert "multitask-full-heldout" in capsys.readouterr().out
    assert main(["submit", str(run), sample_root, "--out", str(tmp_path / "s.csv")]) == 0
    assert len((tmp_path / "s.csv").read_text().splitlines()) > 1


def test_svm_run_through_the_cli(sample_root, tmp_path):
    run = tmp_path / "svm"
    assert main(["train", sample_root, "--preset", "classical-svm", "--out", str(run),
                 *FAST]) == 0
    assert (run / "checkpoints" / "best.genre.skops").is_file()
    assert main(["evaluate", str(run), sample_root]) == 0
    # refused: an existing folder without --overwrite, a bad parameter
    assert main(["train", sample_root, "--preset", "classical-svm", "--out", str(run),
                 *FAST]) == 2
    assert main(["train", sample_root, "--preset", "classical-svm", "--out",
                 str(tmp_path / "x"), "--set", "model.params.estimator=forest"]) == 2


def test_skops_file_with_foreign_types_is_refused(tmp_path):
    import datetime
    import hashlib

    import skops.io as sio

    path = tmp_path / "best.genre.skops"
    sio.dump({"a": datetime.timedelta(1)}, path)
    entry = {"kind": "skops", "file": path.name,
             "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    with pytest.raises(CheckpointError, match="datetime.timedelta"):
        load_task_model(tmp_path, entry)


def test_ensemble_members_take_the_runs_data_and_budget_settings():
    from musicaffect.config import load_config
    from musicaffect.families.ensemble import member_overrides

    cfg = load_config("ensemble-chunk-affect", ["data.tasks=[arousal]", "train.epochs=3",
                                                "seed=7"])
    extra = member_overrides(cfg)
    assert extra == {"seed": 7, "data": {"tasks": ["arousal"]}, "train": {"epochs": 3}}
    member = load_config("chunk-cnn-affect", [], extra=extra)
    assert member.data.tasks == ["arousal"] and member.train.epochs == 3
    assert member.model.name == "cnn_short" and member.data.chunk_frames == 128   # its own
    # nothing set: the members keep their presets' settings (no genre default leaks in)
    assert "tasks" not in member_overrides(load_config("ensemble-chunk-genre")).get("data", {})


def test_ensemble_presets_refuse_distributed_training(sample_root, tmp_path, capsys):
    assert main(["train", sample_root, "--preset", "best-genre", "--out", str(tmp_path / "e"),
                 "--devices", "2"]) == 2
    assert "musicaffect ensemble" in capsys.readouterr().err
    assert not (tmp_path / "e").exists()
