"""Feature parameters travel with the model: a run stores the parameters its data was made
with (the root's feature_params.json, else the dataset's recipe) and `predict` computes each
model's features with them."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import soundfile as sf

from musicaffect.config import load_config
from musicaffect.features.params import (
    FeatureParams,
    checkpoint_feature_params,
    root_feature_params,
)
from musicaffect.models.checkpoint import load_checkpoint

pytestmark = pytest.mark.slow   # builds a data root from audio and trains on it (seconds); `make test` runs it

SR = 22050
TINY = ["model.params.hidden_size=8", "model.params.num_layers=1", "model.params.dropout=0.0",
        "train.batch_size=16", "train.epochs=1", "train.patience=0"]


@pytest.fixture(scope="module")
def hop_root(sample_root, tmp_path_factory):
    """The sample data with a feature_params.json that says hop 1024 (not the recipe's 512)."""
    root = tmp_path_factory.mktemp("hop") / "data"
    shutil.copytree(sample_root, root)
    FeatureParams(hop_length=1024).write(root / "feature_params.json")
    return root


@pytest.fixture(scope="module")
def hop_runs(hop_root, tmp_path_factory):
    from musicaffect.training.engine import fit

    runs = tmp_path_factory.mktemp("runs")
    fit(load_config("lstm-full-mel", TINY), hop_root, runs / "deep", progress=False)
    fit(load_config("classical-logreg", ["model.params.cv_folds=2"]), hop_root,
        runs / "classical", progress=False)
    return runs


def test_root_params_file_or_recipe(hop_root, sample_root):
    assert root_feature_params(hop_root).hop_length == 1024
    assert root_feature_params(sample_root) == FeatureParams()
    assert checkpoint_feature_params({}) == FeatureParams()
    assert checkpoint_feature_params({"feature_params": {"hop_length": 256}}).hop_length == 256


def test_checkpoints_store_the_datas_params(hop_runs):
    import json

    ckpt = load_checkpoint(hop_runs / "deep")
    assert ckpt["feature_params"]["hop_length"] == 1024
    assert ckpt["feature_params"]["sr"] == FeatureParams().sr
    meta = json.loads((hop_runs / "classical" / "checkpoints" / "best.classical.json")
                      .read_text())
    assert meta["feature_params"]["hop_length"] == 1024


def test_predict_uses_each_models_params(hop_runs, sample_root, tmp_path, monkeypatch):
    """A hop-1024 model and a recipe model (hop 512) each get their own features."""
    from musicaffect.features import audio
    from musicaffect.predict import load_models, predict_files
    from musicaffect.training.engine import fit

    fit(load_config("lstm-full-mel", TINY), sample_root, tmp_path / "plain", progress=False)
    seen = []
    real = audio.extract_file

    def spy(path, *, params=None, **kw):
        out = real(path, params=params, **kw)
        seen.append((params.hop_length, out["full"].shape[1]))
        return out

    monkeypatch.setattr(audio, "extract_file", spy)
    song = tmp_path / "song.wav"
    t = np.arange(int(6.0 * SR)) / SR
    sf.write(song, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), SR)
    models = load_models([hop_runs / "deep", hop_runs / "classical", tmp_path / "plain"])
    assert [m.feature_params.hop_length for m in models.members] == [1024, 1024, 512]
    (pred,) = predict_files(models, [song], progress=False)
    assert pred.error is None and pred.genre
    hops = dict(seen)
    assert set(hops) == {1024, 512}                 # one extraction per parameter set
    assert hops[512] == pytest.approx(2 * hops[1024], abs=1)   # frames follow the hop


def test_old_checkpoints_fall_back_to_the_recipe(hop_runs, tmp_path):
    """A checkpoint written before feature_params existed predicts with the recipe."""
    import torch

    from musicaffect.evaluation.predictor import DeepMember
    from musicaffect.models.checkpoint import atomic_save

    ckpt = load_checkpoint(hop_runs / "deep")
    old = {k: v for k, v in ckpt.items() if k not in ("feature_params", "path")}
    atomic_save(old, tmp_path / "old.pt")
    assert "feature_params" not in torch.load(tmp_path / "old.pt", weights_only=True)
    assert DeepMember(tmp_path / "old.pt").feature_params == FeatureParams()
