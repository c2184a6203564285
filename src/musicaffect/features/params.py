"""The parameters that decide the features (the dataset's recipe), in one place.

:class:`FeatureParams` owns ``sr``, ``n_fft``, ``hop_length``, ``n_mels`` ... : the feature
functions (:mod:`musicaffect.features.audio`) take their defaults from it, ``build-dataset``
writes it as ``feature_params.json`` next to its output, and every checkpoint stores the
parameters its data was made with, so ``predict`` computes the same features. This module
imports nothing heavy (no librosa), so plots and the CLI can read it cheaply.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from musicaffect.errors import ConfigError, DataError

#: accepted values of ``FeatureParams.length_rule``
LENGTH_RULES: tuple[str, ...] = ("crop", "pad", "keep")

#: the file beside a built dataset (``build-dataset``) that records its feature parameters
PARAMS_FILE = "feature_params.json"

@dataclass(frozen=True)
class FeatureParams:
    """Every parameter that decides the features; written as JSON next to any output.

    The defaults are the dataset's. ``clip_seconds`` and ``length_rule`` are used when
    building datasets (:func:`apply_length_rule`); ``min_seconds`` and ``silence_threshold``
    (peak absolute amplitude, 1e-4 = -80 dBFS) decide which audio is rejected.
    """

    sr: int = 22050
    n_fft: int = 2048
    hop_length: int = 512
    n_mels: int = 128
    n_chroma: int = 12
    power: float = 2.0
    top_db: float = 80.0
    fallback_bpm: float = 120.0
    min_beats: int = 2
    min_seconds: float = 5.0
    silence_threshold: float = 1e-4
    clip_seconds: float = 30.0
    length_rule: str = "crop"
    dtype: str = "float32"

    def __post_init__(self) -> None:
        if self.length_rule not in LENGTH_RULES:
            raise ConfigError(f"unknown length rule {self.length_rule!r}: use one of "
                              f"{', '.join(LENGTH_RULES)}")
        for name in ("sr", "n_fft", "hop_length", "n_mels", "fallback_bpm", "clip_seconds"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"feature parameter {name} must be > 0, "
                                  f"got {getattr(self, name)!r}")
        if self.min_seconds > self.clip_seconds:
            raise ConfigError(f"min_seconds ({self.min_seconds}) is longer than clip_seconds "
                              f"({self.clip_seconds}): lower min_seconds")

    @property
    def n_features(self) -> int:
        """Rows of the fused array: ``n_mels + n_chroma`` (140)."""
        return self.n_mels + self.n_chroma

    def to_dict(self) -> dict[str, Any]:
        """The parameters as a plain dict (JSON-ready)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FeatureParams:
        """Rebuild from :meth:`to_dict` output; extra keys (e.g. ``"librosa"``) are ignored."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def write(self, path: str | os.PathLike) -> Path:
        """Write the parameters, the rules and the librosa version as JSON (atomically)."""
        import librosa

        from musicaffect.io import atomic_write

        doc = {**self.to_dict(), "librosa": librosa.__version__, "rules": _rules_text(self)}
        return atomic_write(path, json.dumps(doc, indent=2) + "\n")

    @classmethod
    def read(cls, path: str | os.PathLike) -> FeatureParams:
        """Read a file written by :meth:`write`; raises DataError if it is unreadable."""
        path = Path(path)
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise DataError(f"cannot read feature parameters ({err}): delete the file to "
                            "rebuild from scratch", path=path) from err
        if not isinstance(doc, dict):
            raise DataError("feature parameters are not a JSON object: delete the file to "
                            "rebuild from scratch", path=path)
        return cls.from_dict(doc)


def _rules_text(params: FeatureParams) -> dict[str, str]:
    frames = 60.0 / params.fallback_bpm * params.sr / params.hop_length
    length = {
        "crop": f"clips longer than {params.clip_seconds:g} s are cut to their central "
                f"{params.clip_seconds:g} s; shorter clips are kept as they are",
        "pad": f"clips longer than {params.clip_seconds:g} s are cut to their central "
               f"{params.clip_seconds:g} s; shorter clips are zero-padded at the end",
        "keep": "every clip is kept at its full length",
    }[params.length_rule]
    return {
        "length": f"{length}; audio shorter than {params.min_seconds:g} s is rejected",
        "silence": f"audio whose peak absolute amplitude is below {params.silence_threshold:g} "
                   "is rejected as silent",
        "no_beats": f"when fewer than {params.min_beats} beats are found, the beat-synchronous "
                    f"version uses fixed segments of one beat at {params.fallback_bpm:g} BPM "
                    f"(every {frames:.2f} frames)",
        "mel": "power spectrogram (power 2) -> mel filterbank -> power_to_db(ref=np.max, "
               f"top_db={params.top_db:g})",
        "chroma": "librosa.feature.chroma_cqt (CQT magnitude, 36 bins per octave, 7 octaves "
                  "from C1, infinity-norm per frame)",
        "beat": "HPSS of the STFT (kernel 31, power 2, margin 1), beat_track on the percussive signal, "
                "librosa.util.sync(fused, beats, aggregate=np.median)",
    }


def root_feature_params(root: str | os.PathLike) -> FeatureParams:
    """The parameters a data root's features were made with: its ``feature_params.json``
    when it has one (``build-dataset`` writes it), else the dataset's documented recipe
    (``FeatureParams()``: the Kaggle data and the synthetic sample)."""
    path = Path(root) / PARAMS_FILE
    return FeatureParams.read(path) if path.is_file() else FeatureParams()


def checkpoint_feature_params(ckpt: dict | None) -> FeatureParams:
    """The feature parameters a checkpoint (deep ``.pt`` dict or classical JSON) was trained
    with (key ``feature_params``); checkpoints written before the key existed get the
    dataset's recipe, which is what their data was made with."""
    d = (ckpt or {}).get("feature_params")
    return FeatureParams.from_dict(d) if isinstance(d, dict) else FeatureParams()


