"""Benchmark: feature extraction with ``build_dataset`` against a plain sequential loop.

Generates synthetic music-like clips (chords that change every 2 s, clicks at a per-clip
tempo, a little noise), then times

(a) the loop a student would write: for each file, ``librosa.load``, ``melspectrogram`` +
    ``power_to_db``, ``chroma_cqt``, ``effects.hpss``, ``beat_track`` on the percussive part,
    ``util.sync`` of mel and of chroma, ``np.save`` of the full and beat arrays (every
    transform recomputed on its own: three STFTs of the clip and two inverse STFTs);
(b) ``build_dataset(..., jobs=2)``: one shared STFT per clip, one inverse STFT, worker
    processes with one BLAS thread each;
(c) optionally ``build_dataset(..., jobs=1)``, to separate the two gains.

Both are warmed up first (librosa compiles numba code on first use), the process is pinned to
2 CPUs where the OS allows it, and the outputs are checked to be the same (allclose).

    .venv/bin/python bench/bench_extract.py [--n-clips 16] [--seconds 30] [--jobs 2]

Writes ``bench/results/extract.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import librosa
import numpy as np
import soundfile as sf

from musicaffect.features import build_dataset
from musicaffect.features.audio import warm_up
from musicaffect.features.build import CLIP_SUFFIX, FOLDERS

SR = 22050
GENRES = ("Rock", "Jazz", "Electronic", "Classical")
CHORDS = ((261.6, 329.6, 392.0), (220.0, 261.6, 329.6), (174.6, 220.0, 261.6),
          (196.0, 246.9, 293.7))


def synth_clip(seconds: float, *, seed: int) -> np.ndarray:
    """Music-like audio: a chord progression, clicks at a clip tempo, noise.

    Returns
    -------
    y : np.ndarray [shape=(seconds * 22050,), dtype=float32]
    """
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    y = np.zeros(n)
    for k, start in enumerate(range(0, n, 2 * SR)):  # a new chord every 2 s
        chord = CHORDS[(k + seed) % len(CHORDS)]
        seg = slice(start, min(n, start + 2 * SR))
        for f in chord:
            y[seg] += 0.12 * np.sin(2 * np.pi * f * t[seg]) * np.exp(-(t[seg] - t[start]))
    bpm = rng.uniform(80, 160)
    y += 0.5 * librosa.clicks(times=np.arange(0.2, seconds, 60.0 / bpm), sr=SR, length=n)
    y += 0.01 * rng.standard_normal(n)
    return y.astype(np.float32)


def write_clips(audio: Path, *, n_clips: int, seconds: float) -> Path:
    audio.mkdir(parents=True, exist_ok=True)
    lines = ["file,genre"]
    for i in range(n_clips):
        sf.write(audio / f"clip{i:03d}.wav", synth_clip(seconds, seed=i), SR)
        lines.append(f"clip{i:03d}.wav,{GENRES[i % len(GENRES)]}")
    labels = audio.parent / "labels.csv"
    labels.write_text("\n".join(lines) + "\n")
    return labels


def student_features(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The plain sequential recipe, each transform computed on its own."""
    y, sr = librosa.load(path, sr=SR)
    S = librosa.feature.melspectrogram(y=y, sr=sr, n_fft=2048, hop_length=512, n_mels=128)
    mel = librosa.power_to_db(S, ref=np.max)
    chroma = librosa.feature.chroma_cqt(y=y, sr=sr, hop_length=512)
    _, y_perc = librosa.effects.hpss(y)
    _, beats = librosa.beat.beat_track(y=y_perc, sr=sr)
    mel_beat = librosa.util.sync(mel, beats, aggregate=np.median)
    chroma_beat = librosa.util.sync(chroma, beats, aggregate=np.median)
    full = np.vstack([mel, chroma])  # (140, T)
    beat = np.vstack([mel_beat, chroma_beat])  # (140, B)
    return full, beat


