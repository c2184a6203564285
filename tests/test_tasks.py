"""Task specs: what the vocabulary gives each task, and the heads, losses, transforms, label
encoding, metrics and checkpoints that follow from a spec. Binary targets train with BCE."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.special import expit
from torch.nn import functional as F

from musicaffect.data.labels import CLASSES
from musicaffect.data.vocab import Vocabulary, lab_vocabulary
from musicaffect.errors import ConfigError, DataError
from musicaffect.evaluation.inference import outputs_metrics, predict_outputs, predict_transform
from musicaffect.models.checkpoint import make_checkpoint, task_specs
from musicaffect.models.heads import RegressionHead, make_head
from musicaffect.tasks import (
    BINARY,
    MULTICLASS,
    REGRESSION,
    TaskSpec,
    legacy_specs,
    multiclass,
    specs_from_dict,
    specs_to_dict,
)
from musicaffect.training.losses import TaskLoss, build_loss


@pytest.fixture
def emopia() -> Vocabulary:
    """A vocabulary like EMOPIA's: two classes, binary arousal, continuous tension."""
    return Vocabulary(classes=("q1", "q2"), targets=("arousal", "tension"),
                      kinds={"arousal": "binary", "tension": "continuous"},
                      ranges={"arousal": (0.0, 1.0), "tension": (-2.0, 3.0)},
                      mapping={"q1": "q1", "q2": "q2"}, genre_map="none",
                      source="labels.json")


def test_the_vocabulary_gives_each_task_its_spec(emopia):
    specs = emopia.task_specs(["genre", "arousal", "tension"], bounded=True)
    assert [s.kind for s in specs.values()] == [MULTICLASS, BINARY, REGRESSION]
    assert [s.n_outputs for s in specs.values()] == [2, 1, 1]
    assert specs["genre"].classes == ("q1", "q2") and specs["genre"].is_multiclass
    assert specs["arousal"].is_classification and specs["arousal"].has_binary_labels
    assert not specs["arousal"].bounded                # a binary task has logits, not bounds
    assert specs["tension"].bounded and not specs["tension"].is_classification
    lab = lab_vocabulary().task_specs(["genre", "valence"])
    assert lab["genre"].n_outputs == len(CLASSES) and lab["valence"].kind == REGRESSION
    with pytest.raises(ConfigError, match="unknown task"):
        emopia.task_spec("valence")


def test_spec_validation():
    with pytest.raises(ConfigError, match="unknown kind"):
        TaskSpec("x", "ordinal")
    with pytest.raises(ConfigError, match="at least 2"):
        multiclass("genre", ["only"])


def test_transforms_match_the_former_predict_transform(rng):
    logits = rng.standard_normal((5, 4))
    genre = multiclass("genre", "abcd")
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    np.testing.assert_array_equal(genre.transform(logits), z / z.sum(axis=1, keepdims=True))
    t = torch.as_tensor(logits, dtype=torch.float32)
    assert torch.equal(genre.transform(t), torch.softmax(t, dim=-1))
    v = rng.standard_normal(5)
    assert TaskSpec("valence", REGRESSION).transform(v) is v
    np.testing.assert_array_equal(TaskSpec("valence", REGRESSION, bounded=True).transform(v),
                                  expit(v))
    np.testing.assert_array_equal(TaskSpec("arousal", BINARY, labels="binary").transform(v),
                                  expit(v))
    # plain names still read as before: genre softmax, a target as its loss's bounded says
    np.testing.assert_array_equal(predict_transform("genre", logits), genre.transform(logits))
    np.testing.assert_array_equal(predict_transform("energy", v, True), expit(v))


def test_untransform_inverts_the_transform(rng):
    p = rng.dirichlet(np.ones(3), size=4)
    genre = multiclass("genre", "abc")
    np.testing.assert_allclose(genre.transform(genre.untransform(p)), p, rtol=1e-5)
    s = rng.uniform(0.05, 0.95, 6)
    binary = TaskSpec("arousal", BINARY, labels="binary")
    np.testing.assert_allclose(binary.transform(binary.untransform(s)), s, rtol=1e-5)


def test_label_encoding(emopia):
    specs = emopia.task_specs(["genre", "arousal"])
    assert specs["genre"].encode("q2") == 1 and specs["genre"].encode(None) == -100
    assert specs["genre"].label_dtype == "int64" and specs["arousal"].label_dtype == "float32"
    assert specs["arousal"].encode(1) == 1.0
    with pytest.raises(DataError, match="not in this vocabulary"):
        specs["genre"].encode("q3")


def test_heads_follow_the_spec(emopia):
    specs = emopia.task_specs(["genre", "arousal", "tension"])
    z = torch.randn(3, 8)
    assert make_head(8, specs["genre"])(z).shape == (3, 2)
    for t in ("arousal", "tension"):
        head = make_head(8, specs[t])
        assert isinstance(head, RegressionHead) and head(z).shape == (3,)
    # output sizes as checkpoints store them build the same heads
    assert type(make_head(8, 1)) is RegressionHead and make_head(8, 5)(z).shape == (3, 5)


