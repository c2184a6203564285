"""Evaluation plots: each returns a Figure with the expected axes and can be saved headless."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from matplotlib.figure import Figure

from musicaffect.data.labels import CLASSES
from musicaffect.errors import DataError
from musicaffect.evaluation import plots


def _saves(fig: Figure, tmp_path) -> None:
    path = tmp_path / "fig.png"
    fig.savefig(path, dpi=40)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_confusion_normalised_rows(rng, tmp_path):
    cm = rng.integers(0, 20, size=(10, 10))
    cm[3] = 0  # a class with no clip must not divide by zero
    fig = plots.plot_confusion(cm, CLASSES, title="Test set")
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 2  # heat map + colour bar
    image = fig.axes[0].images[0].get_array()
    assert np.allclose(image[np.arange(10) != 3].sum(axis=1), 1.0)
    assert np.all(image[3] == 0)
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == list(CLASSES)
    _saves(fig, tmp_path)
    with pytest.raises(ValueError, match="expected \\(10, 10\\)"):
        plots.plot_confusion(cm[:5], CLASSES)


def test_learning_curves_from_history_and_csv(tmp_path):
    history = [{"epoch": e, "train_loss": 2.0 / e, "val_loss": 2.2 / e,
                "val_accuracy": 0.1 * e, "val_macro_f1": 0.05 * e} for e in range(1, 6)]
    fig = plots.plot_learning_curves(history)
    assert len(fig.axes) == 2
    assert len(fig.axes[0].get_lines()) == 2 and len(fig.axes[1].get_lines()) == 2

    path = tmp_path / "metrics.csv"
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["epoch", "train_loss", "val_loss", "lr"])
        writer.writeheader()
        writer.writerow({"epoch": 1, "train_loss": 1.0, "val_loss": "", "lr": 0.001})
        writer.writerow({"epoch": 2, "train_loss": 0.5, "val_loss": 0.7, "lr": 0.001})
    fig = plots.plot_learning_curves(path)
    assert len(fig.axes) == 1  # no validation metric besides the loss
    train_line, val_line = fig.axes[0].get_lines()
    assert len(train_line.get_xdata()) == 2 and len(val_line.get_xdata()) == 1
    _saves(fig, tmp_path)
    with pytest.raises(DataError, match="missing.csv"):
        plots.plot_learning_curves(tmp_path / "missing.csv")


def test_scatter_one_panel_per_target_with_rho(rng, tmp_path):
    targets = ("valence", "energy", "danceability")
    y_true = {t: rng.random(50) for t in targets}
    y_pred = {t: y_true[t] for t in targets}
    fig = plots.plot_scatter(y_true, y_pred)
    assert len(fig.axes) == 3
    assert all("rho = 1.000" in ax.get_title() for ax in fig.axes)
    assert fig.axes[1].get_title().startswith("energy")
    _saves(fig, tmp_path)


def test_overfit_curve_and_histogram(tmp_path):
    fig = plots.plot_overfit_curve([2.0, 1.0, 0.1, 0.001], threshold=0.01)
    assert len(fig.axes) == 1 and fig.axes[0].get_yscale() == "log"
    fig = plots.plot_class_histogram({c: i + 1 for i, c in enumerate(CLASSES)})
    assert len(fig.axes) == 1 and len(fig.axes[0].patches) == 10
    _saves(fig, tmp_path)


def test_activation_maps_grid(rng, tmp_path):
    maps = [rng.random((4, 32, 40)), rng.random((16, 16, 20)), rng.random((1, 16, 32, 10)),
            rng.random((8, 4))]
    fig = plots.plot_activation_maps(maps, n_channels=6, title="CNN blocks")
    assert len(fig.axes) == 4 * 6
    shown = [ax for ax in fig.axes if ax.images]
    assert len(shown) == 4 + 6 + 6 + 1  # blocks with fewer channels leave blank cells
    _saves(fig, tmp_path)
    with pytest.raises(ValueError, match="expected \\(C, H, W\\)"):
        plots.plot_activation_maps([np.zeros(5)])


def test_comparison_bars_ours_and_reference(tmp_path):
    table = [{"experiment": "LSTM full mel", "accuracy": 0.35},
             {"experiment": "CNN mel", "accuracy": 0.48}]
    reference = [{"experiment": "LSTM full mel", "accuracy": 0.31},
                 {"experiment": "AST", "accuracy": 0.46}]
    fig = plots.plot_comparison_bars(table, "accuracy", reference=reference)
    ax = fig.axes[0]
    assert len(fig.axes) == 1
    assert [t.get_text() for t in ax.get_yticklabels()] == ["LSTM full mel", "CNN mel", "AST"]
    widths = [p.get_width() for p in ax.patches]
    assert widths == pytest.approx([0.35, 0.48, 0.0, 0.31, 0.0, 0.46])
    _saves(fig, tmp_path)
