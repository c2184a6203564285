"""Features from audio, computed exactly as the Kaggle dataset's clips were made.

The dataset's recipe (librosa defaults): load at ``sr=22050`` (mono); log-mel spectrogram with
``n_fft=2048``, ``hop_length=512``, ``n_mels=128``, power 2, in dB relative to the clip's
maximum (``power_to_db(ref=np.max)``, values in [-80, 0]); 12-bin chromagram from the
constant-Q transform (``chroma_cqt``, hop 512, values in [0, 1]); fused = mel rows over chroma
rows, shape (140, T). The beat-synchronous version separates harmonic and percussive parts
(HPSS), tracks beats on the percussive part and takes the median of the frames between beats
(``librosa.util.sync(..., aggregate=np.median)``).

:func:`extract` computes every transform once: one STFT serves the mel spectrogram, the
tuning estimate of the CQT and the HPSS; only the percussive part is inverted, and the HPSS
median filters use an exact running median (same values as ``scipy.ndimage``, faster).

No-beat rule: when beat tracking finds fewer than ``min_beats`` beats (e.g. a steady tone),
the clip is cut into fixed segments of one beat at ``fallback_bpm`` (120 BPM: every
``60 / 120 * 22050 / 512 ~= 21.5`` frames, boundaries rounded to whole frames); the fallback
is logged and reported as ``info["beat_fallback"]``.

Length rules (applied by :func:`apply_length_rule`, used when building datasets):
``"crop"`` cuts clips longer than ``clip_seconds`` to their central ``clip_seconds`` and keeps
shorter ones as they are; ``"pad"`` also zero-pads shorter ones at the end to
``clip_seconds``; ``"keep"`` keeps every clip at its full length. Whatever the rule, audio
shorter than ``min_seconds`` (default 5 s) is rejected as too short.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Any

import audioread.exceptions
import librosa
import numba
import numpy as np

from musicaffect.errors import ConfigError, DataError
from musicaffect.features.params import LENGTH_RULES, FeatureParams

log = logging.getLogger(__name__)

#: the dataset's recipe: the defaults of every function below (one owner: FeatureParams)
_P = FeatureParams

#: bins per octave of the CQT behind ``chroma_cqt`` (librosa's default)
_CQT_BINS_PER_OCTAVE = 36


# ---------------------------------------------------------------------------------------
# loading and checking


def load_audio(path: str | os.PathLike, *, sr: int = _P.sr, duration: float | None = None,
               offset: float = 0.0) -> tuple[np.ndarray, int]:
    """Load an audio file as a mono signal at ``sr``.

    Any format soundfile reads (wav, flac, ogg, mp3 with libsndfile >= 1.1) or, failing that,
    audioread (needs ffmpeg or GStreamer).

    Parameters
    ----------
    path : str or os.PathLike
    sr : int > 0
        Target sampling rate; the signal is resampled (soxr_hq) when the file differs.
    duration : float or None
        Seconds to read (None: to the end).
    offset : float
        Seconds to skip at the start.

    Returns
    -------
    y : np.ndarray [shape=(n,), dtype=float32]
    sr : int

    Raises
    ------
    DataError
        The file does not exist, cannot be decoded, or holds no samples.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("audio file does not exist: check the path", path=path)
    try:
        with warnings.catch_warnings():
            # librosa warns before falling back to audioread; a failure is reported below
            warnings.simplefilter("ignore", UserWarning)
            warnings.simplefilter("ignore", FutureWarning)
            y, sr_out = librosa.load(path, sr=sr, mono=True, offset=offset, duration=duration)
    except librosa.util.exceptions.ParameterError as err:
        # librosa checks the samples while mixing to mono or resampling
        what = ("audio holds NaN or infinite samples: re-encode or remove it"
                if "finite" in str(err) else f"cannot read audio ({err}): convert it to "
                "wav/flac or remove it")
        raise DataError(what, path=path) from err
    except (RuntimeError, OSError, EOFError, ValueError, MemoryError,
            audioread.exceptions.DecodeError) as err:
        raise DataError(f"cannot decode audio ({type(err).__name__}: {err}): the file is "
                        "corrupt or in a format neither libsndfile nor ffmpeg reads; convert "
                        "it to wav/flac or remove it", path=path) from err
    if y.size == 0:
        raise DataError("audio file holds no samples (zero length): remove it", path=path)
    return y.astype(np.float32, copy=False), int(sr_out)


