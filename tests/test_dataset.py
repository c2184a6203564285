"""SpectrogramDataset items and labels, collate padding, splits and feature statistics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Subset

from musicaffect.data import train_val_split
from musicaffect.data.arrays import load_array
from musicaffect.data.dataset import SpectrogramDataset, collate
from musicaffect.data.labels import CLASSES
from musicaffect.data.layout import index_clips
from musicaffect.data.normalize import feature_stats
from musicaffect.errors import ConfigError


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.mark.parametrize("view, n_feat", [("mel", 128), ("chroma", 12), ("fused", 140)])
def test_genre_items(sample_root, cache_dir, view, n_feat):
    ds = SpectrogramDataset(sample_root, rate="beat", view=view, cache_dir=cache_dir)
    assert len(ds) == 60 and ds.n_features == n_feat
    item = ds[0]
    assert set(item) == {"x", "length", "y", "id"}
    x = item["x"]
    assert x.dtype == torch.float32 and x.shape == (item["length"], n_feat)
    assert item["id"] == ds.ids[0] == ds.records[0].id
    raw = load_array(ds.records[0].path)  # (140, T)
    rows = {"mel": slice(0, 128), "chroma": slice(128, 140), "fused": slice(0, 140)}[view]
    np.testing.assert_array_equal(x.numpy(), raw[rows].T)
    y = item["y"]["genre"]
    assert y.dtype == torch.int64 and y.shape == ()
    assert CLASSES[int(y)] == ds.records[0].genre10
    np.testing.assert_array_equal(ds.lengths, [ds[i]["length"] for i in range(len(ds))])


def test_full_rate_folder_with_gz_files(sample_root_gz, cache_dir):
    ds = SpectrogramDataset(sample_root_gz, split="test", cache_dir=cache_dir)
    assert len(ds) == 30
    assert ((ds.lengths >= 1291) & (ds.lengths <= 1293)).all()
    assert ds[5]["x"].shape == (ds.lengths[5], 128)


def test_cache_and_direct_reads_agree(sample_root, cache_dir):
    cached = SpectrogramDataset(sample_root, rate="beat", view="fused", cache_dir=cache_dir)
    direct = SpectrogramDataset(sample_root, rate="beat", view="fused", use_cache=False)
    assert direct.ids == cached.ids
    np.testing.assert_array_equal(direct.lengths, cached.lengths)
    for i in (0, 17, 59):
        assert torch.equal(direct[i]["x"], cached[i]["x"])
        assert direct[i]["y"] == cached[i]["y"]


def test_regression_targets_by_name_and_column(sample_root, cache_dir):
    by_column = SpectrogramDataset(sample_root, dataset="multitask", rate="beat",
                                   tasks=(1, 3), cache_dir=cache_dir)
    assert by_column.tasks == ("valence", "danceability")
    y = by_column[0]["y"]
    assert set(y) == {"valence", "danceability"}
    assert all(v.dtype == torch.float32 for v in y.values())
    assert float(y["valence"]) == pytest.approx(by_column.records[0].targets["valence"])
    everything = SpectrogramDataset(sample_root, dataset="multitask", rate="beat",
                                    tasks="all", cache_dir=cache_dir)
    assert everything.tasks == ("valence", "energy", "danceability")
    energy = everything.labels("energy")
    assert energy.dtype == np.float32 and energy.shape == (40,)
    assert ((energy >= 0) & (energy <= 1)).all()
    assert SpectrogramDataset(sample_root, dataset="multitask", rate="beat", tasks="energy",
                              cache_dir=cache_dir).tasks == ("energy",)


def test_unlabelled_test_split(sample_root, cache_dir):
    ds = SpectrogramDataset(sample_root, dataset="multitask", rate="beat", split="test",
                            tasks="all", cache_dir=cache_dir)
    assert len(ds) == 12 and ds[0]["y"] == {}
    batch = collate([ds[0], ds[1]])
    assert batch["y"] == {}
    with pytest.raises(ConfigError, match="no labels"):
        ds.labels("valence")


def test_task_that_the_dataset_lacks(sample_root):
    with pytest.raises(ConfigError, match="only has genre labels"):
        SpectrogramDataset(sample_root, rate="beat", tasks="valence", use_cache=False)
    with pytest.raises(ConfigError, match="no genre labels"):
        SpectrogramDataset(sample_root, dataset="multitask", tasks="genre", use_cache=False)
    with pytest.raises(ConfigError):
        SpectrogramDataset(sample_root, dataset="multitask", tasks=4, use_cache=False)


def test_labels_and_given_records(sample_root, cache_dir):
    records = index_clips(sample_root, rate="beat")[:7]
    ds = SpectrogramDataset(sample_root, rate="beat", records=records, cache_dir=cache_dir)
    assert ds.ids == [r.id for r in records]
    labels = ds.labels("genre")
    assert labels.dtype == np.int64
    assert [CLASSES[k] for k in labels] == [r.genre10 for r in records]


def _items(lengths: list[int], n_feat: int = 3) -> list[dict]:
    return [{"x": torch.arange(t * n_feat, dtype=torch.float32).reshape(t, n_feat) + 1,
             "length": t, "y": {"genre": torch.tensor(k, dtype=torch.int64)},
             "id": str(k)} for k, t in enumerate(lengths)]


def test_collate_pads_to_the_longest_clip():
    batch = collate(_items([4, 7, 2]))
    x, lengths = batch["x"], batch["lengths"]
    assert x.shape == (3, 7, 3) and lengths.tolist() == [4, 7, 2]
    assert lengths.dtype == torch.int64
    for b, t in enumerate([4, 7, 2]):
        assert (x[b, :t] != 0).all() and (x[b, t:] == 0).all()
    assert batch["y"]["genre"].tolist() == [0, 1, 2]
    assert batch["ids"] == ["0", "1", "2"]


def test_collate_to_a_fixed_length_truncates_and_pads():
    items = _items([4, 9])
    batch = collate(items, max_length=6)
    assert batch["x"].shape == (2, 6, 3) and batch["lengths"].tolist() == [4, 6]
    assert torch.equal(batch["x"][1], items[1]["x"][:6])
    assert (batch["x"][0, 4:] == 0).all()
    with pytest.raises(ConfigError):
        collate(items, max_length=0)


def test_dataloader_over_a_subset(sample_root, cache_dir):
    ds = SpectrogramDataset(sample_root, rate="beat", view="chroma", cache_dir=cache_dir)
    train_idx, _ = train_val_split(len(ds))
    loader = DataLoader(Subset(ds, train_idx.tolist()), batch_size=8, collate_fn=collate)
    batch = next(iter(loader))
    assert batch["x"].shape == (8, int(batch["lengths"].max()), 12)
    assert batch["y"]["genre"].dtype == torch.int64


def test_default_split_is_the_lab_helpers_rule():
    n = 123
    train, val = train_val_split(n)
    indices = list(range(n))
    np.random.seed(420)
    np.random.shuffle(indices)
    split = int(np.floor(0.2 * n))
    assert val.tolist() == indices[:split] and train.tolist() == indices[split:]
    assert len(val) == 24 and sorted(train.tolist() + val.tolist()) == list(range(n))
    again_train, again_val = train_val_split(n)
    assert np.array_equal(train, again_train) and np.array_equal(val, again_val)
    _, other_val = train_val_split(n, seed=1)
    assert not np.array_equal(val, other_val)


def test_stratified_split_keeps_proportions():
    labels = np.repeat(np.arange(4), [40, 20, 20, 20])
    train, val = train_val_split(len(labels), stratify=labels, seed=3)
    assert len(val) == 20 and set(train) | set(val) == set(range(100))
    assert np.bincount(labels[val]).tolist() == [8, 4, 4, 4]
    again = train_val_split(len(labels), stratify=labels, seed=3)
    assert np.array_equal(val, again[1])
    with pytest.raises(ConfigError):
        train_val_split(10, val_fraction=1.0)


def test_feature_stats_over_valid_frames(sample_root, cache_dir):
    ds = SpectrogramDataset(sample_root, rate="beat", view="chroma", cache_dir=cache_dir)
    idx = [0, 3, 8]
    mean, std = feature_stats(ds, idx)
    frames = np.concatenate([ds[i]["x"].numpy() for i in idx]).astype(np.float64)
    assert mean.shape == std.shape == (12,) and mean.dtype == np.float32
    np.testing.assert_allclose(mean, frames.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(std, frames.std(axis=0), rtol=1e-4)
