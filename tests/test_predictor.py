"""The one inference path: the Predictor gives what the old load -> dataset -> loader ->
transform sequence gave, ensembles average their members, and an ensemble of one run equals
that run (through evaluate, submit and the Predictor)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from musicaffect.cli import main
from musicaffect.errors import CheckpointError, DataError
from musicaffect.evaluation.predictor import Predictor, is_model_path
from musicaffect.families.ensemble import write_ensemble

TINY = ["--set", "train.epochs=1", "--set", "train.max_batches_per_epoch=2", "--no-progress"]


@pytest.fixture(scope="module")
def runs(sample_root, tmp_path_factory):
    """Two small genre runs, a multitask run and a single-target affect run."""
    base = tmp_path_factory.mktemp("pred_runs")
    small_cnn = ["--set", "model.params.channels=[4,8,8,8]", "--set", "model.params.embed_dim=16"]
    assert main(["train", sample_root, "--preset", "lstm-beat-mel", "--out",
                 str(base / "lstm"), "--set", "model.params.hidden_size=16", *TINY]) == 0
    assert main(["train", sample_root, "--preset", "cnn-full-mel", "--out", str(base / "cnn"),
                 *small_cnn, "--set", "data.max_length=256", *TINY]) == 0
    assert main(["train", sample_root, "--preset", "multitask-cnn", "--out",
                 str(base / "multi"), *small_cnn, "--set", "data.max_length=256", *TINY]) == 0
    assert main(["train", sample_root, "--preset", "affect-cnn-full-fused", "--out",
                 str(base / "val"), *small_cnn, "--set", "data.max_length=256",
                 "--set", "seed=7", *TINY]) == 0
    return base


def _old_genre_outputs(run, root):
    """The sequence evaluate.py ran before the Predictor existed."""
    from musicaffect.config import config_from_dict
    from musicaffect.data.dataset import SpectrogramDataset
    from musicaffect.data.loading import make_loader
    from musicaffect.evaluation.inference import predict_outputs
    from musicaffect.models.checkpoint import load_model

    model, ckpt = load_model(run)
    cfg = config_from_dict(ckpt["config"])
    ds = SpectrogramDataset(root, dataset="genre", rate=cfg.data.rate, split="test",
                            view=cfg.data.view, tasks=("genre",))
    res = predict_outputs(model, make_loader(ds, None, batch_size=32,
                                             max_length=cfg.data.max_length),
                          device=torch.device("cpu"))
    return res


def test_predictor_matches_the_old_sequence(runs, sample_root):
    old = _old_genre_outputs(runs / "lstm", sample_root)
    pred = Predictor.load(runs / "lstm", device="cpu")
    res = pred.predict_split(sample_root, dataset="genre", split="test")
    assert res.ids == old["ids"]
    z = old["out:genre"].astype(np.float64)
    soft = np.exp(z - z.max(1, keepdims=True))
    np.testing.assert_allclose(res.probs, soft / soft.sum(1, keepdims=True), rtol=1e-6)
    assert np.array_equal(res.probs.argmax(1), old["out:genre"].argmax(1))
    assert np.array_equal(res.labels["genre"], old["y:genre"])
    assert pred.tasks == ["genre"] and len(pred.members) == 1


def test_regression_values_after_predict_transform(runs, sample_root):
    from musicaffect.data.loading import prepare_data

    pred = Predictor.load(runs / "multi", device="cpu")
    res = pred.predict_heldout(sample_root)
    m = pred.first
    val = prepare_data(m.cfg, sample_root).val
    assert sorted(res.ids) == sorted(val[i]["id"] for i in range(len(val)))
    assert set(res.values) == {"valence", "energy", "danceability"}
    assert res.probs is None and all(v.shape == (len(res.ids),) for v in res.values.values())


def test_ensemble_averages_member_probabilities(runs, sample_root):
    a = Predictor.load(runs / "lstm", device="cpu").predict_split(
        sample_root, dataset="genre", split="test")
    b = Predictor.load(runs / "cnn", device="cpu").predict_split(
        sample_root, dataset="genre", split="test").reorder(a.ids)
    both = Predictor.load([runs / "lstm", runs / "cnn"], device="cpu").predict_split(
        sample_root, dataset="genre", split="test")
    assert both.ids == a.ids          # the beat and full test sets hold the same clips
    np.testing.assert_allclose(both.probs, (a.probs + b.probs) / 2, rtol=1e-9)
    ens = runs / "ens-weighted"
    write_ensemble(ens, [runs / "lstm", runs / "cnn"], weights=[3, 1])
    w = Predictor.load(ens, device="cpu").predict_split(sample_root, dataset="genre",
                                                        split="test")
    np.testing.assert_allclose(w.probs, 0.75 * a.probs + 0.25 * b.probs, rtol=1e-9)


def test_ensemble_of_one_run_equals_the_run(runs, sample_root, tmp_path, capsys):
    assert main(["evaluate", str(runs / "cnn"), sample_root, "--out",
                 str(tmp_path / "one")]) == 0
    assert main(["ensemble", str(runs / "cnn"), "--out", str(tmp_path / "ens")]) == 0
    assert is_model_path(tmp_path / "ens")
    assert main(["evaluate", str(tmp_path / "ens"), sample_root]) == 0
    # the same run twice: the mean of identical probabilities is the run's
    assert main(["evaluate", str(runs / "cnn"), str(runs / "cnn"), sample_root, "--out",
                 str(tmp_path / "twice")]) == 0
    one = json.loads((tmp_path / "one" / "metrics.json").read_text())["genre"]
    ens = json.loads((tmp_path / "ens" / "eval" / "genre-full-test" / "metrics.json")
                     .read_text())["genre"]
    twice = json.loads((tmp_path / "twice" / "metrics.json").read_text())
    for other in (ens, twice["genre"]):
        assert other["accuracy"] == one["accuracy"]
        assert other["confusion_matrix"] == one["confusion_matrix"]
    assert len(twice["members"]) == 2
    # submit: an ensemble of the multitask run equals the run
    assert main(["submit", str(runs / "multi"), sample_root, "--out",
                 str(tmp_path / "a.csv")]) == 0
    assert main(["ensemble", str(runs / "multi"), "--out", str(tmp_path / "mens")]) == 0
    assert main(["submit", str(tmp_path / "mens"), sample_root, "--out",
                 str(tmp_path / "b.csv")]) == 0
    assert (tmp_path / "a.csv").read_text() == (tmp_path / "b.csv").read_text()


def test_submit_averages_runs_that_predict_a_target(runs, sample_root, tmp_path):
    from musicaffect.submission import predict_test

    ids_m, multi = predict_test([runs / "multi"], sample_root, device="cpu")
    ids_v, single = predict_test([runs / "multi", runs / "val"], sample_root, device="cpu")
    assert ids_m == ids_v
    pv = Predictor.load(runs / "val", device="cpu").predict_split(
        sample_root, dataset="multitask", split="test")
    order = np.argsort(pv.ids, kind="stable")
    np.testing.assert_allclose(single["valence"], (multi["valence"] + pv.values["valence"][order]) / 2,
                               rtol=1e-6)
    np.testing.assert_array_equal(single["energy"], multi["energy"])
    with pytest.raises(CheckpointError, match="no run predicts energy"):
        predict_test([runs / "val"], sample_root)
    with pytest.raises(CheckpointError, match="genre model cannot"):
        predict_test([runs / "cnn"], sample_root)


def test_heldout_ensemble_needs_the_same_split(runs, sample_root, tmp_path):
    import yaml

    # a copy of the multitask run whose config says it held out other clips
    from musicaffect.models.checkpoint import load_checkpoint

    ckpt = load_checkpoint(runs / "multi")
    ckpt["config"]["data"]["split_seed"] = 1
    other = tmp_path / "other"
    (other / "checkpoints").mkdir(parents=True)
    del ckpt["path"]
    torch.save(ckpt, other / "checkpoints" / "best.pt")
    (other / "config.yaml").write_text(yaml.safe_dump(ckpt["config"]))
    with pytest.raises(DataError, match="held out different clips"):
        Predictor.load([runs / "multi", other], device="cpu").predict_heldout(sample_root)


def test_predict_clip_is_the_mean_over_windows(runs):
    rng = np.random.default_rng(0)
    wins = [rng.standard_normal((128, 40)).astype(np.float32) for _ in range(3)]
    pred = Predictor.load(runs / "lstm", device="cpu")
    res, n = pred.predict_clip(lambda m: wins)
    per = pred.first.predict_arrays(wins)
    assert n == 3 and per.probs.shape == (3, 10)
    np.testing.assert_allclose(res.probs[0], per.probs.mean(axis=0), rtol=1e-9)
    # each window alone gives its row of the batched call
    alone = pred.first.predict_arrays(wins[1:2])
    np.testing.assert_allclose(alone.probs[0], per.probs[1], rtol=1e-5, atol=1e-7)


def test_ensemble_errors(runs, tmp_path):
    from musicaffect.errors import ConfigError

    with pytest.raises(CheckpointError, match="not a run folder"):
        write_ensemble(tmp_path / "e", [tmp_path / "missing"])
    with pytest.raises(ConfigError, match="positive weight"):
        write_ensemble(tmp_path / "e", [runs / "lstm"], weights=[0])
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "ensemble.json").write_text("{}")
    with pytest.raises(CheckpointError, match="not a musicaffect ensemble"):
        Predictor.load(tmp_path / "bad")


def test_evaluate_several_runs_needs_out(runs, sample_root, capsys):
    assert main(["evaluate", str(runs / "lstm"), str(runs / "cnn"), sample_root]) == 2
    assert "--out" in capsys.readouterr().err


def test_submission_rows_are_sorted_ids(runs, sample_root, tmp_path):
    out = tmp_path / "s.csv"
    assert main(["submit", str(runs / "multi"), sample_root, "--out", str(out)]) == 0
    rows = list(csv.reader(open(out)))
    ids = [r[0].split(".")[0] for r in rows[1:]]
    assert ids == sorted(ids)