def check_audio(y: np.ndarray, *, sr: int, params: FeatureParams | None = None,
                path: str | os.PathLike | None = None) -> None:
    """Reject audio that cannot give meaningful features.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
    sr : int
    params : FeatureParams, optional
        ``min_seconds`` and ``silence_threshold`` are used.
    path : str or os.PathLike, optional
        Named in the error message.

    Raises
    ------
    DataError
        Empty, not 1-D, non-finite, silent (peak below ``silence_threshold``) or shorter
        than ``min_seconds``.
    """
    params = params or FeatureParams()
    name = path if path is not None else "<audio array>"
    if y.ndim != 1:
        raise DataError(f"audio has shape {y.shape}, expected a mono signal (n,)", path=name)
    if y.size == 0:
        raise DataError("audio holds no samples (zero length): remove it", path=name)
    if not np.all(np.isfinite(y)):
        raise DataError("audio holds NaN or infinite samples: re-encode or remove it",
                        path=name)
    peak = float(np.max(np.abs(y)))
    if peak < params.silence_threshold:
        raise DataError(f"audio is silent (peak amplitude {peak:.2g} < "
                        f"{params.silence_threshold:g}): remove it", path=name)
    seconds = y.size / sr
    if seconds < params.min_seconds:
        raise DataError(f"audio is too short ({seconds:.2f} s < {params.min_seconds:g} s "
                        "minimum): remove it or lower min_seconds", path=name)


def apply_length_rule(y: np.ndarray, *, sr: int, clip_seconds: float = 30.0,
                      rule: str = "crop") -> np.ndarray:
    """Bring a signal to the dataset's clip length by a stated rule.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
    sr : int
    clip_seconds : float
    rule : {"crop", "pad", "keep"}
        ``"crop"``: longer signals are cut to their central ``clip_seconds``, shorter ones
        kept; ``"pad"``: the same, and shorter ones zero-padded at the end; ``"keep"``:
        unchanged.

    Returns
    -------
    y : np.ndarray [shape=(m,)]
    """
    if rule not in LENGTH_RULES:
        raise ConfigError(f"unknown length rule {rule!r}: use one of {', '.join(LENGTH_RULES)}")
    if rule == "keep":
        return y
    n = int(round(clip_seconds * sr))
    if y.size > n:
        start = (y.size - n) // 2
        return y[start:start + n]
    if rule == "pad" and y.size < n:
        return np.pad(y, (0, n - y.size))
    return y


# ---------------------------------------------------------------------------------------
# single transforms (each callable alone, with librosa's vocabulary)


def mel_db(y: np.ndarray | None = None, *, sr: int = _P.sr, S: np.ndarray | None = None,
           n_fft: int = _P.n_fft, hop_length: int = _P.hop_length, n_mels: int = _P.n_mels,
           top_db: float = _P.top_db) -> np.ndarray:
    """Log-mel spectrogram in dB relative to the clip's maximum.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)] or None
    sr : int
    S : np.ndarray [shape=(1 + n_fft // 2, t)] or None
        Power spectrogram ``|STFT|**2``, used instead of ``y`` when given.
    n_fft, hop_length, n_mels : int
    top_db : float
        Floor below the maximum (dB).

    Returns
    -------
    M : np.ndarray [shape=(n_mels, t), dtype=float32]
        Values in [-top_db, 0], maximum 0.
    """
    mel = librosa.feature.melspectrogram(y=y, sr=sr, S=S, n_fft=n_fft, hop_length=hop_length,
                                         n_mels=n_mels, power=2.0)
    return librosa.power_to_db(mel, ref=np.max, top_db=top_db).astype(np.float32, copy=False)


def chroma(y: np.ndarray, *, sr: int = _P.sr, hop_length: int = _P.hop_length,
           n_chroma: int = _P.n_chroma, tuning: float | None = None) -> np.ndarray:
    """Chromagram from the constant-Q transform (``librosa.feature.chroma_cqt``).

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
    sr, hop_length, n_chroma : int
    tuning : float or None
        Deviation from A440 in fractions of a CQT bin; estimated from ``y`` when None.

    Returns
    -------
    C : np.ndarray [shape=(n_chroma, t), dtype=float32]
        Values in [0, 1], each frame's maximum 1 (0 for silent frames).
    """
    c = librosa.feature.chroma_cqt(y=y, sr=sr, hop_length=hop_length, n_chroma=n_chroma,
                                   tuning=tuning)
    return c.astype(np.float32, copy=False)


