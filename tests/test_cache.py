"""The memory-mapped clip cache: equal reads, invalidation, atomic builds, bad clips."""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

from musicaffect.data.arrays import load_array
from musicaffect.data.cache import (
    COMPLETE_MARKER,
    ClipStore,
    default_cache_dir,
    prune_orphans,
    store_dir,
)
from musicaffect.data.dataset import SpectrogramDataset
from musicaffect.data.labels import CLASS_MAPPING
from musicaffect.errors import DataError

FOLDER = "fma_genre_spectrograms_beat"


@pytest.fixture
def root(sample_root_gz, tmp_path) -> Path:
    """A private copy of the (small) beat-synchronous genre folder, as .npy.gz."""
    root = tmp_path / "data"
    shutil.copytree(Path(sample_root_gz) / FOLDER, root / FOLDER)
    return root


def _source(root: Path) -> Path:
    return root / FOLDER / "train"


def test_second_read_is_memory_mapped_and_equal(root, tmp_path):
    cache = tmp_path / "cache"
    first = ClipStore(_source(root), cache_dir=cache, progress=False)
    assert first.built and len(first) == 80
    second = ClipStore(_source(root), cache_dir=cache, progress=False)
    assert not second.built
    assert second.ids == first.ids
    for cid in second.ids[:10]:
        expected = load_array(_source(root) / f"{cid}.fused.full.npy.gz").T  # (T, 140)
        got = second.get(cid)
        assert got.dtype == np.float32 and got.flags.c_contiguous
        np.testing.assert_array_equal(got, expected)
        np.testing.assert_array_equal(second.get(cid, rows=slice(128, 140)), expected[:, 128:])
        assert second.length(cid) == expected.shape[0]
    files = sorted(p.name for p in store_dir(_source(root), cache_dir=cache).iterdir())
    assert files == ["COMPLETE", "clips.f32", "index.json"]
    size = (store_dir(_source(root), cache_dir=cache) / "clips.f32").stat().st_size
    assert size == 4 * 140 * int(second.lengths.sum())


def test_changed_source_file_rebuilds(root, tmp_path):
    cache = tmp_path / "cache"
    store = ClipStore(_source(root), cache_dir=cache, progress=False)
    cid = store.ids[0]
    path = _source(root) / f"{cid}.fused.full.npy.gz"
    new = np.full((140, 33), -5.0)
    import gzip
    import io

    buf = io.BytesIO()
    np.save(buf, new)
    path.write_bytes(gzip.compress(buf.getvalue()))
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10_000_000))
    again = ClipStore(_source(root), cache_dir=cache, progress=False)
    assert again.built
    np.testing.assert_array_equal(again.get(cid), new.T.astype(np.float32))
    (_source(root) / f"{again.ids[1]}.fused.full.npy.gz").unlink()
    third = ClipStore(_source(root), cache_dir=cache, progress=False)
    assert third.built and len(third) == 79


def test_interrupted_build_is_not_used(root, tmp_path):
    cache = tmp_path / "cache"
    final = store_dir(_source(root), cache_dir=cache)
    ClipStore(_source(root), cache_dir=cache, progress=False)
    # a build that died before its marker: the folder is in place but incomplete
    (final / COMPLETE_MARKER).unlink()
    (final / "clips.f32").write_bytes(b"\0" * 16)
    store = ClipStore(_source(root), cache_dir=cache, progress=False)
    assert store.built and (final / COMPLETE_MARKER).is_file()
    cid = store.ids[0]
    np.testing.assert_array_equal(store.get(cid),
                                  load_array(_source(root) / f"{cid}.fused.full.npy.gz").T)


def test_leftover_temp_folder_is_ignored_and_removed(root, tmp_path):
    cache = tmp_path / "cache"
    final = store_dir(_source(root), cache_dir=cache)
    stale = final.parent / f".{final.name}.tmp-999999999-deadbeef"
    stale.mkdir(parents=True)
    (stale / "clips.f32").write_bytes(b"\0" * 64)
    (stale / COMPLETE_MARKER).write_text("ok\n")
    store = ClipStore(_source(root), cache_dir=cache, progress=False)
    assert store.built and not stale.exists() and final.is_dir()
    assert not [p for p in cache.iterdir() if ".tmp-" in p.name]


def test_default_cache_dir_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("MUSICAFFECT_CACHE", str(tmp_path / "env-cache"))
    assert default_cache_dir() == tmp_path / "env-cache"
    assert store_dir(tmp_path / "x" / "train").parent == tmp_path / "env-cache"
    monkeypatch.delenv("MUSICAFFECT_CACHE")
    assert default_cache_dir() == Path.home() / ".cache" / "musicaffect"


def test_store_survives_pickling(root, tmp_path):
    store = ClipStore(_source(root), cache_dir=tmp_path / "cache", progress=False)
    clone = pickle.loads(pickle.dumps(store))
    np.testing.assert_array_equal(clone.get(store.ids[3]), store.get(store.ids[3]))


def test_corrupt_clip_is_recorded_and_raised_on_use(root, tmp_path):
    cache = tmp_path / "cache"
    rows = [line.split("\t") for line in
            (root / FOLDER / "train_labels.txt").read_text().splitlines()[1:]]
    cid = next(name.split(".")[0] for name, genre in rows if CLASS_MAPPING[genre])
    bad = _source(root) / f"{cid}.fused.full.npy.gz"
    bad.write_bytes(b"not gzip at all")
    store = ClipStore(_source(root), cache_dir=cache, progress=False)
    assert cid in store.bad and cid not in store
    with pytest.raises(DataError, match="corrupt gzip") as err:
        store.get(cid)
    assert err.value.path == str(bad)
    root_str = str(root)
    with pytest.raises(DataError, match="corrupt gzip") as err:
        SpectrogramDataset(root_str, rate="beat", cache_dir=cache)
    assert err.value.path == str(bad)
    ds = SpectrogramDataset(root_str, rate="beat", cache_dir=cache, skip_bad=True)
    assert cid not in ds.ids and len(ds) == 59
    assert ds.skipped == [(str(bad), store.bad[cid])]
    uncached = SpectrogramDataset(root_str, rate="beat", use_cache=False, skip_bad=True)
    assert uncached.ids == ds.ids and uncached.skipped[0][0] == str(bad)


def test_caches_of_deleted_folders_are_pruned(root, tmp_path):
    cache = tmp_path / "cache"
    other = tmp_path / "other"
    shutil.copytree(root, other)
    ClipStore(other / FOLDER / "test", cache_dir=cache, progress=False)
    ClipStore(_source(root), cache_dir=cache, progress=False)
    assert len(list(cache.iterdir())) == 2
    shutil.rmtree(other)
    assert prune_orphans(cache) == [store_dir(other / FOLDER / "test", cache_dir=cache)]
    assert [p.name for p in cache.iterdir()] == [store_dir(_source(root), cache_dir=cache).name]
