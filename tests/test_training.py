"""The training engine on the small synthetic sample: runs, checkpoints, resume, overfit,
transfer and multitask learning, distributed training (2 CPU processes, gloo)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from musicaffect.config import load_config
from musicaffect.errors import CheckpointError, RunError
from musicaffect.evaluation.evaluate import evaluate
from musicaffect.models.checkpoint import load_checkpoint, load_model
from musicaffect.training.engine import fit, overfit

TINY_LSTM = ["model.params.hidden_size=16", "model.params.num_layers=1",
             "model.params.dropout=0.0", "train.batch_size=16"]
TINY_CNN = ["model.params.channels=[4, 8, 8, 8]", "model.params.embed_dim=16",
            "train.batch_size=16"]


def _cfg(preset, extra=(), epochs=2):
    return load_config(preset, [*(TINY_LSTM if "lstm" in preset else TINY_CNN),
                                f"train.epochs={epochs}", "train.patience=0", *extra])


def test_fit_writes_run_and_reloads_same_metrics(sample_root, tmp_path):
    cfg = _cfg("lstm-beat-mel", ["train.monitor=val_accuracy"])
    run = tmp_path / "run"
    res = fit(cfg, sample_root, run, progress=False)
    for name in ("config.yaml", "metrics.csv", "summary.json", "learning_curves.png",
                 "checkpoints/best.pt", "checkpoints/last.pt"):
        assert (run / name).is_file(), name
    assert (run / "tensorboard").is_dir()
    assert len(res.history) == 2
    # the best checkpoint rebuilds its own model and gives the validation metric it recorded
    ckpt = load_checkpoint(run)
    assert ckpt["epoch"] == res.best_epoch
    assert ckpt["config"]["name"] == "lstm-beat-mel"
    out = evaluate(run, sample_root, out_dir=tmp_path / "ev")
    assert out["genre"]["n"] > 0 and (tmp_path / "ev" / "confusion.png").is_file()
    from musicaffect.data.loading import make_loader, prepare_data
    from musicaffect.evaluation.inference import outputs_metrics, predict_outputs
    model, _ = load_model(run)
    data = prepare_data(cfg, sample_root)
    val = predict_outputs(model, make_loader(data.val, None, batch_size=7))
    again = outputs_metrics(val, ["genre"], bounded=False)
    assert again["accuracy"] == pytest.approx(res.best_metrics["val_accuracy"])
    assert again["macro_f1"] == pytest.approx(res.best_metrics["val_macro_f1"])


def test_run_folder_rules(sample_root, tmp_path):
    cfg = _cfg("lstm-beat-chroma", epochs=1)
    run = tmp_path / "run"
    # --resume with no checkpoint yet starts from scratch (and says so)
    fit(cfg, sample_root, run, resume=True, progress=False)
    with pytest.raises(RunError, match="exists already"):
        fit(cfg, sample_root, run, progress=False)
    fit(cfg, sample_root, run, overwrite=True, progress=False)


@pytest.mark.slow
def test_resume_gives_same_weights_as_uninterrupted(sample_root, tmp_path):
    cfg = _cfg("lstm-beat-mel", ["model.params.dropout=0.3", "model.params.num_layers=2",
                                 "train.max_batches_per_epoch=2"], epochs=3)
    fit(cfg, sample_root, tmp_path / "a", progress=False)
    first = fit(cfg, sample_root, tmp_path / "b", progress=False, stop_after=1)
    assert len(first.history) == 1
    fit(cfg, sample_root, tmp_path / "b", resume=True, progress=False)
    a = load_checkpoint(tmp_path / "a", which="last")
    b = load_checkpoint(tmp_path / "b", which="last")
    assert b["epoch"] == a["epoch"] == 2
    for k in a["state_dict"]:
        torch.testing.assert_close(a["state_dict"][k], b["state_dict"][k], rtol=0, atol=1e-6)
    assert [h["train_loss"] for h in a["history"]] == pytest.approx(
        [h["train_loss"] for h in b["history"]], abs=1e-6)


def test_same_seed_same_result(sample_root, tmp_path):
    cfg = _cfg("lstm-beat-chroma", ["train.max_batches_per_epoch=2"], epochs=1)
    r1 = fit(cfg, sample_root, tmp_path / "a", progress=False)
    r2 = fit(cfg, sample_root, tmp_path / "b", progress=False)
    assert r1.history[0]["train_loss"] == r2.history[0]["train_loss"]
    assert r1.history[0]["val_loss"] == r2.history[0]["val_loss"]


@pytest.mark.slow
def test_overfit_drives_loss_near_zero(sample_root):
    cfg = load_config("lstm-beat-mel", ["model.params.hidden_size=64", "train.batch_size=8",
                                        "train.lr=0.005", "train.overfit_batches=1",
                                        "train.overfit_epochs=300", "train.overfit_loss=0.05"])
    res = overfit(cfg, sample_root, progress=False)
    assert res.reached, res.losses[-5:]
    assert res.losses[-1] < 0.05 < res.losses[0]


@pytest.mark.slow
def test_overfit_cnn(sample_root):
    cfg = load_config("cnn-full-mel", [*TINY_CNN, "train.batch_size=8", "train.lr=0.003",
                                       "data.rate=beat", "train.overfit_batches=1",
                                       "train.overfit_epochs=300"])
    res = overfit(cfg, sample_root, progress=False)
    assert res.reached, res.losses[-5:]


def test_transfer_copies_backbone_only_and_freezes(sample_root, tmp_path):
    src = fit(_cfg("cnn-full-mel", ["data.view=fused", "data.rate=beat"], epochs=1),
              sample_root, tmp_path / "genre", progress=False)
    source = load_checkpoint(src.run_dir)
    cfg = load_config("transfer-cnn", [*TINY_CNN, "data.rate=beat", "train.epochs=1",
                                       f"transfer.checkpoint={src.run_dir}",
                                       "transfer.freeze_backbone=true"])
    from musicaffect.data.loading import prepare_data
    from musicaffect.training.engine import build_run_model
    model = build_run_model(cfg, prepare_data(cfg, sample_root))
    for k, v in model.backbone.state_dict().items():
        torch.testing.assert_close(v, source["state_dict"][f"backbone.{k}"], rtol=0, atol=0)
    assert set(model.heads) == {"valence"}
    assert not any(k.startswith("heads.genre") for k in model.state_dict())
    assert all(not p.requires_grad for p in model.backbone.parameters())
    fit(cfg, sample_root, tmp_path / "tr", progress=False)
    tuned = load_checkpoint(tmp_path / "tr", which="last")
    for k, v in source["state_dict"].items():
        if k.startswith("backbone.") and "running_" not in k and "num_batches" not in k:
            torch.testing.assert_close(tuned["state_dict"][k], v, rtol=0, atol=0)


def test_transfer_rejects_other_view(sample_root, tmp_path):
    src = fit(_cfg("cnn-full-mel", ["data.rate=beat"], epochs=1), sample_root,
              tmp_path / "genre", progress=False)
    cfg = load_config("transfer-cnn", [*TINY_CNN, "data.rate=beat", "train.epochs=1",
                                       f"transfer.checkpoint={src.run_dir}"])
    with pytest.raises(CheckpointError, match="features per frame"):
        fit(cfg, sample_root, tmp_path / "tr", progress=False)


def test_multitask_learned_weights_change(sample_root, tmp_path):
    cfg = load_config("multitask-cnn", [*TINY_CNN, "data.rate=beat", "train.epochs=2",
                                        "loss.weights=null", "loss.learn_weights=true",
                                        "train.lr=0.01", "loss.rank_weight=0.5"])
    res = fit(cfg, sample_root, tmp_path / "mt", progress=False)
    ws = [h["w_valence"] for h in res.history]
    assert ws[0] != 1.0 and ws[0] != ws[1]
    assert {"val_spearman_valence", "val_spearman_energy", "val_spearman_danceability",
            "val_spearman_mean"} <= set(res.history[0])
    ev = evaluate(tmp_path / "mt", sample_root)
    assert set(ev["regression"]["per_target"]) == {"valence", "energy", "danceability"}
    assert (tmp_path / "mt" / "eval" / "multitask-beat-heldout" / "scatter.png").is_file()


@pytest.mark.slow
def test_distributed_two_cpu_processes_match_single_process(sample_root, tmp_path):
    """DDP with 2 gloo processes x batch 4 == one process x batch 8, step for step."""
    common = ["--preset", "lstm-beat-mel", "--no-progress", "--device", "cpu",
              "--set", "model.params.hidden_size=16", "--set", "train.epochs=2",
              "--set", "train.patience=0", "--set", "train.max_batches_per_epoch=3"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    exe = [sys.executable, "-m", "musicaffect", "-q", "train", sample_root]
    subprocess.run([*exe, "--out", str(tmp_path / "ddp"), "--devices", "2",
                    "--set", "train.batch_size=4", *common], check=True, env=env,
                   timeout=300)
    subprocess.run([*exe, "--out", str(tmp_path / "one"), "--set", "train.batch_size=8",
                    *common], check=True, env=env, timeout=300)
    a = load_checkpoint(tmp_path / "ddp", which="last")
    b = load_checkpoint(tmp_path / "one", which="last")
    assert a["config"]["train"]["devices"] == 2
    for k in a["state_dict"]:
        torch.testing.assert_close(a["state_dict"][k], b["state_dict"][k], rtol=1e-4,
                                   atol=1e-5)
    assert a["history"][-1]["val_loss"] == pytest.approx(b["history"][-1]["val_loss"], abs=1e-4)
    assert Path(tmp_path / "ddp" / "metrics.csv").is_file()


def test_early_stopping_state_round_trips_as_last_pt_dict():
    from musicaffect.training.engine import EarlyStopping

    e = EarlyStopping(minimise=True, patience=2)
    assert e.update(1.0, 0) and not e.update(1.5, 1) and not e.should_stop
    assert not e.update(1.2, 2) and e.should_stop
    d = e.to_dict()
    assert d == {"best": 1.0, "best_epoch": 0, "bad_epochs": 2}   # the dict last.pt keeps
    back = EarlyStopping.from_dict(d, minimise=True, patience=5)   # patience may change
    assert (back.best, back.best_epoch, back.bad_epochs, back.should_stop) == (1.0, 0, 2, False)
    up = EarlyStopping(minimise=False)
    assert up.update(0.2, 0) and up.update(0.3, 1) and not up.should_stop   # patience 0
