"""musicnn's input: the 16 kHz log-mel and its patches, from audio or through the mel adapter.

From audio (:func:`log_mel`), exactly the librosa calls of musicnn 0.1.0's extractor::

    librosa.feature.melspectrogram(y=y16k, sr=16000, hop_length=256, n_fft=512, n_mels=96).T
    log10(1 + 10000 * mel)

except that the mel power stays float32 (the original casts it to float16 before the
multiplication, so loud frames overflow to inf).

From the Kaggle layout's 128-band dB mel rows (:func:`adapt_mel_db`, no audio):
dB -> power -> the pseudo-inverse of the 128-band filterbank, clipped at 0 (a linear
spectrum on the 22.05 kHz / n_fft 2048 bins) -> linear interpolation onto the 16 kHz /
n_fft 512 bins -> musicnn's 96-band filterbank -> linear interpolation in time (hop
23.2 ms -> 16 ms) -> times a gain -> the same log. ``power_to_db(ref=max)`` removed each
clip's level, so the gain cannot be known: choose it on the data (store a few, pick by
inner cross-validation), or use ``gain="clip"`` (:func:`clip_level_gain`), which sets each
clip's median level to that of a reference signal.
"""

from __future__ import annotations

import functools

import numpy as np

from musicaffect.errors import ConfigError, DataError
from musicaffect.features.params import FeatureParams, MusicnnParams

#: the reference of ``gain="clip"``: white noise at this RMS (-20 dBFS) through musicnn's
#: mel gives the median mel power each clip's adapted spectrum is scaled to
CLIP_LEVEL_RMS = 0.1
#: points per destination bin at which the adapter samples the source spectrum
_SUBBINS = 16


def log_mel(y: np.ndarray, *, params: MusicnnParams | None = None) -> np.ndarray:
    """musicnn's input from a 16 kHz signal.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
        Mono audio at ``params.sr`` (16 kHz).
    params : MusicnnParams, optional

    Returns
    -------
    np.ndarray [shape=(T, n_mels), dtype=float32]
        ``log10(1 + log_scale * mel_power)``, time-major as the network reads it.
    """
    import librosa

    p = params or MusicnnParams()
    S = librosa.feature.melspectrogram(y=np.asarray(y, dtype=np.float32), sr=p.sr,
                                       hop_length=p.hop_length, n_fft=p.n_fft,
                                       n_mels=p.n_mels)                   # (n_mels, T)
    return log_compress(S.T, params=p)


def log_compress(power: np.ndarray, *, params: MusicnnParams | None = None) -> np.ndarray:
    """``log10(1 + log_scale * power)`` in float32 (any shape)."""
    p = params or MusicnnParams()
    power = np.asarray(power, dtype=np.float32)
    return np.log10(np.float32(1.0) + np.float32(p.log_scale) * power).astype(np.float32)


def patch_starts(n_frames: int, *, params: MusicnnParams | None = None) -> np.ndarray:
    """First frames of the patches of a ``n_frames``-long input: every ``patch_hop`` frames
    while a whole patch fits (the original's rule); ``[0]`` when none fits."""
    p = params or MusicnnParams()
    starts = np.arange(0, max(n_frames - p.patch_frames + 1, 0), p.patch_hop)
    return starts if starts.size else np.zeros(1, dtype=np.int64)


def patches(M: np.ndarray, *, params: MusicnnParams | None = None) -> np.ndarray:
    """Cut an input into patches.

    Parameters
    ----------
    M : np.ndarray [shape=(T, n_mels)]

    Returns
    -------
    np.ndarray [shape=(P, L, n_mels)]
        ``L = patch_frames``, or ``T`` when the input is shorter than one patch.
    """
    p = params or MusicnnParams()
    if M.ndim != 2 or M.shape[1] != p.n_mels or M.shape[0] < 1:
        raise ValueError(f"expected a (T, {p.n_mels}) input with T >= 1, got {M.shape}")
    L = min(p.patch_frames, M.shape[0])
    return np.stack([M[s:s + L] for s in patch_starts(M.shape[0], params=p)])


# ---------------------------------------------------------------------------------------
# the mel adapter


@functools.lru_cache(maxsize=8)
def _adapter_factors(src_sr: int, src_n_fft: int, src_n_mels: int, dst_sr: int,
                     dst_n_fft: int, dst_n_mels: int) -> tuple[np.ndarray, np.ndarray]:
    """``(pinv, dst)``: the pseudo-inverse of the source filterbank (src bins, src_n_mels)
    and the destination filterbank composed with the bin interpolation
    (dst_n_mels, src bins)."""
    import librosa

    src_fb = librosa.filters.mel(sr=src_sr, n_fft=src_n_fft, n_mels=src_n_mels)
    pinv = np.linalg.pinv(src_fb.astype(np.float64))                # (src_bins, src_mels)
    src_f = librosa.fft_frequencies(sr=src_sr, n_fft=src_n_fft)      # (src_bins,)
    dst_f = librosa.fft_frequencies(sr=dst_sr, n_fft=dst_n_fft)      # (dst_bins,)
    # each destination bin: the mean of the linearly interpolated source spectrum over the
    # bin's width (sampled at _SUBBINS points), so narrow peaks are integrated, not missed
    width = dst_f[1] - dst_f[0]
    offsets = (np.arange(_SUBBINS) + 0.5) / _SUBBINS - 0.5
    interp = np.zeros((dst_f.size, src_f.size))                      # (dst_bins, src_bins)
    rows = np.arange(dst_f.size)
    for off in offsets:
        f = np.clip(dst_f + off * width, src_f[0], src_f[-1])
        idx = np.clip(np.searchsorted(src_f, f, side="right") - 1, 0, src_f.size - 2)
        w = (f - src_f[idx]) / (src_f[idx + 1] - src_f[idx])
        np.add.at(interp, (rows, idx), (1.0 - w) / _SUBBINS)
        np.add.at(interp, (rows, idx + 1), w / _SUBBINS)
    dst_fb = librosa.filters.mel(sr=dst_sr, n_fft=dst_n_fft, n_mels=dst_n_mels)
    return pinv, dst_fb.astype(np.float64) @ interp                  # (dst_mels, src_bins)


