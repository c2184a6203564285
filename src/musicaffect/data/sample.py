"""A synthetic dataset in the exact Kaggle layout, for tests, the demo and benchmarks.

The arrays are **synthetic**: no audio was involved. They imitate the real dataset's format
(four folders, mismatched label-file names, float64 ``(140, T)`` arrays, dB mel rows in
[-80, 0], chroma rows in [0, 1]) and carry a learnable but imperfect signal:

- genre: each of the 10 lab classes has a spectral envelope (tilt and resonant bumps), a
  tempo range, a beat strength, a tonal clarity and a preferred mode; raw genres that map to
  the same class are small variations of it, the 5 dropped genres have their own. Every clip
  perturbs its class's envelope, so classes overlap.
- energy (most predictable): brightness (spectral tilt), beat strength and a compressed
  dynamic range.
- danceability (medium): regularity of the beat (timing jitter), beat strength, bass level
  and a tempo close to 120 BPM.
- valence (least predictable): the share of major vs minor chords in the chromagram, the
  level of the presence region (mel bands around 70), a little brightness and tempo.

The beat-synchronous version of a clip is the median of its full-rate frames between
synthetic beats, as ``librosa.util.sync(..., aggregate=np.median)`` computes it.
"""

from __future__ import annotations

import gzip
import io
import logging
import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from musicaffect.data.labels import CLASS_MAPPING, CLASSES, GENRES20, TARGETS
from musicaffect.data.layout import FOLDERS, SYNTHETIC_MARKER, genre_label_name, label_file_name
from musicaffect.errors import DataError
from musicaffect.features.params import FeatureParams

log = logging.getLogger(__name__)

#: the dataset's feature parameters (the librosa defaults the real dataset was computed with)
_PARAMS = FeatureParams()

#: official test-set size per lab class (DATA_FORMAT.md); train is 4x this in ``full``
FULL_TEST_PER_CLASS: dict[str, int] = {
    "Blues": 40, "Classical": 40, "Electronic": 80, "Folk": 80, "Hip-Hop": 40,
    "Jazz": 40, "Metal": 78, "Pop": 40, "Rock": 103, "Trip-Hop": 34,
}
FULL_GENRE_TOTAL = 3834
FULL_MULTITASK_TRAIN = 1497
FULL_MULTITASK_TEST = 300

#: small size: clips per raw genre (train, test) and multitask clips (train, test)
SMALL_GENRE_PER_RAW = (4, 2)
SMALL_MULTITASK = (40, 12)

SYNTHETIC_TEXT = """\
SYNTHETIC DATA - NOT REAL MUSIC

This folder was written by `musicaffect sample-data` (musicaffect.data.sample).
It has the exact layout of the Kaggle dataset "patreco3-multitask-affective-music"
(four folders, label files with their mismatched names, float64 (140, T) arrays),
but every array is generated: no audio was analysed.

The content carries a learnable but imperfect signal so that training curves mean
something: genre shows in the spectral envelope, tempo, beat strength and chroma;
energy in brightness, beat strength and dynamic range; danceability in beat
regularity and tempo; valence in the major/minor chords of the chromagram.
Results on this data say nothing about real music.

size: {size}
seed: {seed}
files: {ext}
"""


@dataclass(frozen=True)
class _Style:
    """What a genre (or a multitask clip's base) sounds like, in synthetic terms."""

    tilt_db: float               # dB drop from the lowest to the highest mel band
    bumps: tuple[tuple[float, float, float], ...]  # (centre band, width in bands, height dB)
    bpm: tuple[float, float]     # tempo mean, sd
    pulse: float                 # beat strength in dB
    jitter: float                # beat timing jitter (fraction of a period)
    tonal: float                 # chroma clarity in [0, 1]
    major: float                 # probability of a major chord
    affect: tuple[float, float, float] = (0.5, 0.5, 0.5)  # mean valence, energy, danceability


@dataclass
class _Clip:
    clip_id: str
    genre20: str | None
    style: _Style
    affect: np.ndarray = field(default_factory=lambda: np.full(3, 0.5))


