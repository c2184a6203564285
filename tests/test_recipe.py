"""Training-recipe options: each one changes what it should, and runs stay resumable.

Normalisation fitted on the training part only, SpecAugment bands, mixup, label smoothing,
class balancing (sampler and loss), warm-up, gradient clipping, EMA weights, and exact resume
of an excerpt-trained run with all of them on.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from musicaffect.config import load_config
from musicaffect.data.loading import EpochBatchSampler, prepare_data
from musicaffect.errors import ConfigError
from musicaffect.models.checkpoint import load_checkpoint, load_model
from musicaffect.training.engine import build_run_model, fit, lr_factor
from musicaffect.training.losses import TaskLoss, balanced_class_weights, build_loss
from musicaffect.training.recipe import WeightEMA, balanced_sample_weights, mixup_batch

TINY_LSTM = ["model.params.hidden_size=8", "model.params.num_layers=1",
             "model.params.dropout=0.0", "train.batch_size=8", "train.patience=0"]
TINY_SHORT = ["model.params.stem_channels=4", "model.params.channels=[4,8]",
              "model.params.embed_dim=8", "train.batch_size=8", "train.patience=0",
              "data.view=chroma"]


def _params(state: dict) -> dict:
    return {k: v for k, v in state.items() if "running_" not in k and "num_batches" not in k
            and k not in ("mean", "std")}


# ----------------------------------------------------------------------------- normalisation

def test_normalisation_statistics_come_from_the_training_split_only(sample_root):
    cfg = load_config("lstm-beat-chroma", TINY_LSTM)
    data = prepare_data(cfg, sample_root)
    val = set(data.val_idx.tolist())
    train_frames = np.concatenate([data.dataset[int(i)]["x"].numpy() for i in data.train_idx])

    class Poisoned:
        """The same clips, except that every validation clip is scaled by 1000."""

        def __init__(self, ds):
            self.ds = ds

        def __len__(self):
            return len(self.ds)

        def __getitem__(self, i):
            item = self.ds[i]
            return {**item, "x": item["x"] * 1000.0} if int(i) in val else item

    data.dataset = Poisoned(data.dataset)
    model = build_run_model(cfg, data)
    np.testing.assert_allclose(model.mean.numpy(), train_frames.mean(axis=0), atol=1e-4)
    np.testing.assert_allclose(model.std.numpy(), train_frames.std(axis=0), rtol=1e-3,
                               atol=1e-5)
    off = build_run_model(load_config("lstm-beat-chroma", [*TINY_LSTM, "data.normalize=false"]),
                          data)
    assert torch.equal(off.mean, torch.zeros_like(off.mean))


# ----------------------------------------------------------------------------- SpecAugment

def test_spec_augment_mask_bands_masks_more():
    from musicaffect.models import build_model

    def masked_bins(bands: int) -> int:
        torch.manual_seed(0)
        model = build_model("cnn", {"channels": [4], "freq_mask": 3, "mask_bands": bands},
                            12, {"genre": 10}).train()
        seen = {}
        model.backbone.register_forward_pre_hook(lambda m, a: seen.update(x=a[0]))
        total = 0
        for _ in range(20):
            model(torch.ones(4, 30, 12) * 5.0, torch.full((4,), 30))
            total += int((seen["x"] == 0).all(dim=1).sum())   # whole feature bins zeroed
        return total

    one, three = masked_bins(1), masked_bins(3)
    assert 0 < one < three


# ----------------------------------------------------------------------------- mixup

def test_mixup_batch_mixes_inputs_and_targets():
    x = torch.arange(4 * 6 * 2, dtype=torch.float32).view(4, 6, 2)
    lengths = torch.tensor([6, 5, 3, 6])
    y = {"genre": torch.tensor([0, 1, 2, 3]), "energy": torch.tensor([0.0, 0.2, 0.6, 1.0])}
    sizes = {"genre": 10, "energy": 1}
    xm, lm, ym, lam = mixup_batch(x, lengths, y, alpha=0.4, n_classes=sizes, seed=1, epoch=2,
                                  batch=3)
    assert 0.0 < lam < 1.0
    # find the partner of each clip from the mixed one-hot rows
    g = ym["genre"]
    assert g.shape == (4, 10) and g.dtype == torch.float32
    torch.testing.assert_close(g.sum(dim=1), torch.ones(4))
    for i in range(4):
        partner = [j for j in range(4) if j != i and g[i, j] > 0]
        j = partner[0] if partner else i
        torch.testing.assert_close(xm[i], lam * x[i] + (1 - lam) * x[j])
        assert int(lm[i]) == min(int(lengths[i]), int(lengths[j]))
        assert float(ym["energy"][i]) == pytest.approx(lam * float(y["energy"][i])
                                                       + (1 - lam) * float(y["energy"][j]))
    again = mixup_batch(x, lengths, y, alpha=0.4, n_classes=sizes, seed=1, epoch=2, batch=3)
    assert again[3] == lam and torch.equal(again[0], xm)        # pure in (seed, epoch, batch)
    assert mixup_batch(x, lengths, y, alpha=0.4, n_classes=sizes, seed=1, epoch=2,
                       batch=4)[3] != lam


def test_mixup_changes_the_loss_input_in_training(sample_root, tmp_path, monkeypatch):
    from musicaffect.training import losses

    seen = []
    forward = losses.MultiTaskLoss.forward

    def spy(self, outputs, targets):
        if torch.is_grad_enabled():                 # training steps, not validation
            seen.append({k: v.detach().clone() for k, v in targets.items()})
        return forward(self, outputs, targets)

    monkeypatch.setattr(losses.MultiTaskLoss, "forward", spy)
    common = [*TINY_LSTM, "train.epochs=1", "train.max_batches_per_epoch=2"]
    fit(load_config("lstm-beat-chroma", common), sample_root, tmp_path / "a", progress=False)
    assert all(s["genre"].dtype == torch.int64 for s in seen)
    seen.clear()
    fit(load_config("lstm-beat-chroma", [*common, "train.mixup=0.4"]), sample_root,
        tmp_path / "b", progress=False)
    assert len(seen) == 2
    for s in seen:
        g = s["genre"]
        assert g.shape[1] == 10 and g.is_floating_point()
        assert ((g > 0) & (g < 1)).any(), "targets are not mixed"


# ----------------------------------------------------------------------------- smoothing

def test_label_smoothing_applies_to_hard_and_mixed_targets():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 10, generator=gen)
    target = torch.tensor([0, 3, 9, 1, 1, 5])
    smooth, plain = TaskLoss("ce", label_smoothing=0.2), TaskLoss("ce")
    assert float(smooth(logits, target)) != pytest.approx(float(plain(logits, target)))
    onehot = F.one_hot(target, 10).float()
    torch.testing.assert_close(smooth(logits, onehot), smooth(logits, target))
    # smoothing = cross-entropy against (1 - e) * onehot + e / C
    ref = -(((1 - 0.2) * onehot + 0.2 / 10) * torch.log_softmax(logits, -1)).sum(1).mean()
    torch.testing.assert_close(smooth(logits, target), ref)
    loss = build_loss(["genre"], label_smoothing=0.2)
    assert loss.losses["genre"].label_smoothing == 0.2


# ----------------------------------------------------------------------------- balancing

def test_balanced_class_weights_and_weighted_loss():
    labels = np.array([0, 0, 0, 0, 0, 0, 1, 1, 3])
    w = balanced_class_weights(labels, 5)
    assert w[2] == 0 and w[4] == 0
    # every present class carries the same total weight
    totals = [w[c] * (labels == c).sum() for c in (0, 1, 3)]
    assert totals == pytest.approx([3.0, 3.0, 3.0])
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(9, 5, generator=gen)
    loss = TaskLoss("ce", class_weights=w)
    y = torch.as_tensor(labels)
    torch.testing.assert_close(loss(logits, y), F.cross_entropy(logits, y,
                                                                weight=torch.as_tensor(w)))
    assert float(loss(logits, y)) != pytest.approx(float(TaskLoss("ce")(logits, y)))
    with pytest.raises(ConfigError, match="classification"):
        TaskLoss("mse", class_weights=w)


def test_balanced_sampler_evens_out_classes():
    labels = np.array([0] * 80 + [1] * 15 + [2] * 5)
    idx = np.arange(100) + 1000
    sampler = EpochBatchSampler(idx, batch_size=10, seed=3,
                                weights=balanced_sample_weights(labels))
    counts = np.zeros(3)
    for epoch in range(30):
        sampler.set_epoch(epoch)
        drawn = np.concatenate([np.asarray(b) for b in sampler]) - 1000
        assert drawn.size == 100 and drawn.min() >= 0
        counts += np.bincount(labels[drawn], minlength=3)
    share = counts / counts.sum()
    assert np.allclose(share, 1 / 3, atol=0.05), share     # plain shuffling: 0.80/0.15/0.05
    sampler.set_epoch(4)
    assert list(sampler) == list(sampler)                    # pure in (seed, epoch)


def test_balance_option_reaches_the_loss_and_the_sampler(sample_root):
    from musicaffect.training.engine import _balance

    cfg = load_config("lstm-beat-chroma", [*TINY_LSTM, "train.balance=loss"])
    data = prepare_data(cfg, sample_root)
    model = build_run_model(cfg, data)
    labels = data.dataset.labels("genre")[data.train_idx]
    cw, sw = _balance(cfg, data, model)
    assert sw is None
    np.testing.assert_allclose(cw, balanced_class_weights(labels, 10))
    cfg = load_config("lstm-beat-chroma", [*TINY_LSTM, "train.balance=sampler"])
    cw, sw = _balance(cfg, data, model)
    assert cw is None and sw.shape == (len(data.train_idx),)
    with pytest.raises(ConfigError, match="balance"):
        load_config("affect-cnn-full-fused", ["train.balance=loss"])


# ----------------------------------------------------------------------------- schedule

def test_warmup_then_cosine():
    f = [lr_factor(e, epochs=10, schedule="cosine", warmup=3) for e in range(10)]
    assert f[:3] == pytest.approx([0.25, 0.5, 0.75])
    assert f[3] == pytest.approx(1.0)
    assert all(a > b for a, b in zip(f[3:], f[4:]))           # decays after the warm-up
    assert [lr_factor(e, epochs=5, schedule="none", warmup=1) for e in range(3)] == [0.5, 1, 1]
    # no warm-up: the old schedule, unchanged
    assert lr_factor(4, epochs=10, schedule="cosine") == pytest.approx(
        0.05 + 0.95 * 0.5 * (1 + np.cos(np.pi * 0.4)))


def test_warmup_sets_the_learning_rate_of_each_epoch(sample_root, tmp_path):
    cfg = load_config("lstm-beat-chroma", [*TINY_LSTM, "train.epochs=3", "train.lr=0.004",
                                           "train.warmup_epochs=2",
                                           "train.max_batches_per_epoch=1"])
    res = fit(cfg, sample_root, tmp_path / "w", progress=False)
    assert [h["lr"] for h in res.history] == pytest.approx([0.004 / 3, 0.008 / 3, 0.004])


# ----------------------------------------------------------------------------- clipping

def test_gradient_clipping_limits_the_update(sample_root, tmp_path):
    common = [*TINY_LSTM, "train.epochs=1", "train.max_batches_per_epoch=1",
              "train.optimizer=adam", "train.lr=0.01"]

    def change(extra):
        cfg = load_config("lstm-beat-chroma", [*common, *extra])
        data = prepare_data(cfg, sample_root)
        torch.manual_seed(cfg.seed)
        start = _params(build_run_model(cfg, data).state_dict())
        run = tmp_path / ("clip" if extra else "free")
        fit(cfg, sample_root, run, progress=False)
        end = _params(load_checkpoint(run, which="last")["state_dict"])
        return max(float((end[k] - start[k]).abs().max()) for k in start)

    free = change([])
    clipped = change(["train.grad_clip=1e-12"])
    assert free > 1e-3
    assert clipped < free / 100


# ----------------------------------------------------------------------------- EMA

def test_weight_ema_follows_the_model():
    net = torch.nn.Linear(3, 2)
    ema = WeightEMA(net, 0.5)
    start = ema.module.weight.clone()
    with torch.no_grad():
        net.weight.add_(1.0)
    ema.update(net)       # first update: decay min(0.5, 2/11)
    d = 2 / 11
    torch.testing.assert_close(ema.module.weight, d * start + (1 - d) * net.weight)
    assert not torch.equal(ema.module.weight, net.weight)
    state = ema.state_dict()
    other = WeightEMA(torch.nn.Linear(3, 2), 0.5)
    other.load_state_dict(state)
    assert other.steps == 1 and torch.equal(other.module.weight, ema.module.weight)


def test_ema_weights_are_validated_and_saved_as_best(sample_root, tmp_path):
    cfg = load_config("lstm-beat-chroma", [*TINY_LSTM, "train.epochs=1", "train.ema=0.9",
                                           "train.max_batches_per_epoch=3"])
    res = fit(cfg, sample_root, tmp_path / "e", progress=False)
    best = load_checkpoint(tmp_path / "e")
    last = load_checkpoint(tmp_path / "e", which="last")
    assert last["ema"]["steps"] == 3
    for k, v in best["state_dict"].items():
        torch.testing.assert_close(v, last["ema"]["state"][k], rtol=0, atol=0)
    raw, avg = _params(last["state_dict"]), _params(best["state_dict"])
    assert any(not torch.equal(raw[k], avg[k]) for k in raw), "EMA equals the raw weights"
    # the recorded validation loss is that of the EMA weights (best.pt)
    from musicaffect.data.loading import make_loader
    from musicaffect.evaluation.inference import predict_outputs
    from musicaffect.training.engine import _loss_from_outputs

    model, _ = load_model(tmp_path / "e")
    data = prepare_data(cfg, sample_root)
    val = predict_outputs(model, make_loader(data.val, None, batch_size=5))
    loss = _loss_from_outputs(build_loss(["genre"]), val, ["genre"])
    assert loss == pytest.approx(res.history[0]["val_loss"], abs=1e-5)


# ----------------------------------------------------------------------------- resume

def test_chunked_training_with_every_option_resumes_exactly(sample_root, tmp_path):
    cfg = load_config("chunk-cnn-genre", [*TINY_SHORT, "data.chunk_frames=48",
                                          "data.chunk_hop=24", "train.epochs=3",
                                          "train.max_batches_per_epoch=2",
                                          "train.balance=sampler"])
    assert cfg.train.mixup > 0 and cfg.train.ema > 0 and cfg.train.warmup_epochs > 0
    fit(cfg, sample_root, tmp_path / "a", progress=False)
    first = fit(cfg, sample_root, tmp_path / "b", progress=False, stop_after=1)
    assert len(first.history) == 1
    fit(cfg, sample_root, tmp_path / "b", resume=True, progress=False)
    a = load_checkpoint(tmp_path / "a", which="last")
    b = load_checkpoint(tmp_path / "b", which="last")
    assert a["epoch"] == b["epoch"] == 2
    for k in a["state_dict"]:
        torch.testing.assert_close(a["state_dict"][k], b["state_dict"][k], rtol=0, atol=1e-6)
    for k in a["ema"]["state"]:
        torch.testing.assert_close(a["ema"]["state"][k], b["ema"]["state"][k], rtol=0,
                                   atol=1e-6)
    assert [h["val_loss"] for h in a["history"]] == pytest.approx(
        [h["val_loss"] for h in b["history"]], abs=1e-6)


def test_chunked_run_evaluates_on_windows(sample_root, tmp_path):
    from musicaffect.evaluation.evaluate import evaluate

    cfg = load_config("chunk-cnn-genre", [*TINY_SHORT, "data.chunk_frames=200",
                                          "train.epochs=1", "train.max_batches_per_epoch=1"])
    fit(cfg, sample_root, tmp_path / "c", progress=False)
    out = evaluate(tmp_path / "c", sample_root, out_dir=tmp_path / "ev")
    assert out["genre"]["accuracy"] >= 0.0 and out["n_clips"] > 0


def test_recipe_config_is_validated():
    cfg = load_config(None, ["train.mixup=0.2", "train.ema=0.999", "train.warmup_epochs=2",
                             "train.balance=sampler"])
    assert (cfg.train.mixup, cfg.train.ema, cfg.train.warmup_epochs, cfg.train.balance) == (
        0.2, 0.999, 2, "sampler")
    for bad, match in [(["train.mixup=-1"], "mixup"), (["train.ema=1.0"], "ema"),
                       (["train.warmup_epochs=-1"], "warmup"), (["train.balance=yes"], "balance"),
                       (["train.grad_clip=0"], "grad_clip")]:
        with pytest.raises(ConfigError, match=match):
            load_config(None, bad)
