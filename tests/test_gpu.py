"""GPU checks (marked ``gpu``: deselected by default; run with ``pytest -m gpu`` on a machine
with CUDA): mixed-precision training on the device, and the Predictor on the device gives
the CPU's predictions."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")]


def test_cuda_training_and_prediction_match_the_cpu(sample_root, tmp_path):
    from musicaffect.config import load_config
    from musicaffect.evaluation.predictor import Predictor
    from musicaffect.training.engine import fit

    cfg = load_config("cnn-full-mel", ["train.epochs=2", "train.max_batches_per_epoch=3",
                                       "data.max_length=256", "train.accelerator=cuda"])
    res = fit(cfg, sample_root, tmp_path / "run", progress=False)
    assert res.history and np.isfinite(res.history[-1]["train_loss"])
    gpu = Predictor.load([tmp_path / "run"], device="cuda").predict_split(
        sample_root, dataset="genre", split="test")
    cpu = Predictor.load([tmp_path / "run"], device="cpu").predict_split(
        sample_root, dataset="genre", split="test")
    assert gpu.ids == cpu.ids
    np.testing.assert_allclose(gpu.probs, cpu.probs, atol=2e-3)
