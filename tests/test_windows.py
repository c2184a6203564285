"""Excerpt windows: where they fall, how training cuts them, how inference pools them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from musicaffect.config import load_config
from musicaffect.data.windows import (
    check_window,
    mean_by_clip,
    plan_windows,
    random_window_start,
    window_starts,
)
from musicaffect.errors import ConfigError
from musicaffect.evaluation.inference import predict_outputs
from musicaffect.models import build_model

F = 12


@pytest.mark.parametrize("length", [1, 5, 31, 32, 33, 100, 129, 1293])
@pytest.mark.parametrize("frames,hop", [(32, None), (32, 32), (32, 5), (1, 1), (128, 64)])
def test_windows_stay_inside_and_cover_the_clip(length, frames, hop):
    starts = window_starts(length, frames, hop)
    covered = np.zeros(length, dtype=bool)
    for s in starts:
        end = min(s + frames, length)
        assert 0 <= s < end <= length
        covered[s:end] = True
    assert covered.all()
    assert starts == sorted(set(starts))
    if length <= frames:
        assert starts == [0]      # a short clip is used whole, once
    else:
        assert starts[-1] + frames == length   # the last window ends at the clip's end
        _, h = check_window(frames, hop)
        assert all(b - a <= h for a, b in zip(starts, starts[1:]))   # evenly spaced


def test_window_hop_defaults_to_half_and_is_checked():
    assert window_starts(100, 40) == [0, 20, 40, 60]
    assert window_starts(10, 4, 4) == [0, 4, 6]
    with pytest.raises(ValueError, match="hop"):
        window_starts(100, 40, 41)
    with pytest.raises(ValueError, match="positive"):
        window_starts(100, 0)


def test_random_window_is_pure_inside_and_varies():
    starts = [random_window_start(1293, 128, seed=7, epoch=e, index=3) for e in range(50)]
    assert all(0 <= s <= 1293 - 128 for s in starts)
    assert len(set(starts)) > 20                      # it moves between epochs
    again = [random_window_start(1293, 128, seed=7, epoch=e, index=3) for e in range(50)]
    assert starts == again                            # a pure function of (seed, epoch, index)
    other = [random_window_start(1293, 128, seed=7, epoch=e, index=4) for e in range(50)]
    assert starts != other
    assert random_window_start(100, 128, seed=7, epoch=0, index=0) == 0   # short clip: whole
    assert random_window_start(128, 128, seed=7, epoch=5, index=9) == 0


def test_plan_windows_and_mean_by_clip():
    owner, starts, wlen = plan_windows([10, 3, 6], 4, 2)
    assert owner.tolist() == [0, 0, 0, 0, 1, 2, 2]
    assert starts.tolist() == [0, 2, 4, 6, 0, 0, 2]
    assert wlen.tolist() == [4, 4, 4, 4, 3, 4, 4]
    vals = np.arange(7 * 2, dtype=float).reshape(7, 2)
    got = mean_by_clip(vals, owner, 3)
    np.testing.assert_allclose(got[0], vals[:4].mean(axis=0))
    np.testing.assert_allclose(got[1], vals[4])
    np.testing.assert_allclose(got[2], vals[5:].mean(axis=0))
    with pytest.raises(ValueError, match="at least one window"):
        mean_by_clip(vals, owner, 4)


def test_random_windows_dataset_cuts_training_items(sample_root):
    from musicaffect.data.dataset import RandomWindows, SpectrogramDataset

    base = SpectrogramDataset(sample_root, rate="full", view="chroma")
    ds = RandomWindows(base, 100, seed=3)
    ds.set_epoch(2)
    for i in (0, 5):
        item, full = ds[i], base[i]
        s = random_window_start(full["length"], 100, seed=3, epoch=2, index=i)
        assert item["length"] == 100 and item["x"].shape == (100, base.n_features)
        torch.testing.assert_close(item["x"], full["x"][s:s + 100])
        assert item["y"] == full["y"] and item["id"] == full["id"]
    first = ds[0]["x"]
    ds.set_epoch(3)
    assert not torch.equal(ds[0]["x"], first)
    short = SpectrogramDataset(sample_root, rate="beat", view="chroma")
    whole = RandomWindows(short, 10_000, seed=3)
    assert whole[0]["length"] == short[0]["length"]      # shorter than a window: whole


def _model(tasks, seed=0):
    torch.manual_seed(seed)
    m = build_model("cnn_short", {"stem_channels": 4, "channels": [4, 8], "embed_dim": 8},
                    F, tasks)
    # non-trivial BatchNorm statistics, then eval mode
    m.train()
    with torch.no_grad():
        m(torch.randn(4, 64, F), torch.full((4,), 64))
    return m.eval()


def _loader(lengths, tasks, seed=1):
    gen = torch.Generator().manual_seed(seed)
    T = max(lengths)
    x = torch.randn(len(lengths), T, F, generator=gen)
    for i, n in enumerate(lengths):
        x[i, n:] = 0.0
    y = {t: (torch.arange(len(lengths)) % 10 if t == "genre"
             else torch.rand(len(lengths), generator=gen)) for t in tasks}
    batch = {"x": x, "lengths": torch.tensor(lengths), "y": y,
             "ids": [f"c{i}" for i in range(len(lengths))]}
    return [batch], x


@pytest.mark.parametrize("bounded", [False, True])
def test_window_aggregation_is_the_mean_of_window_predictions(bounded):
    tasks = {"genre": 10, "valence": 1}
    model = _model(tasks)
    lengths = [90, 40, 17, 64]
    frames, hop = 32, 12
    loader, x = _loader(lengths, tasks)
    res = predict_outputs(model, loader, chunk_frames=frames, chunk_hop=hop, bounded=bounded)
    assert res["windows"].tolist() == [len(window_starts(n, frames, hop)) for n in lengths]
    with torch.no_grad():
        for i, n in enumerate(lengths):
            probs, vals = [], []
            for s in window_starts(n, frames, hop):
                w = x[i:i + 1, s:min(s + frames, n)]               # one window, alone
                out = model(w, torch.tensor([w.shape[1]]))
                probs.append(torch.softmax(out["genre"][0], -1).numpy())
                v = out["valence"][0]
                vals.append(float(torch.sigmoid(v) if bounded else v))
            # genre: softmax of the returned output = the mean of the window probabilities
            got = torch.softmax(torch.as_tensor(res["out:genre"][i]), -1).numpy()
            np.testing.assert_allclose(got, np.mean(probs, axis=0), atol=1e-5)
            v = torch.as_tensor(res["out:valence"][i])
            got_v = float(torch.sigmoid(v)) if bounded else float(v)
            assert got_v == pytest.approx(np.mean(vals), abs=1e-5)
    # labels pass through; argmax / cross-entropy work on the log-probabilities
    assert res["y:genre"].tolist() == [0, 1, 2, 3]
    assert np.allclose(np.exp(res["out:genre"]).sum(axis=1), 1.0, atol=1e-5)


def test_without_chunks_predict_outputs_is_unchanged():
    tasks = {"genre": 10}
    model = _model(tasks)
    loader, x = _loader([50, 20], tasks)
    res = predict_outputs(model, loader)
    assert "windows" not in res
    with torch.no_grad():
        ref = model(x, torch.tensor([50, 20]))["genre"].numpy()
    np.testing.assert_allclose(res["out:genre"], ref, atol=1e-6)


def test_a_clip_shorter_than_a_window_is_one_whole_window():
    tasks = {"genre": 10}
    model = _model(tasks)
    loader, x = _loader([20, 9], tasks)
    res = predict_outputs(model, loader, chunk_frames=64)
    assert res["windows"].tolist() == [1, 1]
    with torch.no_grad():
        logits = model(x, torch.tensor([20, 9]))["genre"]
    np.testing.assert_allclose(res["out:genre"], torch.log_softmax(logits, -1).numpy(),
                               atol=1e-5)


def test_chunk_config_is_validated():
    cfg = load_config("chunk-cnn-genre")
    assert cfg.data.chunk_frames == 128 and cfg.data.chunk_hop == 96
    assert load_config(None, ["data.chunk_frames=200"]).data.chunk_hop is None
    for bad, match in [(["data.chunk_frames=0"], "chunk_frames"),
                       (["data.chunk_frames=100", "data.chunk_hop=101"], "chunk_hop"),
                       (["data.chunk_hop=10"], "needs data.chunk_frames")]:
        with pytest.raises(ConfigError, match=match):
            load_config(None, bad)


def test_predict_uses_the_models_chunk_windows(tmp_path):
    from musicaffect.data.vocab import lab_vocabulary
    from musicaffect.evaluation.predictor import Predictor
    from musicaffect.models.checkpoint import atomic_save, make_checkpoint
    from musicaffect.predict import member_windows

    tasks = {"genre": 10, "energy": 1}
    model = _model(tasks)
    cfg = load_config(None, ["data.view=chroma", "data.chunk_frames=64", "data.chunk_hop=32",
                             "loss.bounded=true"])
    vocab = lab_vocabulary()
    atomic_save(make_checkpoint(model, cfg.to_dict(), classes=vocab.classes, epoch=0,
                                metrics={}, data_info={}, vocab=vocab.to_dict()),
                tmp_path / "m.pt")
    pred = Predictor.load([tmp_path / "m.pt"])
    feats = {"full": np.random.default_rng(0).normal(size=(140, 300)).astype(np.float32)}
    res, n = pred.predict_clip(lambda m: member_windows(m, feats, 7.0))
    starts = window_starts(300, 64, 32)
    assert n == len(starts) == 9
    x = torch.from_numpy(np.ascontiguousarray(feats["full"][128:140].T))   # (T, 12)
    with torch.no_grad():
        out = model(torch.stack([x[s:s + 64] for s in starts]), torch.full((n,), 64))
    np.testing.assert_allclose(res.probs[0], torch.softmax(out["genre"], -1).mean(0).numpy(),
                               atol=1e-5)
    assert res.values["energy"][0] == pytest.approx(float(torch.sigmoid(out["energy"]).mean()),
                                                    abs=1e-5)


@pytest.mark.parametrize("preset", ["chunk-cnn-genre", "crnn-genre", "chunk-cnn-affect"])
def test_chunk_presets_take_every_budget(preset):
    from musicaffect.suites import BUDGETS, _cfg

    for budget in BUDGETS:
        cfg = _cfg(preset, budget, None)
        assert cfg.data.chunk_frames is not None
    tiny = _cfg(preset, "tiny", None)
    assert tiny.data.max_length == 256 and tiny.model.params["embed_dim"] == 16


def test_chunked_run_trains_under_the_tiny_budget(sample_root, tmp_path):
    from musicaffect.suites import _cfg
    from musicaffect.training.engine import fit

    cfg = _cfg("crnn-genre", "tiny", ["data.rate=beat", "data.chunk_frames=16",
                                      "data.chunk_hop=8", "train.batch_size=8"])
    res = fit(cfg, sample_root, tmp_path / "r", progress=False)
    assert len(res.history) == 1 and np.isfinite(res.history[0]["val_loss"])