#: the file beside a root's embedding view that records how it was made
EMBED_PARAMS_FILE = "embed_params.json"
#: the pretrained musicnn models of the musicnn 0.1.0 wheel that the port reads
MUSICNN_MODELS: tuple[str, ...] = ("MSD_musicnn", "MTT_musicnn")


@dataclass(frozen=True)
class MusicnnParams:
    """The parameters of musicnn's input (Pons & Serra 2019; musicnn 0.1.0's extractor).

    ``log10(1 + log_scale * mel_power)`` of a 96-band mel spectrogram of 16 kHz audio
    (n_fft 512, hop 256: 16 ms frames), computed in float32; cut into patches of
    ``patch_frames`` frames (187 = 3 s, what the models were trained on) every
    ``patch_hop`` frames (187: no overlap, the original's default); frames after the last
    whole patch are dropped, as in the original. A clip shorter than one patch is one
    shorter patch (the network takes any length; the original fails on it).
    """

    sr: int = 16000
    n_fft: int = 512
    hop_length: int = 256
    n_mels: int = 96
    log_scale: float = 10000.0
    patch_frames: int = 187
    patch_hop: int = 187
    model: str = "MSD_musicnn"
    dtype: str = "float32"

    def __post_init__(self) -> None:
        if self.model not in MUSICNN_MODELS:
            raise ConfigError(f"unknown musicnn model {self.model!r}: use one of "
                              f"{', '.join(MUSICNN_MODELS)}")
        for name in ("sr", "n_fft", "hop_length", "n_mels", "log_scale", "patch_frames",
                     "patch_hop"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"musicnn parameter {name} must be > 0, "
                                  f"got {getattr(self, name)!r}")

    @property
    def frame_seconds(self) -> float:
        """Seconds between two input frames (0.016)."""
        return self.hop_length / self.sr

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MusicnnParams:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})