def _styles() -> dict[str, _Style]:
    """Fixed per-genre styles (independent of the seed, so every seed draws the same genres)."""
    rs = np.random.RandomState(20240607)
    base: dict[str, _Style] = {}
    for k, name in enumerate(CLASSES):
        n_bumps = 2 + k % 2
        bumps = tuple((float(rs.uniform(5, 120)), float(rs.uniform(4, 18)),
                       float(rs.uniform(6, 16))) for _ in range(n_bumps))
        base[name] = _Style(
            tilt_db=float(rs.uniform(15, 45)), bumps=bumps,
            bpm=(float(rs.uniform(75, 170)), float(rs.uniform(6, 20))),
            pulse=float(rs.uniform(1, 9)), jitter=float(rs.uniform(0.02, 0.25)),
            tonal=float(rs.uniform(0.2, 0.9)), major=float(rs.uniform(0.2, 0.8)),
            affect=(float(rs.uniform(0.3, 0.7)), float(rs.uniform(0.25, 0.8)),
                    float(rs.uniform(0.3, 0.75))),
        )
    styles: dict[str, _Style] = {}
    for name in GENRES20:
        target = CLASS_MAPPING[name]
        if target is not None and target == name:
            styles[name] = base[name]
            continue
        if target is None:
            parent = base[CLASSES[rs.randint(len(CLASSES))]]
            spread = 1.0
        else:
            parent = base[target]
            spread = 0.25
        bumps = tuple((c + spread * rs.normal(0, 20), max(3.0, w + spread * rs.normal(0, 4)),
                       h + spread * rs.normal(0, 4)) for c, w, h in parent.bumps)
        styles[name] = _Style(
            tilt_db=float(np.clip(parent.tilt_db + spread * rs.normal(0, 10), 10, 50)),
            bumps=bumps,
            bpm=(float(np.clip(parent.bpm[0] + spread * rs.normal(0, 25), 70, 190)),
                 parent.bpm[1]),
            pulse=float(np.clip(parent.pulse + spread * rs.normal(0, 2), 0.5, 10)),
            jitter=float(np.clip(parent.jitter + spread * rs.normal(0, 0.05), 0.01, 0.3)),
            tonal=float(np.clip(parent.tonal + spread * rs.normal(0, 0.2), 0.1, 0.95)),
            major=float(np.clip(parent.major + spread * rs.normal(0, 0.2), 0.05, 0.95)),
            affect=parent.affect,
        )
    return styles


def _smooth_noise(rng: np.random.Generator, n: int, *, scale: float, knots: int) -> np.ndarray:
    """A smooth random curve of length ``n`` (linear interpolation of ``knots`` normals)."""
    x = np.linspace(0, knots - 1, n)
    return scale * np.interp(x, np.arange(knots), rng.normal(size=knots))


