"""Export: ONNX and TorchScript files reproduce the PyTorch outputs on new batch sizes/lengths."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from musicaffect.cli import main
from musicaffect.errors import ConfigError
from musicaffect.export import (
    export_model,
    load_exported,
    output_names,
    read_metadata,
    run_exported,
)
from musicaffect.models import build_model

F = 12
HAS_ORT = importlib.util.find_spec("onnxruntime") is not None
FORMATS = ["torchscript",
           pytest.param("onnx", marks=[pytest.mark.slow,
                                       pytest.mark.skipif(not HAS_ORT,
                                                          reason="onnxruntime not installed")])]

MODELS = {
    "lstm": ("lstm", {"hidden_size": 8, "num_layers": 2}),
    "bilstm_last": ("lstm", {"hidden_size": 8, "num_layers": 2, "bidirectional": True}),
    "bilstm_mean": ("lstm", {"hidden_size": 8, "bidirectional": True, "pooling": "mean"}),
    "cnn": ("cnn", {"channels": [4, 4, 8, 8], "embed_dim": 16}),
    "cnn_res": ("cnn_res", {"stem_channels": 4, "channels": [4, 8], "time_pools": [2, 2],
                            "freq_pools": [2, 2], "freq_dim": 16, "embed_dim": 16}),
    "cnn_short": ("cnn_short", {"stem_channels": 4, "channels": [4, 8], "embed_dim": 16}),
    "crnn": ("crnn", {"channels": [4, 8], "time_pools": [2, 1], "freq_pools": [2, 2],
                      "proj_dim": 8, "hidden_size": 8, "embed_dim": 16}),
}


def make_model(key: str, tasks=None):
    name, params = MODELS[key]
    torch.manual_seed(0)
    model = build_model(name, params, F, tasks or {"genre": 10, "valence": 1})
    gen = np.random.default_rng(1)
    model.set_normalization(gen.normal(size=F), gen.uniform(0.5, 2.0, size=F))
    return model.eval()


def new_batch():
    """A batch of another size and time length than the export example (dynamic axes)."""
    gen = torch.Generator().manual_seed(3)
    lengths = torch.tensor([101, 64, 30, 1])
    x = torch.randn(4, 101, F, generator=gen)
    return x, lengths


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("key", ["lstm", "bilstm_last", "bilstm_mean", "cnn", "cnn_res",
                                 "cnn_short", "crnn"])
def test_export_parity(key, fmt, tmp_path):
    model = make_model(key)
    path = export_model(model, tmp_path / f"model.{fmt}", fmt=fmt, example_length=40)
    assert path.is_file()
    names = output_names(model)
    assert names == ["embedding", "genre", "valence"]
    x, lengths = new_batch()
    with torch.no_grad():
        ref = model(x, lengths)
    got = run_exported(load_exported(path, fmt=fmt), x, lengths, names=names,
                       optimized=False)
    assert got["genre"].shape == (4, 10) and got["valence"].shape == (4,)
    for name in names:
        torch.testing.assert_close(got[name], ref[name], atol=1e-4, rtol=0)


@pytest.mark.parametrize("fmt", FORMATS)
def test_export_metadata_rebuilds_the_model(fmt, tmp_path):
    if fmt == "onnx":
        pytest.importorskip("onnx")
    model = make_model("cnn", {"genre": 10})
    path = export_model(model, tmp_path / ("m.onnx" if fmt == "onnx" else "m.torchscript.pt"), fmt=fmt,
                        metadata={"classes": ["a", "b"]})
    meta = read_metadata(path)
    assert meta["model"] == model.model_args()
    assert meta["outputs"] == ["embedding", "genre"]
    assert meta["classes"] == ["a", "b"]
    assert build_model(**meta["model"]).tasks == {"genre": 10}


def test_export_leaves_the_model_untouched(tmp_path):
    model = make_model("lstm").train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    export_model(model, tmp_path / "m.pt", fmt="torchscript")
    assert model.training
    assert all(p.requires_grad for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_export_rejects_unknown_format(tmp_path):
    with pytest.raises(ConfigError, match="unknown export format 'tflite'"):
        export_model(make_model("cnn"), tmp_path / "m", fmt="tflite")


def _write_checkpoint(model, path):
    from musicaffect.models.checkpoint import atomic_save, make_checkpoint

    ckpt = make_checkpoint(model, {}, classes=[f"c{i}" for i in range(10)], epoch=3,
                           metrics={"val_loss": 1.0}, data_info={"view": "chroma"})
    atomic_save(ckpt, path)


def test_cli_export_from_checkpoint(tmp_path, capsys):
    model = make_model("cnn")
    run = tmp_path / "run"
    _write_checkpoint(model, run / "checkpoints" / "best.pt")
    assert main(["export", str(run), "--format", "torchscript"]) == 0
    out = run / "checkpoints" / "best.torchscript.pt"
    assert capsys.readouterr().out.strip() == str(out)
    meta = read_metadata(out)
    assert meta["classes"][0] == "c0" and meta["data"] == {"view": "chroma"}
    x, lengths = new_batch()
    got = run_exported(load_exported(out), x, lengths, names=["genre"], optimized=False)
    with torch.no_grad():
        torch.testing.assert_close(got["genre"], model(x, lengths)["genre"], atol=1e-4, rtol=0)


def test_cli_export_missing_checkpoint(tmp_path):
    assert main(["export", str(tmp_path / "nope.pt"), "--out", str(tmp_path / "m.onnx")]) == 2
