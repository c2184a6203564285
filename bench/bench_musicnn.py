"""Benchmark: musicnn embedding extraction, the original TensorFlow extractor vs the port.

All audio here is SYNTHETIC (seeded tones + noise, 16 kHz): speed numbers only, never a
result on music.

1. Side by side on the same N wav clips (default 8 x 30 s), both limited to ``--threads``
   threads: the original ``musicnn.extractor.extractor(file, model="MSD_musicnn",
   extract_features=True)`` per file (as its API is used: it rebuilds the graph and restores
   the checkpoint on every call), run in a separate TensorFlow venv (``--tf-python``; skipped
   when missing), and the port's :meth:`Embedder.embed_file` per file (one model load).
2. The port alone on ``--clips`` (default 1000) 30-s waveforms generated in memory (no
   decoding), batched over each clip's patches.

Writes ``bench/results/musicnn.json``::

    python bench/bench_musicnn.py [--clips 1000] [--side-by-side 8] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SR = 16000
SECONDS = 30.0

_TF_CODE = r"""
import json, os, sys, time, contextlib, io
import tensorflow as tf
tf.config.threading.set_intra_op_parallelism_threads(int(sys.argv[1]))
tf.config.threading.set_inter_op_parallelism_threads(1)
from musicnn import extractor
files = sys.argv[2:]
t0 = time.perf_counter()
for f in files:
    with contextlib.redirect_stdout(io.StringIO()):
        extractor.extractor(f, model="MSD_musicnn", extract_features=True)
print(json.dumps({"seconds": time.perf_counter() - t0, "clips": len(files)}))
"""


def synthetic_clip(seed: int, seconds: float = SECONDS) -> np.ndarray:
    """A seeded 16 kHz test signal: a few tones with tremolo plus noise (float32)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR), dtype=np.float32) / SR
    y = np.zeros_like(t)
    for f in rng.uniform(80, 2000, size=4):
        y += np.sin(2 * np.pi * f * t) * (0.6 + 0.4 * np.sin(2 * np.pi * rng.uniform(0.5, 4) * t))
    y += 0.3 * rng.standard_normal(t.size).astype(np.float32)
    return (0.25 * y / np.abs(y).max()).astype(np.float32)


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=1000)
    ap.add_argument("--side-by-side", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tf-python", default="/work/scratch/tfvenv/bin/python")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "musicnn.json"))
    args = ap.parse_args(argv)

    import soundfile as sf
    import torch

    from musicaffect.features.embed import Embedder

    torch.set_num_threads(args.threads)
    result: dict = {"data": "SYNTHETIC audio (seeded tones + noise), speed only",
                    "clip_seconds": SECONDS, "threads": args.threads, "device": args.device,
                    "cpu_count": os.cpu_count(), "platform": platform.platform(),
                    "torch": torch.__version__, "load_average_start": load_average()}
    emb = Embedder(device=args.device)
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for i in range(args.side_by_side):
            path = Path(tmp) / f"clip{i}.wav"
            sf.write(path, synthetic_clip(i), SR, subtype="PCM_16")
            files.append(str(path))
        emb.embed_waveform(synthetic_clip(99_999), SR)               # warm-up
        if not files:                                   # --side-by-side 0: bulk timing only
            return _bulk(args, emb, result)
        t0 = time.perf_counter()
        for f in files:
            emb.embed_file(f)
        port = time.perf_counter() - t0
        side = {"clips": len(files), "port_seconds": round(port, 2),
                "port_clips_per_s": round(len(files) / port, 3)}
        if Path(args.tf_python).is_file():
            env = {**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3",
                   "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": str(args.threads)}
            proc = subprocess.run([args.tf_python, "-c", _TF_CODE, str(args.threads), *files],
                                  capture_output=True, text=True, env=env, check=False)
            if proc.returncode == 0:
                tf = json.loads(proc.stdout.strip().splitlines()[-1])
                side.update(tf_seconds=round(tf["seconds"], 2),
                            tf_clips_per_s=round(tf["clips"] / tf["seconds"], 3),
                            speedup=round(tf["seconds"] / port, 2))
            else:
                side["tf_error"] = proc.stderr.strip().splitlines()[-1:]
        else:
            side["tf_error"] = f"no TensorFlow venv at {args.tf_python}"
        result["side_by_side"] = side
        print(json.dumps(side), flush=True)

    return _bulk(args, emb, result)


def _bulk(args, emb, result: dict) -> dict:
    """Time the extraction of ``args.clips`` in-memory clips; write and return the results."""
    from musicaffect.io import atomic_write

    t0 = time.perf_counter()
    patches = 0
    for i in range(args.clips):
        patches += int(emb.embed_waveform(synthetic_clip(10_000 + i), SR)["n_patches"])
    total = time.perf_counter() - t0
    result["bulk"] = {"clips": args.clips, "patches": patches, "seconds": round(total, 1),
                      "clips_per_s": round(args.clips / total, 3),
                      "note": "waveforms generated in memory: mel + network, no decoding"}
    result["load_average_end"] = load_average()
    print(json.dumps(result["bulk"]), flush=True)
    atomic_write(args.out, json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
