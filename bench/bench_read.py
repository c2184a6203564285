"""Benchmark: one epoch of reads of the full-rate genre train folder, gzip vs the clip cache.

Modes, each measured in its own subprocess (so peak memory is per mode):

- ``gzip``: the lab helper's way: gzip-load every ``.npy.gz`` file of the split into a list of
  float64 (T, 140) arrays held in memory;
- ``build``: the one-time cache build (:class:`musicaffect.data.cache.ClipStore`);
- ``cached``: open the :class:`SpectrogramDataset` (``view="fused"``) over the built cache and
  read every item once.

Usage::

    python bench/bench_read.py                  # writes bench/data/full if missing (minutes)
    python bench/bench_read.py --data DIR --out bench/results/read.json

The data is synthetic (``musicaffect sample-data --size full --gz``), the real dataset's sizes.
Timings are with a warm OS page cache for both modes (each reads its files once before).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _records(data: Path):
    from musicaffect.data.layout import index_clips

    return index_clips(data, dataset="genre", rate="full", split="train")


def mode_gzip(data: Path, cache: Path) -> dict:
    records = _records(data)
    base = _maxrss_mb()
    t0 = time.perf_counter()
    arrays = []
    for r in records:
        with gzip.GzipFile(r.path, "r") as fh:
            arrays.append(np.load(fh).T)  # (T, 140) float64, as the lab helper keeps them
    seconds = time.perf_counter() - t0
    nbytes = sum(a.nbytes for a in arrays)
    return {"seconds": seconds, "clips": len(arrays), "bytes_float64": nbytes,
            "maxrss_mb": _maxrss_mb(), "baseline_rss_mb": base}


def mode_build(data: Path, cache: Path) -> dict:
    from musicaffect.data.cache import ClipStore

    base = _maxrss_mb()
    t0 = time.perf_counter()
    store = ClipStore(data / "fma_genre_spectrograms" / "train", cache_dir=cache,
                      progress=False)
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "clips": len(store), "built": store.built,
            "store_bytes": int(store.lengths.sum()) * 140 * 4,
            "maxrss_mb": _maxrss_mb(), "baseline_rss_mb": base}


def mode_cached(data: Path, cache: Path) -> dict:
    import torch  # noqa: F401  (imported before the baseline, as any training run has it)

    from musicaffect.data.dataset import SpectrogramDataset

    base = _maxrss_mb()
    t0 = time.perf_counter()
    ds = SpectrogramDataset(data, dataset="genre", rate="full", split="train", view="fused",
                            cache_dir=cache)
    opened = time.perf_counter()
    frames = 0
    for i in range(len(ds)):
        frames += ds[i]["x"].shape[0]
    done = time.perf_counter()
    return {"seconds": done - opened, "open_seconds": opened - t0, "clips": len(ds),
            "frames": frames, "maxrss_mb": _maxrss_mb(), "baseline_rss_mb": base}


MODES = {"gzip": mode_gzip, "build": mode_build, "cached": mode_cached}


def _run_child(mode: str, data: Path, cache: Path) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", mode, "--data", str(data),
           "--cache-dir", str(cache)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def ensure_data(data: Path, *, seed: int) -> None:
    """Write the full-size gz sample dataset unless it is already there."""
    marker = data / "SYNTHETIC.txt"
    if marker.is_file() and "size: full" in marker.read_text() and "npy.gz" in marker.read_text():
        return
    from musicaffect.data.sample import write_sample_dataset

    data.mkdir(parents=True, exist_ok=True)
    ignore = data.parent / ".gitignore"
    if data.parent == HERE / "data" and not ignore.exists():
        ignore.write_text("*\n")  # never commit generated benchmark data
    print(f"writing the full-size synthetic dataset (gz) to {data}; this takes minutes",
          file=sys.stderr)
    write_sample_dataset(data, size="full", seed=seed, gz=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=HERE / "data" / "full",
                        help="full-size .npy.gz dataset (written if missing)")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="cache folder (default: <data>/../cache, rebuilt each run)")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "read.json")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", choices=sorted(MODES), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    cache = args.cache_dir or args.data.parent / "cache"
    if args.child:
        print(json.dumps(MODES[args.child](args.data, cache)))
        return 0

    ensure_data(args.data, seed=args.seed)
    shutil.rmtree(cache, ignore_errors=True)
    _run_child("gzip", args.data, cache)  # warm the page cache with the .gz files
    gz = _run_child("gzip", args.data, cache)
    build = _run_child("build", args.data, cache)
    _run_child("cached", args.data, cache)  # first pass maps the fresh store
    cached = _run_child("cached", args.data, cache)
    result = {
        "benchmark": "one epoch of reads, fma_genre_spectrograms/train (full rate, mapped "
                     "clips, fused view), synthetic full-size data",
        "data": str(args.data), "clips": gz["clips"],
        "gzip_epoch_s": round(gz["seconds"], 3),
        "cached_epoch_s": round(cached["seconds"], 3),
        "cached_open_s": round(cached["open_seconds"], 3),
        "cache_build_once_s": round(build["seconds"], 3),
        "speedup": round(gz["seconds"] / cached["seconds"], 1),
        "speedup_incl_open": round(gz["seconds"] / (cached["seconds"]
                                                    + cached["open_seconds"]), 1),
        "folder_as_float64_mb": round(gz["bytes_float64"] / 2**20, 1),
        "gzip_peak_rss_mb": round(gz["maxrss_mb"], 1),
        "gzip_baseline_rss_mb": round(gz["baseline_rss_mb"], 1),
        "cached_peak_rss_mb": round(cached["maxrss_mb"], 1),
        "cached_baseline_rss_mb": round(cached["baseline_rss_mb"], 1),
        "build_peak_rss_mb": round(build["maxrss_mb"], 1),
        "store_mb": round(build["store_bytes"] / 2**20, 1),
        "targets": {"speedup_min": 20, "cached_peak_below_float64_folder": True},
        "python": platform.python_version(), "machine": platform.machine(),
        "cpus": os.cpu_count(),
    }
    result["meets_targets"] = bool(result["speedup"] >= 20
                                   and result["cached_peak_rss_mb"]
                                   < result["folder_as_float64_mb"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