def _cpu() -> float:
    """CPU seconds of this process and of its finished child processes."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def run_student(files: list[Path], out: Path) -> tuple[dict[str, float], dict[str, tuple]]:
    out.mkdir(parents=True, exist_ok=True)
    arrays = {}
    t0, c0 = time.perf_counter(), _cpu()
    for path in files:
        full, beat = student_features(path)
        np.save(out / f"{path.stem}.full.npy", full)
        np.save(out / f"{path.stem}.beat.npy", beat)
        arrays[path.name] = (full, beat)
    return {"wall_s": time.perf_counter() - t0, "cpu_s": _cpu() - c0}, arrays


def run_build(audio: Path, labels: Path, out: Path, *, jobs: int) -> dict[str, float]:
    t0, c0 = time.perf_counter(), _cpu()
    report = build_dataset(audio, out, labels_csv=labels, jobs=jobs, resume=False,
                           progress=False)
    timing = {"wall_s": time.perf_counter() - t0, "cpu_s": _cpu() - c0}
    if report.failed:
        raise SystemExit(f"build_dataset failed on {report.failed} clips: {report.errors}")
    return timing


def _figures(timing: dict[str, float], n: int) -> dict[str, float]:
    return {"wall_s": round(timing["wall_s"], 2), "cpu_s": round(timing["cpu_s"], 2),
            "clips_per_s": round(n / timing["wall_s"], 3),
            "cpu_s_per_clip": round(timing["cpu_s"] / n, 3)}


def compare(out: Path, arrays: dict[str, tuple]) -> float:
    """Largest absolute difference between the build's arrays and the student's."""
    ids = {}
    for line in (out / "clips.csv").read_text().splitlines()[1:]:
        fields = line.split(",")
        ids[fields[1]] = (fields[0], fields[2])
    worst = 0.0
    for name, (full, beat) in arrays.items():
        cid, split = ids[name]
        for rate, ref in (("full", full), ("beat", beat)):
            got = np.load(out / FOLDERS["genre", rate] / split / f"{cid}{CLIP_SUFFIX}")
            if got.shape != ref.shape:
                raise SystemExit(f"{name} {rate}: shape {got.shape} != {ref.shape}")
            worst = max(worst, float(np.max(np.abs(got - ref))))
    return worst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-clips", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--no-serial", action="store_true",
                        help="skip the build_dataset jobs=1 run")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "extract.json"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)

    if hasattr(os, "sched_setaffinity"):
        cpus = sorted(os.sched_getaffinity(0))[: args.jobs]
        os.sched_setaffinity(0, cpus)
    n_cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()

    with tempfile.TemporaryDirectory(prefix="bench_extract_") as tmp:
        work = Path(tmp)
        labels = write_clips(work / "audio", n_clips=args.n_clips, seconds=args.seconds)
        files = sorted((work / "audio").glob("*.wav"))
        warm_up()
        student_features(files[0])  # compile librosa's numba code before timing

        load_before = os.getloadavg()
        seq, arrays = run_student(files, work / "student")
        par = run_build(work / "audio", labels, work / "built", jobs=args.jobs)
        diff = compare(work / "built", arrays)
        serial = None if args.no_serial else run_build(work / "audio", labels,
                                                       work / "built1", jobs=1)
        load_after = os.getloadavg()

    n = args.n_clips
    busy = max(load_before[0], load_after[0]) > n_cpus
    result = {
        "n_clips": n, "clip_seconds": args.seconds, "jobs": args.jobs, "cpus_used": n_cpus,
        "sequential_loop": _figures(seq, n),
        "build_dataset": _figures(par, n),
        "build_dataset_jobs1": None if serial is None else _figures(serial, n),
        "speedup": round(seq["wall_s"] / par["wall_s"], 2),
        "speedup_jobs1": None if serial is None else round(seq["wall_s"] / serial["wall_s"], 2),
        "cpu_work_ratio": round(seq["cpu_s"] / par["cpu_s"], 2),
        "max_abs_diff": diff, "same_output": bool(diff <= 1e-4),
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in load_after],
        "note": ("machine busy (load average above the CPUs used): wall-clock ratios do not "
                 "show the parallel gain; cpu_work_ratio shows the work saved") if busy else "",
        "librosa": librosa.__version__, "python": platform.python_version(),
        "machine": platform.machine(), "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0 if result["same_output"] else 1


if __name__ == "__main__":
    sys.exit(main())
