"""The synthetic sample-data generator writes the exact Kaggle layout with a learnable signal."""

from __future__ import annotations

import gzip
import io
import re
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import spearmanr
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from musicaffect.data import is_synthetic
from musicaffect.data.labels import CLASS_MAPPING, CLASSES, GENRES20
from musicaffect.data.layout import FOLDERS
from musicaffect.data.sample import (
    FULL_GENRE_TOTAL,
    FULL_TEST_PER_CLASS,
    _genre_plan,
    write_sample_dataset,
)
from musicaffect.errors import DataError


def _rows(path: Path) -> list[list[str]]:
    lines = path.read_text().splitlines()
    sep = "\t" if "\t" in lines[0] else ","
    return [line.split(sep) for line in lines]


def test_folders_label_files_and_marker(sample_root):
    root = Path(sample_root)
    assert is_synthetic(root)
    assert "SYNTHETIC" in (root / "SYNTHETIC.txt").read_text()
    for folder in FOLDERS.values():
        assert (root / folder / "train").is_dir() and (root / folder / "test").is_dir()
        assert (root / folder / "train_labels.txt").is_file()
    for folder in ("fma_genre_spectrograms", "fma_genre_spectrograms_beat"):
        assert (root / folder / "test_labels.txt").is_file()
    for folder in ("multitask_dataset", "multitask_dataset_beat"):
        assert not (root / folder / "test_labels.txt").exists()


@pytest.mark.parametrize("folder, split, pattern", [
    ("fma_genre_spectrograms", "train", r"^\d+\.fused\.full\.npy\.gz$"),
    ("fma_genre_spectrograms", "test", r"^\d+\.full\.fused\.npy\.gz$"),
    ("fma_genre_spectrograms_beat", "train", r"^\d+\.beatsync\.fused\.npy\.gz$"),
    ("fma_genre_spectrograms_beat", "test", r"^\d+\.beatsync\.fused\.npy\.gz$"),
])
def test_genre_label_files_use_the_mismatched_names(sample_root, folder, split, pattern):
    rows = _rows(Path(sample_root) / folder / f"{split}_labels.txt")
    assert rows[0] == ["Id", "Genre"]
    assert all(re.match(pattern, name) for name, _ in rows[1:])
    assert {g for _, g in rows[1:]} == set(GENRES20)  # all 20 raw genres, both splits
    on_disk = {p.name for p in (Path(sample_root) / folder / split).iterdir()}
    assert on_disk == {f"{name.split('.')[0]}.fused.full.npy" for name, _ in rows[1:]}


def test_multitask_labels(sample_root):
    for folder in ("multitask_dataset", "multitask_dataset_beat"):
        rows = _rows(Path(sample_root) / folder / "train_labels.txt")
        assert rows[0] == ["Id", "valence", "energy", "danceability"]
        values = np.array([[float(v) for v in r[1:]] for r in rows[1:]])
        assert values.shape == (40, 3)
        assert values.min() >= 0 and values.max() <= 1
        assert all(r[0].isdigit() for r in rows[1:])
        assert len(list((Path(sample_root) / folder / "test").iterdir())) == 12


def _load(path: Path) -> np.ndarray:
    if path.name.endswith(".gz"):
        return np.load(io.BytesIO(gzip.decompress(path.read_bytes())))
    return np.load(path)


@pytest.mark.parametrize("folder, t_range", [
    ("fma_genre_spectrograms", (1291, 1293)), ("fma_genre_spectrograms_beat", (30, 129)),
    ("multitask_dataset", (1291, 1293)), ("multitask_dataset_beat", (30, 129)),
])
def test_arrays_have_the_real_format(sample_root, folder, t_range):
    files = sorted((Path(sample_root) / folder / "train").iterdir())[:15]
    for path in files:
        a = _load(path)
        assert a.dtype == np.float64 and a.ndim == 2 and a.shape[0] == 140
        assert t_range[0] <= a.shape[1] <= t_range[1]
        mel, chroma = a[:128], a[128:]
        assert mel.min() >= -80 and mel.max() <= 0
        assert chroma.min() >= 0 and chroma.max() <= 1
        if "beat" not in folder:
            assert mel.max() == 0  # dB relative to the clip's maximum


