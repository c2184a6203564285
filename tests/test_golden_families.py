"""Behaviour is kept: a chunked deep run, a classical run and their ensemble, for a genre
and a regression target, give the predictions recorded in ``tests/data/golden_families.npz``.

The golden file was written by this module (``python tests/test_golden_families.py``) with
the code before the model families became plugins (issue 16); the test retrains the same
runs (fixed seeds, the ``tiny`` budget, two epochs, on the generated sample root) and
compares every prediction. One thread, so that the float sums are done in one order.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

GOLDEN = Path(__file__).parent / "data" / "golden_families.npz"
#: (ensemble preset, data folder of its predictions)
CASES = (("ensemble-chunk-genre", "genre"), ("ensemble-chunk-affect", "multitask"))
#: every member of the ensembles as the suites train them (siblings of the ensemble run)
MEMBERS = {"ensemble-chunk-genre": ("chunk-cnn-genre", "classical-logreg"),
           "ensemble-chunk-affect": ("chunk-cnn-affect", "affect-classical-ridge")}
#: same machine, same thread count: the predictions are equal bit for bit; the tolerance
#: only absorbs float32 kernels that another CPU may sum in another order
ATOL = 1e-6


def train_and_predict(root: str | Path, out: str | Path) -> dict[str, np.ndarray]:
    """Train both ensembles (members first) and predict the test split with each member
    and each ensemble; keys ``<run>/<task>`` (genre: the (N, C) probabilities)."""
    import torch

    from musicaffect.config import load_config
    from musicaffect.evaluation.predictor import Predictor
    from musicaffect.suites import train_preset

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        found: dict[str, np.ndarray] = {}
        for preset, folder in CASES:
            overrides = ["train.epochs=2"]
            cfg = load_config(preset, overrides)
            run = train_preset(cfg, root, Path(out) / preset, budget="tiny",
                               overrides=overrides, progress=False)
            for name in (preset, *MEMBERS[preset]):
                path = run if name == preset else run.parent / name
                pred = Predictor.load(path, device="cpu").predict_split(
                    root, dataset=folder, split="test")
                order = np.argsort(pred.ids)
                found[f"{name}/ids"] = np.asarray(pred.ids)[order]
                if pred.probs is not None:
                    found[f"{name}/genre"] = np.asarray(pred.probs)[order]
                for t, v in pred.values.items():
                    found[f"{name}/{t}"] = np.asarray(v)[order]
        return found
    finally:
        torch.set_num_threads(threads)


@pytest.mark.slow
def test_predictions_are_unchanged(sample_root, tmp_path):
    golden = dict(np.load(GOLDEN))
    found = train_and_predict(sample_root, tmp_path)
    assert sorted(found) == sorted(golden)
    for key, want in golden.items():
        if key.endswith("/ids"):
            assert list(found[key]) == list(want), key
        else:
            np.testing.assert_allclose(found[key], want, rtol=0, atol=ATOL, err_msg=key)


if __name__ == "__main__":   # write the golden file (only on purpose: it pins behaviour)
    import tempfile

    from musicaffect.data.sample import write_sample_dataset

    with tempfile.TemporaryDirectory() as tmp:
        import os

        os.environ["MUSICAFFECT_CACHE"] = str(Path(tmp) / "cache")
        root = write_sample_dataset(Path(tmp) / "data", size="small", seed=0, gz=False)
        values = train_and_predict(root, Path(tmp) / "runs")
        GOLDEN.parent.mkdir(exist_ok=True)
        np.savez_compressed(GOLDEN, **values)
        print(f"{GOLDEN}: {len(values)} arrays", file=sys.stderr)