def stack(M: np.ndarray, C: np.ndarray) -> np.ndarray:
    """Fuse mel rows over chroma rows, trimming both to the shorter length.

    Parameters
    ----------
    M : np.ndarray [shape=(n_mels, t1)]
    C : np.ndarray [shape=(n_chroma, t2)]

    Returns
    -------
    X : np.ndarray [shape=(n_mels + n_chroma, min(t1, t2)), dtype=float32]
    """
    t = min(M.shape[1], C.shape[1])
    return np.concatenate([M[:, :t], C[:, :t]], axis=0).astype(np.float32, copy=False)


def fused(y: np.ndarray, *, sr: int = _P.sr, n_fft: int = _P.n_fft, hop_length: int = _P.hop_length,
          n_mels: int = _P.n_mels, n_chroma: int = _P.n_chroma) -> np.ndarray:
    """The dataset's fused features: log-mel rows over chroma rows (one shared STFT).

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
    sr, n_fft, hop_length, n_mels, n_chroma : int

    Returns
    -------
    X : np.ndarray [shape=(n_mels + n_chroma, t), dtype=float32]
    """
    D = _stft(y, n_fft=n_fft, hop_length=hop_length)
    return _fused_from_stft(y, D, sr=sr, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels,
                            n_chroma=n_chroma, top_db=_P.top_db)


def percussive_beats(y: np.ndarray, *, sr: int = _P.sr, n_fft: int = _P.n_fft,
                     hop_length: int = _P.hop_length, D: np.ndarray | None = None
                     ) -> tuple[np.ndarray, float]:
    """Beat frames tracked on the percussive part of ``y`` (HPSS, then ``beat_track``).

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
    sr, n_fft, hop_length : int
    D : np.ndarray [shape=(1 + n_fft // 2, t), dtype=complex] or None
        STFT of ``y`` (computed when None); HPSS reuses it.

    Returns
    -------
    beats : np.ndarray [shape=(n_beats,), dtype=int]
        Frame indices (may be empty).
    tempo : float
        Estimated tempo in BPM (0 when none was found).
    """
    if D is None:
        D = _stft(y, n_fft=n_fft, hop_length=hop_length)
    D_perc = hpss_percussive(D)
    y_perc = librosa.istft(D_perc, n_fft=n_fft, hop_length=hop_length, dtype=y.dtype,
                           length=y.shape[-1])
    tempo, beats = librosa.beat.beat_track(y=y_perc, sr=sr, hop_length=hop_length)
    return np.asarray(beats, dtype=int), float(np.atleast_1d(tempo)[0])


def hpss_percussive(D: np.ndarray, *, kernel_size: int = 31) -> np.ndarray:
    """Percussive part of an STFT, as ``librosa.decompose.hpss(D)[1]`` computes it.

    The same median filters (reflect mode) and soft mask, with an exact running median
    (numba) in place of ``scipy.ndimage.median_filter`` (several times faster).

    Parameters
    ----------
    D : np.ndarray [shape=(1 + n_fft // 2, t), dtype=complex]
    kernel_size : int
        Median filter length, across time (harmonic) and across frequency (percussive).

    Returns
    -------
    D_perc : np.ndarray [shape=(1 + n_fft // 2, t), dtype=complex]
    """
    S, phase = librosa.magphase(D)  # (f, t) magnitude and unit phase
    harm = median_filter_rows(S, kernel_size=kernel_size)  # along time
    perc = median_filter_rows(S.T, kernel_size=kernel_size).T  # along frequency
    mask = librosa.util.softmask(perc, harm * 1.0, power=2.0, split_zeros=True)
    return (S * mask) * phase


def median_filter_rows(X: np.ndarray, *, kernel_size: int) -> np.ndarray:
    """Median over a window of ``kernel_size`` along each row, edges reflected.

    Equal to ``scipy.ndimage.median_filter(X, size=(1, kernel_size), mode="reflect")``.

    Parameters
    ----------
    X : np.ndarray [shape=(r, n)], finite
    kernel_size : int > 0

    Returns
    -------
    M : np.ndarray [shape=(r, n)], same dtype
    """
    return _running_median(np.ascontiguousarray(X), int(kernel_size))