def adapt_power(mel_db: np.ndarray, *, source: FeatureParams | None = None,
                params: MusicnnParams | None = None) -> np.ndarray:
    """The adapter up to the gain: a 128-band dB mel -> musicnn's 96-band mel power.

    Parameters
    ----------
    mel_db : np.ndarray [shape=(n_mels_src, T_src)]
        The Kaggle layout's mel rows (``power_to_db(ref=max)``: peak 0 dB).
    source : FeatureParams, optional
        How ``mel_db`` was made (default: the dataset's recipe, 22.05 kHz, n_fft 2048,
        hop 512, 128 bands).

    Returns
    -------
    np.ndarray [shape=(T, n_mels), dtype=float32]
        Mel power on musicnn's frames (``T = 1 + floor(t_last / 16 ms)``), before the gain.
    """
    src = source or FeatureParams()
    p = params or MusicnnParams()
    mel_db = np.asarray(mel_db, dtype=np.float64)
    if mel_db.ndim != 2 or mel_db.shape[0] != src.n_mels or mel_db.shape[1] < 1:
        raise DataError(f"expected {src.n_mels} mel rows in dB, got an array of shape "
                        f"{mel_db.shape}")
    pinv, dst = _adapter_factors(src.sr, src.n_fft, src.n_mels, p.sr, p.n_fft, p.n_mels)
    power = 10.0 ** (mel_db / 10.0)                                   # (src_mels, Ts)
    linear = np.clip(pinv @ power, 0.0, None)                         # (src_bins, Ts)
    mel96 = dst @ linear                                              # (n_mels, Ts)
    t_src = np.arange(mel_db.shape[1]) * (src.hop_length / src.sr)
    n_out = int(np.floor(t_src[-1] / p.frame_seconds + 1e-9)) + 1
    t_dst = np.arange(n_out) * p.frame_seconds
    pos = np.interp(t_dst, t_src, np.arange(t_src.size))              # fractional src frame
    i0 = np.clip(np.floor(pos).astype(int), 0, t_src.size - 1)
    i1 = np.minimum(i0 + 1, t_src.size - 1)
    w = (pos - i0)[None, :]
    out = mel96[:, i0] * (1.0 - w) + mel96[:, i1] * w                 # (n_mels, T)
    return np.clip(out, 0.0, None).T.astype(np.float32)


@functools.lru_cache(maxsize=4)
def _reference_median(params: MusicnnParams) -> float:
    rng = np.random.default_rng(0)
    y = (CLIP_LEVEL_RMS * rng.standard_normal(10 * params.sr)).astype(np.float32)
    import librosa

    S = librosa.feature.melspectrogram(y=y, sr=params.sr, hop_length=params.hop_length,
                                       n_fft=params.n_fft, n_mels=params.n_mels)
    return float(np.median(S))


def clip_level_gain(power: np.ndarray, *, params: MusicnnParams | None = None) -> float:
    """The per-clip level normalisation: the gain that brings the median of an adapted
    mel power to the median of white noise at -20 dBFS RMS through musicnn's mel."""
    p = params or MusicnnParams()
    med = float(np.median(power))
    return _reference_median(p) / med if med > 0 else 1.0


def adapt_mel_db(mel_db: np.ndarray, *, gain: float | str = 1.0,
                 source: FeatureParams | None = None,
                 params: MusicnnParams | None = None) -> np.ndarray:
    """musicnn's input from the Kaggle layout's 128-band dB mel rows (the mel adapter).

    Parameters
    ----------
    mel_db : np.ndarray [shape=(128, T_src)]
    gain : float > 0 or "clip"
        Multiplies the adapted mel power before the log; ``"clip"``: per-clip level
        normalisation (:func:`clip_level_gain`).

    Returns
    -------
    np.ndarray [shape=(T, 96), dtype=float32]
    """
    p = params or MusicnnParams()
    power = adapt_power(mel_db, source=source, params=p)
    return log_compress(power * resolve_gain(gain, power, params=p), params=p)


def resolve_gain(gain: float | str, power: np.ndarray, *,
                 params: MusicnnParams | None = None) -> float:
    """A numeric gain for an adapted power: ``gain`` itself, or the clip's level gain."""
    if isinstance(gain, str):
        if gain != "clip":
            raise ConfigError(f"unknown gain {gain!r}: give a positive number or 'clip'")
        return clip_level_gain(power, params=params)
    if not float(gain) > 0:
        raise ConfigError(f"the adapter gain must be > 0, got {gain!r}")
    return float(gain)
