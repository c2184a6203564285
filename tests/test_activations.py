"""`musicaffect activations RUN DATA_ROOT`: the activation maps of a CNN run's blocks (lab
step 7a) as a command of its own."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from musicaffect.cli import main

pytestmark = pytest.mark.slow   # trains a CNN run for the maps (seconds); `make test` runs it

TINY = ["--set", "train.epochs=1", "--set", "train.batch_size=16", "--set",
        "train.max_batches_per_epoch=2", "--no-progress"]


@pytest.fixture(scope="module")
def cnn_run(sample_root, tmp_path_factory):
    run = tmp_path_factory.mktemp("act") / "cnn"
    assert main(["train", sample_root, "--preset", "cnn-full-mel", "--out", str(run),
                 "--set", "model.params.channels=[4,8,8,8]", *TINY]) == 0
    return run


def test_maps_have_one_entry_per_block(cnn_run, sample_root):
    from musicaffect.evaluation.activations import activation_maps
    from musicaffect.models.checkpoint import load_model

    maps, clip_id, name = activation_maps(cnn_run, sample_root)
    model, _ = load_model(cnn_run)
    assert len(maps) == len(model.backbone.blocks) == 4
    assert [m.shape[0] for m in maps] == [4, 8, 8, 8]          # channels of each block
    assert all(m.ndim == 3 and np.isfinite(m).all() for m in maps)
    # each block pools: time (last axis) never grows from block to block
    assert all(a.shape[2] >= b.shape[2] for a, b in zip(maps, maps[1:], strict=False))
    assert name == "cnn-full-mel" and clip_id


def test_activations_command_writes_the_image(cnn_run, sample_root, tmp_path, capsys):
    out = tmp_path / "maps" / "act.png"
    assert main(["activations", str(cnn_run), sample_root, "--out", str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    with Image.open(out) as im:
        assert im.size[0] > 100 and im.size[1] > 100
    # default: beside the run's evaluation files
    assert main(["activations", str(cnn_run), sample_root, "--clip", "1"]) == 0
    assert (cnn_run / "eval" / "activations.png").is_file()


def test_activations_refuses_a_model_without_blocks(sample_root, tmp_path, capsys):
    run = tmp_path / "lstm"
    assert main(["train", sample_root, "--preset", "lstm-beat-mel", "--out", str(run),
                 "--set", "model.params.hidden_size=8", "--set", "model.params.num_layers=1",
                 *TINY]) == 0
    capsys.readouterr()
    assert main(["activations", str(run), sample_root, "--out", str(tmp_path / "a.png")]) == 2
    assert "no convolutional blocks" in capsys.readouterr().err
    assert not (tmp_path / "a.png").exists()