@numba.njit(cache=True, nogil=True)
def _reflect(i: int, n: int) -> int:
    m = i % (2 * n)  # "reflect" (d c b a | a b c d | d c b a) is periodic in 2n
    return m if m < n else 2 * n - 1 - m


@numba.njit(cache=True, nogil=True)
def _running_median(X, k):  # pragma: no cover (compiled)
    R, N = X.shape
    r = k // 2
    out = np.empty_like(X)
    buf = np.empty(k, dtype=X.dtype)  # the window, kept sorted
    for i in range(R):
        for j in range(k):
            buf[j] = X[i, _reflect(j - r, N)]
        buf.sort()
        out[i, 0] = buf[r]
        for t in range(1, N):
            old = X[i, _reflect(t - 1 - r, N)]
            new = X[i, _reflect(t + r, N)]
            if old != new:  # replace old by new, then move it to its sorted place
                p = np.searchsorted(buf, old)
                buf[p] = new
                while p > 0 and buf[p - 1] > buf[p]:
                    buf[p - 1], buf[p] = buf[p], buf[p - 1]
                    p -= 1
                while p < k - 1 and buf[p + 1] < buf[p]:
                    buf[p + 1], buf[p] = buf[p], buf[p + 1]
                    p += 1
            out[i, t] = buf[r]
    return out


def fallback_beats(n_frames: int, *, sr: int = _P.sr, hop_length: int = _P.hop_length,
                   bpm: float = _P.fallback_bpm) -> np.ndarray:
    """Fixed beat frames at ``bpm`` (the no-beat rule): ``round(k * 60 / bpm * sr / hop)``.

    Returns
    -------
    beats : np.ndarray [shape=(n_beats,), dtype=int]
        Frames strictly inside (0, n_frames).
    """
    step = 60.0 / bpm * sr / hop_length
    return np.unique(np.round(np.arange(step, n_frames, step)).astype(int))


def beat_sync(features: np.ndarray, y: np.ndarray, *, sr: int = _P.sr, n_fft: int = _P.n_fft,
              hop_length: int = _P.hop_length, fallback_bpm: float = _P.fallback_bpm,
              min_beats: int = _P.min_beats, beats: np.ndarray | None = None) -> np.ndarray:
    """Median of the feature frames between beats (the dataset's beat-synchronous version).

    Parameters
    ----------
    features : np.ndarray [shape=(F, t)]
    y : np.ndarray [shape=(n,)]
        The audio the features were computed from (for beat tracking).
    sr, n_fft, hop_length : int
    fallback_bpm : float
        Tempo of the fixed segments used when fewer than ``min_beats`` beats are found
        (logged as a warning; :func:`extract` reports it in ``info["beat_fallback"]``).
    min_beats : int
    beats : np.ndarray or None
        Beat frames to use instead of tracking them.

    Returns
    -------
    B : np.ndarray [shape=(F, n_segments)]
        ``n_segments`` is the number of beats + 1 (segments before the first and after the
        last beat), fewer when a beat falls on frame 0 or at the end.
    """
    if beats is None:
        beats, _ = percussive_beats(y, sr=sr, n_fft=n_fft, hop_length=hop_length)
    if len(beats) < min_beats:
        log.warning("only %d beats found: using fixed segments at %g BPM", len(beats),
                    fallback_bpm)
        beats = fallback_beats(features.shape[1], sr=sr, hop_length=hop_length,
                               bpm=fallback_bpm)
    return librosa.util.sync(features, beats, aggregate=np.median)


# ---------------------------------------------------------------------------------------
# everything at once


