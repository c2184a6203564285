"""Loss modules: per-task losses, the rank term, fixed and learned multitask weighting."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats
from torch.nn import functional as F

from musicaffect.errors import ConfigError
from musicaffect.evaluation.inference import predict_transform
from musicaffect.training.losses import (
    MultiTaskLoss,
    TaskLoss,
    build_loss,
    soft_rank,
    soft_spearman_loss,
)


@pytest.fixture
def gen() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def test_pointwise_kinds_match_torch(gen):
    out = torch.randn(16, generator=gen)
    target = torch.rand(16, generator=gen)
    assert TaskLoss("mse")(out, target) == pytest.approx(F.mse_loss(out, target).item())
    assert TaskLoss("l1")(out[:, None], target) == pytest.approx(F.l1_loss(out, target).item())
    assert TaskLoss("huber", huber_delta=0.5)(out, target) == pytest.approx(
        F.huber_loss(out, target, delta=0.5).item())


def test_cross_entropy_with_label_smoothing(gen):
    logits = torch.randn(8, 10, generator=gen)
    target = torch.randint(0, 10, (8,), generator=gen)
    got = TaskLoss("ce", label_smoothing=0.1)(logits, target)
    assert got.item() == pytest.approx(
        F.cross_entropy(logits, target, label_smoothing=0.1).item())


def test_bounded_applies_sigmoid(gen):
    out = torch.randn(32, generator=gen) * 3
    target = torch.rand(32, generator=gen)
    bounded = TaskLoss("mse", bounded=True)(out, target)
    assert bounded.item() == pytest.approx(F.mse_loss(torch.sigmoid(out), target).item())
    assert bounded.item() != pytest.approx(F.mse_loss(out, target).item())
    # predict_transform applies the same map at prediction time
    assert torch.allclose(predict_transform("valence", out, bounded=True), torch.sigmoid(out))
    assert predict_transform("valence", out, bounded=False) is out


def test_nan_targets_are_ignored():
    out = torch.tensor([0.1, 0.2, 0.9])
    target = torch.tensor([0.1, float("nan"), 0.5])
    expected = F.mse_loss(out[[0, 2]], target[[0, 2]])
    assert TaskLoss("mse")(out, target).item() == pytest.approx(expected.item())


def test_soft_rank_approaches_exact_ranks(gen):
    x = 0.1 * torch.randperm(20, generator=gen).float()  # distinct values, 0.1 apart
    exact = torch.from_numpy(stats.rankdata(x.numpy())).float()
    assert torch.allclose(soft_rank(x, temperature=1e-3), exact, atol=1e-3)


def test_rank_loss_differentiable_and_prefers_correct_order(gen):
    target = torch.rand(24, generator=gen)
    good = (target * 4 - 2).clone().requires_grad_(True)  # same order as target
    bad = (-target * 4 + 2).clone().requires_grad_(True)  # reversed order
    l_good = soft_spearman_loss(good, target)
    l_bad = soft_spearman_loss(bad, target)
    assert l_good.item() < 0.05 < 1.9 < l_bad.item()
    l_bad.backward()
    assert bad.grad is not None and torch.isfinite(bad.grad).all() and bad.grad.abs().sum() > 0

    # combined with a pointwise loss: rank_weight adds exactly weight * rank term
    pred = torch.randn(24, generator=gen)
    base = TaskLoss("mse")(pred, target)
    both = TaskLoss("mse", rank_weight=0.5)(pred, target)
    assert both.item() == pytest.approx(base.item() + 0.5 * soft_spearman_loss(pred, target).item(),
                                        rel=1e-5)


def test_rank_term_raises_spearman_in_training(gen):
    x = torch.randn(64, 3, generator=gen)
    target = torch.sigmoid(x @ torch.tensor([1.0, -2.0, 0.5]))
    w = torch.zeros(3, requires_grad=True)
    opt = torch.optim.SGD([w], lr=0.5)
    for _ in range(50):
        opt.zero_grad()
        soft_spearman_loss(x @ w, target).backward()
        opt.step()
    rho = stats.spearmanr((x @ w).detach().numpy(), target.numpy())[0]
    assert rho > 0.9


def test_degenerate_batches_give_finite_loss():
    one = torch.tensor([0.3], requires_grad=True)
    loss = TaskLoss("mse", rank_weight=1.0)(one, torch.tensor([0.5]))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(one.grad).all()
    const_target = torch.full((5,), 0.5)
    assert torch.isfinite(soft_spearman_loss(torch.randn(5), const_target))


def test_multitask_equals_weighted_sum_of_parts(gen):
    loss = build_loss(["genre", "valence", "energy"], weights={"valence": 0.4, "energy": 0.2})
    outputs = {"embedding": torch.randn(8, 5, generator=gen),
               "genre": torch.randn(8, 10, generator=gen),
               "valence": torch.randn(8, generator=gen), "energy": torch.randn(8, generator=gen)}
    targets = {"genre": torch.randint(0, 10, (8,), generator=gen),
               "valence": torch.rand(8, generator=gen), "energy": torch.rand(8, generator=gen)}
    total, parts = loss(outputs, targets)
    assert set(parts) == {"genre", "valence", "energy"}
    assert parts["genre"].item() == pytest.approx(
        F.cross_entropy(outputs["genre"], targets["genre"]).item())
    expected = parts["genre"] + 0.4 * parts["valence"] + 0.2 * parts["energy"]
    assert total.item() == pytest.approx(expected.item())
    assert loss.current_weights() == {"genre": 1.0, "valence": 0.4, "energy": 0.2}
    assert list(loss.parameters()) == []


def test_learned_weights_change_with_training(gen):
    tasks = ["valence", "energy", "danceability"]
    loss = build_loss(tasks, learn_weights=True, weights={"valence": 2.0})
    start = loss.current_weights()
    assert start["valence"] == pytest.approx(2.0) and start["energy"] == pytest.approx(1.0)
    x = torch.randn(32, 4, generator=gen)
    heads = torch.nn.Linear(4, 3)
    with torch.no_grad():
        heads.weight.copy_(0.1 * torch.randn(3, 4, generator=gen))
        heads.bias.zero_()
    # energy is easy (a linear function of x), danceability is noise
    targets = {"valence": torch.sigmoid(x[:, 0]), "energy": torch.sigmoid(x[:, 1]),
               "danceability": torch.rand(32, generator=gen)}
    opt = torch.optim.Adam([*heads.parameters(), *loss.parameters()], lr=0.05)
    for _ in range(30):
        out = heads(x)
        outputs = {t: out[:, i] for i, t in enumerate(tasks)}
        total, parts = loss(outputs, targets)
        opt.zero_grad()
        total.backward()
        opt.step()
    end = loss.current_weights()
    assert all(end[t] != pytest.approx(start[t], rel=1e-3) for t in tasks)
    # the noisy task ends with a smaller weight than the learnable one
    assert end["danceability"] < end["energy"]
    with torch.no_grad():
        out = heads(x)
        total, parts = loss({t: out[:, i] for i, t in enumerate(tasks)}, targets)
    s = {t: loss.log_vars[t].detach() for t in tasks}
    expected = sum(torch.exp(-s[t]) * parts[t] + s[t] for t in tasks)
    assert total.item() == pytest.approx(expected.item(), rel=1e-4, abs=1e-6)


def test_config_errors():
    with pytest.raises(ConfigError, match="unknown task"):
        build_loss(["arousal"])
    with pytest.raises(ConfigError, match="regression loss"):
        build_loss(["valence"], regression="hinge")
    with pytest.raises(ConfigError, match="unknown task"):
        build_loss(["valence"], weights={"energy": 1.0})
    with pytest.raises(ConfigError, match="regression only"):
        TaskLoss("ce", rank_weight=1.0)
    with pytest.raises(ValueError, match="missing from the model outputs"):
        MultiTaskLoss({"valence": TaskLoss()})({}, {"valence": torch.zeros(2)})


def test_predict_transform_genre_softmax(gen):
    logits = torch.randn(4, 10, generator=gen)
    probs = predict_transform("genre", logits)
    assert torch.allclose(probs.sum(dim=1), torch.ones(4))
    np_probs = predict_transform("genre", logits.numpy())
    assert isinstance(np_probs, np.ndarray)
    assert np.allclose(np_probs, probs.numpy(), atol=1e-6)
    bounded_np = predict_transform("energy", np.array([0.0, 1000.0, -1000.0]), bounded=True)
    assert np.allclose(bounded_np, [0.5, 1.0, 0.0])