def test_beat_version_is_median_of_full_frames(sample_root):
    root = Path(sample_root)
    name = sorted((root / "fma_genre_spectrograms" / "train").iterdir())[0].name
    full = np.load(root / "fma_genre_spectrograms" / "train" / name)
    beat = np.load(root / "fma_genre_spectrograms_beat" / "train" / name)
    assert beat.shape[1] < full.shape[1] / 8
    # every beat column is the median of some run of full columns: its values lie in range
    assert np.all(beat.min(axis=1) >= full.min(axis=1) - 1e-9)
    assert np.all(beat.max(axis=1) <= full.max(axis=1) + 1e-9)


def test_gz_variant_holds_the_same_data(sample_root, sample_root_gz):
    """Same seed, same content; only the file form differs (also: generation is seeded)."""
    for folder in ("fma_genre_spectrograms_beat", "multitask_dataset"):
        plain = sorted((Path(sample_root) / folder / "train").iterdir())
        packed = sorted((Path(sample_root_gz) / folder / "train").iterdir())
        assert [p.name + ".gz" for p in plain] == [p.name for p in packed]
        for a, b in zip(plain[:5], packed[:5]):
            np.testing.assert_array_equal(np.load(a), _load(b))
        assert ((Path(sample_root) / folder / "train_labels.txt").read_text()
                == (Path(sample_root_gz) / folder / "train_labels.txt").read_text())


def test_full_plan_matches_the_real_counts():
    plan = _genre_plan("full", np.random.default_rng(0))
    assert len(plan["train"]) + len(plan["test"]) == FULL_GENRE_TOTAL
    test_classes = [CLASS_MAPPING[g] for g in plan["test"] if CLASS_MAPPING[g]]
    assert {c: test_classes.count(c) for c in CLASSES} == FULL_TEST_PER_CLASS
    assert len([g for g in plan["train"] if CLASS_MAPPING[g]]) == 2300
    assert set(plan["train"]) == set(GENRES20)


def test_unknown_size_is_refused(tmp_path):
    with pytest.raises(DataError, match="unknown sample size"):
        write_sample_dataset(tmp_path, size="huge")


def _mel_means(root: Path, folder: str, split: str, ids: list[str]) -> np.ndarray:
    """Mean level of each mel band of some clips, shape (n, 128)."""
    return np.stack([np.load(root / folder / split / f"{i}.fused.full.npy")[:128].mean(axis=1)
                     for i in ids])


def test_signal_is_learnable_but_imperfect(sample_root):
    root = Path(sample_root)
    # energy brightens the spectrum: high-band minus low-band level tracks it
    rows = _rows(root / "multitask_dataset" / "train_labels.txt")[1:]
    mel = _mel_means(root, "multitask_dataset", "train", [r[0] for r in rows])
    brightness = mel[:, 90:].mean(axis=1) - mel[:, :30].mean(axis=1)
    rho = spearmanr(brightness, [float(r[2]) for r in rows])[0]
    assert 0.4 < rho < 0.99
    # genre: a linear classifier on per-band means and spreads beats chance (0.1) on test
    data = {}
    for split in ("train", "test"):
        labelled = [(n.split(".")[0], CLASS_MAPPING[g]) for n, g in
                    _rows(root / "fma_genre_spectrograms" / f"{split}_labels.txt")[1:]
                    if CLASS_MAPPING[g]]
        arrays = [np.load(root / "fma_genre_spectrograms" / split / f"{i}.fused.full.npy")
                  for i, _ in labelled]
        data[split] = (np.stack([np.concatenate([a.mean(axis=1), a.std(axis=1)])
                                 for a in arrays]), [c for _, c in labelled])
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=3000))
    clf.fit(*data["train"])
    accuracy = clf.score(*data["test"])
    assert 0.3 < accuracy < 1.0