def extract(y: np.ndarray, *, sr: int, params: FeatureParams | None = None,
            path: str | os.PathLike | None = None) -> dict[str, Any]:
    """All of a clip's features, each transform computed once.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
        Mono audio at ``params.sr`` (load it with :func:`load_audio`).
    sr : int
        Must equal ``params.sr``.
    params : FeatureParams, optional
        The dataset's parameters by default.
    path : str or os.PathLike, optional
        Named in error messages.

    Returns
    -------
    out : dict
        ``"full"``: np.ndarray [shape=(n_mels + n_chroma, t), dtype=float32];
        ``"beat"``: np.ndarray [shape=(n_mels + n_chroma, b), dtype=float32];
        ``"info"``: dict with ``seconds``, ``n_frames``, ``n_beats``, ``tempo``,
        ``beat_fallback`` (True when the no-beat rule was used).

    Raises
    ------
    DataError
        Silent, empty, non-finite or too-short audio (see :func:`check_audio`).
    """
    params = params or FeatureParams()
    if sr != params.sr:
        raise ConfigError(f"audio is at {sr} Hz but the features need {params.sr} Hz: "
                          f"load it with load_audio(path, sr={params.sr})")
    check_audio(y, sr=sr, params=params, path=path)
    y = y.astype(np.float32, copy=False)
    D = _stft(y, n_fft=params.n_fft, hop_length=params.hop_length)  # (1 + n_fft/2, t)
    full = _fused_from_stft(y, D, sr=sr, n_fft=params.n_fft, hop_length=params.hop_length,
                            n_mels=params.n_mels, n_chroma=params.n_chroma,
                            top_db=params.top_db)  # (140, t)
    beats, tempo = percussive_beats(y, sr=sr, n_fft=params.n_fft,
                                    hop_length=params.hop_length, D=D)
    fallback = len(beats) < params.min_beats
    if fallback:
        log.warning("%s: only %d beats found: beat-synchronous features use fixed segments "
                    "at %g BPM", path or "audio", len(beats), params.fallback_bpm)
        beats = fallback_beats(full.shape[1], sr=sr, hop_length=params.hop_length,
                               bpm=params.fallback_bpm)
    beat = librosa.util.sync(full, beats, aggregate=np.median)  # (140, n_segments)
    dtype = np.dtype(params.dtype)
    info = {"seconds": y.size / sr, "n_frames": int(full.shape[1]),
            "n_beats": int(len(beats)), "tempo": tempo, "beat_fallback": bool(fallback)}
    return {"full": full.astype(dtype, copy=False), "beat": beat.astype(dtype, copy=False),
            "info": info}


def extract_file(path: str | os.PathLike, *, params: FeatureParams | None = None,
                 apply_length: bool = True, offset: float = 0.0,
                 duration: float | None = None) -> dict[str, Any]:
    """Load an audio file, apply the length rule and :func:`extract` its features.

    Parameters
    ----------
    path : str or os.PathLike
    params : FeatureParams, optional
    apply_length : bool
        Apply ``params.length_rule`` (False: use the whole file, e.g. for prediction).
    offset, duration : float
        Read only ``duration`` seconds (None: to the end) from ``offset`` (a segment).

    Returns
    -------
    out : dict
        As :func:`extract`; ``info`` also holds ``source_seconds`` (before the length rule).
    """
    params = params or FeatureParams()
    y, sr = load_audio(path, sr=params.sr, offset=offset, duration=duration)
    source_seconds = y.size / sr
    check_audio(y, sr=sr, params=params, path=path)
    if apply_length:
        y = apply_length_rule(y, sr=sr, clip_seconds=params.clip_seconds,
                              rule=params.length_rule)
    out = extract(y, sr=sr, params=params, path=path)
    out["info"]["source_seconds"] = source_seconds
    return out


def warm_up() -> None:
    """Import the lazily loaded librosa modules the features use (librosa.beat compiles its
    numba functions on import, which takes seconds); call before forking workers."""
    for name in ("beat", "decompose", "feature", "onset", "util"):
        getattr(librosa, name)
    median_filter_rows(np.zeros((2, 3), np.float32), kernel_size=3)


def _stft(y: np.ndarray, *, n_fft: int, hop_length: int) -> np.ndarray:
    """Complex STFT as librosa's feature functions compute it (hann, centred, zero pad)."""
    return librosa.stft(y, n_fft=n_fft, hop_length=hop_length)


def _fused_from_stft(y: np.ndarray, D: np.ndarray, *, sr: int, n_fft: int, hop_length: int,
                     n_mels: int, n_chroma: int, top_db: float) -> np.ndarray:
    mag = np.abs(D)  # (1 + n_fft/2, t)
    M = mel_db(S=mag**2, sr=sr, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels,
               top_db=top_db)  # (n_mels, t)
    # chroma_cqt would estimate the tuning from its own STFT of y: reuse this one instead
    tuning = librosa.estimate_tuning(S=mag, sr=sr, n_fft=n_fft,
                                     bins_per_octave=_CQT_BINS_PER_OCTAVE)
    C = chroma(y, sr=sr, hop_length=hop_length, n_chroma=n_chroma, tuning=tuning)  # (12, t)
    return stack(M, C)
