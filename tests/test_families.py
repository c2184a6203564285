"""Model families as plugins: every family's model loads as one Member protocol, an ensemble
is itself a member, and a new family is one module: registered, it is trained by ``fit``,
recognised in its run folder and predicted by the Predictor without any other change."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from musicaffect.cli import main
from musicaffect.config import MEMBERS_INHERIT, RESUME_FREE, load_config
from musicaffect.errors import CheckpointError
from musicaffect.families import registry
from musicaffect.families.base import Family, Member

TINY = ["--set", "train.epochs=1", "--set", "train.max_batches_per_epoch=2", "--no-progress"]


@pytest.fixture(scope="module")
def trained(sample_root, tmp_path_factory):
    """A deep run, a classical run and the ensemble of both."""
    base = tmp_path_factory.mktemp("families")
    assert main(["train", sample_root, "--preset", "lstm-beat-mel", "--out", str(base / "deep"),
                 "--set", "model.params.hidden_size=16", *TINY]) == 0
    assert main(["train", sample_root, "--preset", "classical-logreg", "--out",
                 str(base / "classical"), "--set", "model.params.cv_folds=2",
                 "--set", "data.view=mel", "--no-progress"]) == 0
    assert main(["ensemble", str(base / "deep"), str(base / "classical"), "--out",
                 str(base / "ens"), "--weights", "3,1"]) == 0
    return base


def test_every_family_loads_as_a_member(trained):
    kinds = {}
    for name in ("deep", "classical", "ens"):
        member = registry.load(trained / name)
        assert isinstance(member, Member), name
        kinds[name] = member.kind
        assert registry.model_file(trained / name).is_file()
    assert kinds == {"deep": "deep", "classical": "classical", "ens": "ensemble"}


def test_an_ensemble_is_a_member_that_predicts_like_its_members(trained, sample_root):
    from musicaffect.evaluation.predictor import Predictor

    ens = registry.load(trained / "ens")
    assert [w for _, w in registry.expand(ens)] == [3.0, 1.0]
    pred = Predictor.load(trained / "ens", device="cpu")
    assert pred.sources[0].name == "ens" and len(pred.members) == 2
    # the deep member reads the beat rate, the classical one the full rate (both the mel
    # view): the ensemble as one member predicts one dataset with both
    ds = pred.dataset(pred.members[0], sample_root, dataset="genre", split="test")
    whole = ens.to("cpu").predict_dataset(ds)
    parts = [m.predict_dataset(ds) for m in pred.members]
    np.testing.assert_allclose(whole.probs, 0.75 * parts[0].probs + 0.25 * parts[1].probs)


def test_an_ensemble_that_contains_itself_is_refused(trained, tmp_path):
    loop = tmp_path / "loop"
    loop.mkdir()
    (loop / "ensemble.json").write_text(json.dumps(
        {"format": "musicaffect-ensemble/1", "members": [str(loop)], "weights": [1.0]}))
    with pytest.raises(CheckpointError, match="contains itself"):
        registry.load(loop)


# ----------------------------------------------------------------------------- a new family

class PriorMember:
    """The toy family's model: the class frequencies of its training part, for every clip."""

    kind = "prior"

    def __init__(self, path: Path, *, which: str = "best"):
        from musicaffect.config import config_from_dict
        from musicaffect.data.vocab import vocabulary_of_checkpoint
        from musicaffect.features.params import checkpoint_feature_params
        from musicaffect.models.predictions import vocab_attributes

        file = path if path.is_file() else path / "prior.json"
        self.meta = json.loads(file.read_text())
        self.cfg = config_from_dict(self.meta["config"])
        self.name, self.path, self.run_dir = self.cfg.name, str(file), file.parent
        self.tasks = ["genre"]
        vocab_attributes(self, vocabulary_of_checkpoint(self.meta))
        self.n_features = self.meta["n_features"]
        self.n_classes = len(self.classes)
        self.epoch = None
        self.feature_params = checkpoint_feature_params(self.meta)

    def to(self, device):
        return self

    def _rows(self, ids):
        from musicaffect.models.predictions import Predictions

        probs = np.tile(np.asarray(self.meta["prior"]), (len(ids), 1))
        return Predictions(list(ids), probs, {}, {}, list(self.classes))

    def predict_dataset(self, dataset, *, batch_size: int = 32):
        return self._rows([r.id for r in dataset.records])

    def predict_arrays(self, arrays):
        return self._rows([str(i) for i in range(len(arrays))])


def fit_prior(cfg, data_root, run_dir, *, resume=False, overwrite=False, progress=True,
              train=None):
    from musicaffect.data.loading import prepare_data
    from musicaffect.training.result import FitResult

    data = prepare_data(cfg, data_root)
    y = data.dataset.labels("genre")[data.train_idx]
    prior = np.bincount(y, minlength=len(data.vocab.classes)) / len(y)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True)
    (run_dir / "prior.json").write_text(json.dumps(
        {"config": cfg.to_dict(), "prior": prior.tolist(), "n_features": data.n_features,
         "vocab": data.vocab.to_dict()}))
    return FitResult(run_dir, 0, 0.0, "val_loss", [], False, {}, 0.0)


PRIOR = Family(
    name="prior", params=None, fit=fit_prior,
    model_file=lambda p: p / "prior.json" if (p / "prior.json").is_file() else None,
    checkpoint_files=("prior.json",), load=PriorMember, claims=lambda name: name == "prior",
    describe=lambda cfg, res, out: f"prior {out}")


def test_a_new_family_is_one_registration(sample_root, tmp_path, monkeypatch, capsys):
    from musicaffect.evaluation.predictor import Predictor, is_model_path
    from musicaffect.training.engine import fit
    from musicaffect.training.rundir import has_checkpoint

    monkeypatch.setitem(registry._FAMILIES, "prior", PRIOR)
    assert registry.families()[-1].fallback             # the fallback stays last
    cfg = load_config("lstm-beat-mel", ["model.name=prior", "model.params={}"])
    run = tmp_path / "prior"
    fit(cfg, sample_root, run, progress=False)
    assert is_model_path(run) and has_checkpoint(run)
    pred = Predictor.load(run).predict_split(sample_root, dataset="genre", split="test")
    assert pred.probs.shape == (len(pred.ids), 10)
    np.testing.assert_allclose(pred.probs.sum(axis=1), 1.0)
    assert main(["train", sample_root, "--config", _yaml(cfg, tmp_path), "--out",
                 str(tmp_path / "cli"), "--no-progress"]) == 0
    assert f"prior {tmp_path / 'cli'}" in capsys.readouterr().out


def _yaml(cfg, tmp_path) -> str:
    from musicaffect.config import save_config

    save_config(cfg, tmp_path / "prior.yaml")
    return str(tmp_path / "prior.yaml")


def test_settings_flags_are_config_field_metadata():
    from musicaffect.config import keys_with
    from musicaffect.training.rundir import RESUME_FREE_KEYS

    assert RESUME_FREE_KEYS == keys_with(RESUME_FREE)
    assert {"train.epochs", "model.params.impl", "name"} <= RESUME_FREE_KEYS
    assert "train.lr" not in RESUME_FREE_KEYS and "seed" not in RESUME_FREE_KEYS
    inherit = keys_with(MEMBERS_INHERIT)
    assert {"seed", "data.tasks", "train.epochs"} <= inherit
    assert not inherit & {"model.name", "data.view", "train.lr"}