def test_binary_targets_train_with_bce(emopia, rng):
    specs = emopia.task_specs(["arousal"])
    loss = build_loss(specs)
    assert loss.losses["arousal"].kind == "bce"
    logits = torch.as_tensor(rng.standard_normal(6), dtype=torch.float32)
    y = torch.tensor([0.0, 1.0, 1.0, 0.0, float("nan"), 1.0])
    total, _ = loss({"arousal": logits}, {"arousal": y})
    keep = ~torch.isnan(y)
    expected = F.binary_cross_entropy_with_logits(logits[keep], y[keep])
    assert total.item() == pytest.approx(expected.item(), rel=1e-6)
    with pytest.raises(ConfigError, match="regression only"):
        TaskLoss("bce", bounded=True)


def test_bce_learns_a_separable_binary_target(emopia):
    """A linear head trained with the binary spec's loss ranks the positives first."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=gen)
    y = (x[:, 0] > 0).float()
    spec = emopia.task_spec("arousal")
    head = make_head(4, spec)
    loss = build_loss({"arousal": spec})
    opt = torch.optim.SGD(head.parameters(), lr=0.5)
    for _ in range(100):
        opt.zero_grad()
        total, _ = loss({"arousal": head(x)}, {"arousal": y})
        total.backward()
        opt.step()
    with torch.no_grad():
        score = spec.transform(head(x)).numpy()
    m = spec.metrics(y.numpy(), score)
    assert m["binary"]["roc_auc"] > 0.98 and m["binary"]["balanced_accuracy"] > 0.9
    assert 0.0 < score.min() and score.max() < 1.0        # a probability, not a raw value


def test_specs_and_names_give_the_same_losses(rng):
    """Genre and regression losses are the same built from specs or from plain names."""
    specs = lab_vocabulary().task_specs(["genre", "valence", "energy"], bounded=True)
    by_name = build_loss(["genre", "valence", "energy"], bounded=True, rank_weight=0.3,
                         label_smoothing=0.1)
    by_spec = build_loss(specs, rank_weight=0.3, label_smoothing=0.1)
    out = {"genre": torch.as_tensor(rng.standard_normal((8, 10)), dtype=torch.float32),
           "valence": torch.as_tensor(rng.standard_normal(8), dtype=torch.float32),
           "energy": torch.as_tensor(rng.standard_normal(8), dtype=torch.float32)}
    y = {"genre": torch.as_tensor(rng.integers(0, 10, 8)),
         "valence": torch.as_tensor(rng.uniform(size=8), dtype=torch.float32),
         "energy": torch.as_tensor(rng.uniform(size=8), dtype=torch.float32)}
    a, pa = by_name(out, y)
    b, pb = by_spec(out, y)
    assert torch.equal(a, b) and all(torch.equal(pa[t], pb[t]) for t in pa)


class _Model(torch.nn.Module):
    """Outputs that depend on the frames only: genre logits (B, 3), a binary logit (B,)."""

    def forward(self, x, lengths):
        m = x.mean(dim=(1, 2))
        return {"genre": torch.stack([m, -m, 2 * m], dim=1), "arousal": 3 * m,
                "embedding": x.mean(dim=1)}


def _loader(rng, n=3):
    from musicaffect.data.loading import make_loader

    items = [{"x": torch.as_tensor(rng.standard_normal((t, 2)), dtype=torch.float32),
              "length": t, "y": {"genre": torch.tensor(i % 3), "arousal": torch.tensor(i % 2 * 1.0)},
              "id": str(i)} for i, t in enumerate([20, 9, 33][:n])]
    return make_loader(items, None, batch_size=n)


def test_windows_of_a_binary_task_average_its_scores(rng):
    """Over excerpt windows, a binary task's clip score is the mean of the window sigmoids
    (returned as its logit), as for a bounded regression head."""
    from musicaffect.data.windows import plan_windows

    loader = _loader(rng)
    specs = {"genre": multiclass("genre", "abc"),
             "arousal": TaskSpec("arousal", BINARY, labels="binary")}
    res = predict_outputs(_Model(), loader, chunk_frames=8, chunk_hop=4, specs=specs)
    batch = next(iter(loader))
    owner, starts, _ = plan_windows(batch["lengths"].tolist(), 8, 4)
    for clip in range(3):
        wins = [batch["x"][clip, s:s + 8] for s, o in zip(starts, owner) if o == clip]
        scores = [torch.sigmoid(3 * w.mean()).item() for w in wins]
        assert expit(res["out:arousal"][clip]) == pytest.approx(np.mean(scores), rel=1e-5)
    # no spec: a (B,) output reads as an unbounded regression value (its plain mean)
    plain = predict_outputs(_Model(), loader, chunk_frames=8, chunk_hop=4)
    assert not np.allclose(plain["out:arousal"], res["out:arousal"])
    np.testing.assert_array_equal(plain["out:genre"], res["out:genre"])


def test_validation_metrics_from_specs_equal_the_named_ones(rng):
    res = predict_outputs(_Model(), _loader(rng))
    named = outputs_metrics(res, ["genre", "arousal"], bounded=False, classes=("a", "b", "c"))
    specs = legacy_specs(["genre", "arousal"], classes=("a", "b", "c"))
    assert outputs_metrics(res, ["genre", "arousal"], specs=specs) == named
    assert set(named) == {"accuracy", "macro_f1", "spearman_arousal", "spearman_mean"}


# --------------------------------------------------------------------------- checkpoints

def test_checkpoint_stores_and_returns_its_specs(emopia):
    from musicaffect.models import build_model

    specs = emopia.task_specs(["genre", "arousal"])
    model = build_model("cnn", {"channels": [2, 2, 2, 2]}, 8,
                        {t: s.n_outputs for t, s in specs.items()})
    ckpt = make_checkpoint(model, {"loss": {"bounded": False}}, classes=emopia.classes,
                           epoch=0, metrics={}, data_info={}, vocab=emopia.to_dict(),
                           specs=specs)
    assert ckpt["targets"] == ["arousal"]
    assert task_specs(ckpt) == specs
    assert specs_from_dict(specs_to_dict(specs)) == specs


def test_old_checkpoints_derive_specs_from_what_they_store(emopia):
    """A checkpoint written before task specs: genre multiclass over its classes, every
    target regression as its config's loss.bounded said (binary targets trained so then),
    binary labels still marked for the detector metrics."""
    ckpt = {"model": {"tasks": {"genre": 2, "arousal": 1, "tension": 1}},
            "config": {"loss": {"bounded": True}}, "classes": ["q1", "q2"],
            "targets": ["arousal", "tension"],
            "kinds": {"arousal": "binary", "tension": "continuous"},
            "vocab": emopia.to_dict()}
    specs = task_specs(ckpt)
    assert specs["genre"] == multiclass("genre", ["q1", "q2"])
    assert specs["arousal"] == TaskSpec("arousal", REGRESSION, bounded=True, labels="binary")
    assert specs["tension"].kind == REGRESSION and specs["tension"].labels == "continuous"
    # the oldest: no vocabulary, the lab's classes and targets
    lab = task_specs({"model": {"tasks": {"genre": 10, "valence": 1}}, "config": {}})
    assert lab["genre"].classes == CLASSES and lab["valence"] == TaskSpec("valence", REGRESSION)


OLD = Path(__file__).parent / "data"


def _fixed_input(f: int, n: int, k: int) -> np.ndarray:
    i, j = np.arange(f)[:, None], np.arange(n)[None, :]
    return (2.0 * np.sin(0.3 * i + 0.07 * (k + 1) * j + 0.01 * i * j)).astype(np.float32)


@pytest.mark.parametrize("tag", ["plain", "bounded"])
def test_old_binary_checkpoints_predict_as_before(tag):
    """Runs on 0/1 targets trained before BCE (MSE, with ``loss.bounded`` false / true) load
    as regression tasks with binary labels and predict what they predicted then.

    ``tests/data/old_binary_mse_{plain,bounded}.pt`` and ``old_binary_mse.npz`` were written
    by the code before the wiring (commit 3a6ed99): ``train DATA --preset
    affect-cnn-full-fused --set data.tasks=[arousal, valence] --set train.epochs=1 --set
    train.batch_size=4 --set data.val_fraction=0.34 --set loss.bounded=... --set
    model.params.channels=[4,4,4,4] --set model.params.embed_dim=8`` on generated songs
    with binary arousal / valence labels, then ``DeepMember(best.pt).predict_arrays`` of the
    three ``_fixed_input`` arrays."""
    from musicaffect.evaluation.predictor import DeepMember

    member = DeepMember(OLD / f"old_binary_mse_{tag}.pt").to(torch.device("cpu"))
    assert "task_specs" not in member.ckpt
    assert all(s.kind == REGRESSION and s.has_binary_labels and s.bounded == (tag == "bounded")
               for s in member.specs.values())
    want = np.load(OLD / "old_binary_mse.npz")
    got = member.predict_arrays([_fixed_input(member.n_features, n, k)
                                 for k, n in enumerate((40, 64, 90))])
    assert set(got.values) == {"arousal", "valence"} and got.probs is None
    for t, v in got.values.items():
        np.testing.assert_allclose(v, want[f"{tag}/{t}"], rtol=0, atol=1e-6)


def test_dataset_labels_follow_the_specs(sample_root):
    from musicaffect.data.dataset import SpectrogramDataset

    ds = SpectrogramDataset(sample_root, dataset="multitask", tasks="all", use_cache=False)
    assert set(ds.specs) == {"valence", "energy", "danceability"}
    assert all(s.kind == REGRESSION for s in ds.specs.values())
    assert ds[0]["y"]["valence"].dtype == torch.float32
    genre = SpectrogramDataset(sample_root, dataset="genre", use_cache=False)
    assert genre.specs["genre"].is_multiclass and genre[0]["y"]["genre"].dtype == torch.int64
    vocab = replace(lab_vocabulary(), kinds={"valence": "binary"})
    assert vocab.task_spec("valence").kind == BINARY