def _beats(rng: np.random.Generator, n_frames: int, *, bpm: float, jitter: float) -> np.ndarray:
    """Beat frame positions, giving between 29 and 128 beats (30-129 beat segments)."""
    period = 60.0 * _PARAMS.sr / _PARAMS.hop_length / bpm  # frames per beat
    n = int(np.clip(round(n_frames / period), 29, 128))
    period = n_frames / (n + 0.5)
    pos = period * (np.arange(n) + 0.5 + rng.normal(0, jitter, size=n))
    pos = np.clip(np.round(pos), 1, n_frames - 1).astype(int)
    pos = np.unique(pos)
    while pos.size < 29:  # collisions from jitter: fill the widest gaps
        edges = np.concatenate([[0], pos, [n_frames]])
        gap = int(np.argmax(np.diff(edges)))
        pos = np.unique(np.append(pos, (edges[gap] + edges[gap + 1]) // 2))
    return pos


def _mel(rng: np.random.Generator, style: _Style, affect: np.ndarray, beats: np.ndarray,
         n_frames: int) -> np.ndarray:
    """Mel spectrogram in dB relative to its maximum, shape (128, n_frames), in [-80, 0]."""
    valence, energy, dance = affect
    bands = np.arange(_PARAMS.n_mels, dtype=float)
    # spectral envelope: tilt (energy and valence brighten), bumps, per-clip smooth deviation
    tilt = style.tilt_db * (1.35 - 0.9 * energy - 0.3 * valence) + rng.normal(0, 7)
    env = -tilt * bands / (_PARAMS.n_mels - 1)
    for centre, width, height in style.bumps:
        c = centre + rng.normal(0, 14)
        env += (height + rng.normal(0, 6)) * np.exp(-0.5 * ((bands - c) / width) ** 2)
    env += _smooth_noise(rng, _PARAMS.n_mels, scale=7.0, knots=9)
    # valence lifts the presence region, danceability the bass (each with its own noise)
    env += (7.0 * (valence - 0.5) + rng.normal(0, 1.5)) * np.exp(-0.5 * ((bands - 70) / 8) ** 2)
    env += (6.0 * (dance - 0.5) + rng.normal(0, 1.5)) * np.exp(-0.5 * (bands / 8) ** 2)
    # temporal activity: beat pulses (energy, danceability make them stronger) + slow loudness
    t = np.arange(n_frames)
    pulse_db = style.pulse * (0.4 + 0.6 * energy + 0.8 * dance) + rng.normal(0, 0.8)
    decay = rng.uniform(1.5, 4.0)
    last = np.searchsorted(beats, t, side="right") - 1
    since = np.where(last >= 0, t - beats[np.maximum(last, 0)], n_frames)  # frames since beat
    pulse = np.exp(-since / decay)
    dyn_range = 14.0 * (1.2 - energy) + rng.uniform(0, 3)
    loud = _smooth_noise(rng, n_frames, scale=dyn_range / 3, knots=12)
    band_gain = 0.6 + 0.8 * np.exp(-bands / 12) + 0.5 * (bands > 90)
    s = rng.standard_normal(size=(_PARAMS.n_mels, n_frames), dtype=np.float32)  # (128, T)
    s *= 3.0
    s += env.astype(np.float32)[:, None]
    s += loud.astype(np.float32)[None, :]
    s += np.outer(band_gain * max(pulse_db, 0.0), pulse).astype(np.float32)
    s -= s.max()  # like power_to_db(ref=np.max)
    return np.clip(s, -80.0, 0.0, out=s).astype(np.float64)


_MAJOR = np.zeros(_PARAMS.n_chroma)
_MAJOR[[0, 4, 7]] = [1.0, 0.75, 0.85]
_MINOR = np.zeros(_PARAMS.n_chroma)
_MINOR[[0, 3, 7]] = [1.0, 0.75, 0.85]


def _chroma(rng: np.random.Generator, style: _Style, affect: np.ndarray, beats: np.ndarray,
            n_frames: int) -> np.ndarray:
    """Chromagram with per-frame maximum 1, shape (12, n_frames), in [0, 1]."""
    valence = affect[0]
    p_major = float(np.clip(0.35 * style.major + 0.65 * (0.1 + 0.8 * valence), 0.02, 0.98))
    key = rng.integers(_PARAMS.n_chroma)
    steps = np.array([0, 5, 7, 9, 2, 4])  # chord roots relative to the key
    bounds = np.concatenate([[0], beats[3::4], [n_frames]])
    c = np.empty((_PARAMS.n_chroma, n_frames))
    for start, stop in zip(bounds[:-1], bounds[1:]):
        if stop <= start:
            continue
        root = (key + steps[rng.integers(steps.size)]) % _PARAMS.n_chroma
        template = _MAJOR if rng.random() < p_major else _MINOR
        c[:, start:stop] = np.roll(template, root)[:, None]
    clarity = float(np.clip(style.tonal + rng.normal(0, 0.1), 0.05, 1.0))
    c = clarity * c + (1 - clarity) * rng.uniform(0, 1, size=c.shape)
    c += rng.normal(0, 0.08, size=c.shape)
    c = np.clip(c, 1e-3, None)
    return c / c.max(axis=0, keepdims=True)


def _beat_sync(full: np.ndarray, beats: np.ndarray) -> np.ndarray:
    """Median of the frames between beats (and before the first / after the last one)."""
    bounds = np.concatenate([[0], beats, [full.shape[1]]])
    starts, widths = bounds[:-1], np.diff(bounds)
    out = np.empty((full.shape[0], starts.size))
    for w in np.unique(widths):  # segments of equal width in one call
        seg = np.flatnonzero(widths == w)
        frames = starts[seg][:, None] + np.arange(w)[None, :]  # (n_seg, w)
        ordered = np.sort(full[:, frames], axis=2)  # (140, n_seg, w)
        out[:, seg] = 0.5 * (ordered[..., (w - 1) // 2] + ordered[..., w // 2])  # median
    return out


def _make_clip(rng: np.random.Generator, clip: _Clip) -> tuple[np.ndarray, np.ndarray]:
    """Full-rate (140, 1291..1293) and beat-synchronous (140, 30..129) float64 arrays."""
    style, affect = clip.style, clip.affect
    n_frames = int(rng.integers(1291, 1294))
    dance = affect[2]
    bpm_mean = (1 - 0.6 * dance) * style.bpm[0] + 0.6 * dance * 120.0 + 20 * (affect[0] - 0.5)
    bpm = float(np.clip(rng.normal(bpm_mean, style.bpm[1]), 60, 250))
    jitter = float(np.clip(style.jitter * (1.6 - 1.4 * dance) + rng.normal(0, 0.02), 0.0, 0.45))
    beats = _beats(rng, n_frames, bpm=bpm, jitter=jitter)
    full = np.concatenate([_mel(rng, style, affect, beats, n_frames),
                           _chroma(rng, style, affect, beats, n_frames)])
    # float32 precision, mel on a 1/256 dB grid, chroma on a 1/4096 grid: float64 on disk
    # that gzips fast; the grid is far below the noise
    full[:_PARAMS.n_mels] = np.round(full[:_PARAMS.n_mels] * 256) / 256
    full[_PARAMS.n_mels:] = np.round(full[_PARAMS.n_mels:] * 4096) / 4096
    return full, _beat_sync(full, beats)


def _save(path: Path, array: np.ndarray, *, gz: bool) -> None:
    """``np.save`` the array, gzip-wrapped when ``gz`` (byte-identical across runs)."""
    if gz:
        buf = io.BytesIO()
        np.save(buf, array)
        path.write_bytes(gzip.compress(buf.getvalue(), compresslevel=1, mtime=0))
    else:
        np.save(path, array)


def _genre_plan(size: str, rng: np.random.Generator) -> dict[str, list[str]]:
    """Raw genre of every clip, per split."""
    if size == "small":
        n_train, n_test = SMALL_GENRE_PER_RAW
        return {"train": [g for g in GENRES20 for _ in range(n_train)],
                "test": [g for g in GENRES20 for _ in range(n_test)]}
    plan: dict[str, list[str]] = {"train": [], "test": []}
    members: dict[str, list[str]] = {}
    for g in GENRES20:
        members.setdefault(CLASS_MAPPING[g] or "", []).append(g)
    for cls, n_test in FULL_TEST_PER_CLASS.items():
        raws = members[cls]
        share = np.array([2.0 if r == cls else 1.0 for r in raws])
        share /= share.sum()
        for split, n in (("test", n_test), ("train", 4 * n_test)):
            counts = np.floor(share * n).astype(int)
            counts[0] += n - counts.sum()
            for r, k in zip(raws, counts):
                plan[split] += [r] * int(k)
    n_mapped = len(plan["train"]) + len(plan["test"])
    dropped = members[""]
    n_dropped = FULL_GENRE_TOTAL - n_mapped
    per = rng.multinomial(n_dropped, np.full(len(dropped), 1 / len(dropped)))
    for r, k in zip(dropped, per):
        k_test = int(round(0.2 * k))
        plan["test"] += [r] * k_test
        plan["train"] += [r] * (k - k_test)
    return plan


def _unique_ids(rng: np.random.Generator, n: int) -> list[str]:
    ids = rng.choice(np.arange(1000, 160000), size=n, replace=False)
    return [str(int(i)) for i in ids]


def _affect(rng: np.random.Generator, mean: tuple[float, float, float]) -> np.ndarray:
    """Valence, energy, danceability drawn around ``mean`` (Beta with concentration 6)."""
    m = np.clip(np.asarray(mean), 0.05, 0.95)
    return rng.beta(6 * m, 6 * (1 - m))


def _iter_jobs(size: str, rng: np.random.Generator
               ) -> Iterator[tuple[str, str, _Clip]]:
    """(dataset, split, clip) for every clip to write, genre clips first."""
    styles = _styles()
    plan = _genre_plan(size, rng)
    n_genre = len(plan["train"]) + len(plan["test"])
    n_mt_train, n_mt_test = (SMALL_MULTITASK if size == "small"
                             else (FULL_MULTITASK_TRAIN, FULL_MULTITASK_TEST))
    ids = _unique_ids(rng, n_genre + n_mt_train + n_mt_test)
    k = 0
    for split in ("train", "test"):
        genres = list(plan[split])
        rng.shuffle(genres)
        for g in genres:
            style = styles[g]
            yield "genre", split, _Clip(ids[k], g, style, _affect(rng, style.affect))
            k += 1
    bases = [styles[c] for c in CLASSES]
    for split, n in (("train", n_mt_train), ("test", n_mt_test)):
        for _ in range(n):
            style = bases[rng.integers(len(bases))]
            affect = rng.beta(1.6, 1.6, size=3)  # wide spread of labels
            yield "multitask", split, _Clip(ids[k], None, style, affect)
            k += 1


def write_sample_dataset(root: str | os.PathLike, *, size: str = "small", seed: int = 0,
                         gz: bool = False) -> Path:
    """Write a synthetic dataset in the exact layout of the Kaggle dataset.

    Parameters
    ----------
    root : str or os.PathLike
        Data root to create (may exist; existing sample files are overwritten). Receives the
        four folders ``fma_genre_spectrograms[_beat]`` and ``multitask_dataset[_beat]``,
        each with ``train/`` and ``test/``, the label files, and ``SYNTHETIC.txt``.
    size : {"small", "full"}
        ``small``: 4 train + 2 test clips per raw genre (80 + 40) and 40 + 12 multitask
        clips, about 250 MB as ``.npy``, a few seconds. ``full``: the real sizes (3834 genre
        clips, 575 mapped test clips with the official per-class counts, 1497 labelled +
        300 unlabelled multitask clips), about 8 GB as ``.npy``.
    seed : int
        Everything written is a deterministic function of ``seed``.
    gz : bool
        Write ``<id>.fused.full.npy.gz`` (the original release) instead of ``.npy``.

    Returns
    -------
    root : Path
        The data root.

    Notes
    -----
    Arrays are float64 of shape (140, T): rows 0-127 mel dB in [-80, 0] with a clip maximum
    of 0 dB, rows 128-139 chroma in [0, 1]; T in 1291..1293 at full rate and in 30..129
    beat-synchronous (the median of the full-rate frames between beats).
    """
    if size not in ("small", "full"):
        raise DataError(f"unknown sample size {size!r}: use 'small' or 'full'")
    root = Path(root)
    rng = np.random.default_rng(seed)
    ext = ".npy.gz" if gz else ".npy"
    for dataset in ("genre", "multitask"):
        for rate in ("full", "beat"):
            for split in ("train", "test"):
                (root / FOLDERS[dataset, rate] / split).mkdir(parents=True, exist_ok=True)

    jobs = list(_iter_jobs(size, rng))
    genre_rows: dict[tuple[str, str], list[str]] = {}
    mt_rows: list[str] = []
    # compression and writing run in threads (zlib and file I/O release the GIL) while the
    # next clip is generated; at most a few clips wait in memory
    with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
        pending: deque[Future] = deque()
        for dataset, split, clip in tqdm(jobs, desc=f"writing {size} sample data", unit="clip",
                                         disable=size == "small" or None):
            full, beat = _make_clip(rng, clip)
            for rate, arr in (("full", full), ("beat", beat)):
                path = root / FOLDERS[dataset, rate] / split / f"{clip.clip_id}.fused.full{ext}"
                pending.append(pool.submit(_save, path, arr, gz=gz))
                while len(pending) > 8:
                    pending.popleft().result()
                if dataset == "genre":
                    genre_rows.setdefault((rate, split), []).append(
                        f"{genre_label_name(clip.clip_id, rate, split)}\t{clip.genre20}")
            if dataset == "multitask" and split == "train":
                v, e, d = clip.affect
                mt_rows.append(f"{clip.clip_id},{v:.6f},{e:.6f},{d:.6f}")
        while pending:
            pending.popleft().result()
    for (rate, split), rows in genre_rows.items():
        text = "Id\tGenre\n" + "\n".join(rows) + "\n"
        (root / FOLDERS["genre", rate] / label_file_name(split)).write_text(text)
    header = "Id," + ",".join(TARGETS)
    for rate in ("full", "beat"):
        text = header + "\n" + "\n".join(mt_rows) + "\n"
        (root / FOLDERS["multitask", rate] / label_file_name("train")).write_text(text)
    # written last: a root with the marker is complete
    (root / SYNTHETIC_MARKER).write_text(SYNTHETIC_TEXT.format(size=size, seed=seed, ext=ext))
    log.info("wrote %s synthetic sample data (%d clips) to %s", size, len(jobs), root)
    return root
