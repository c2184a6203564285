"""Features from audio, computed as the dataset's clips were made, and datasets built from
folders of audio files (:func:`build_dataset`)."""

from __future__ import annotations

import importlib
from typing import Any

from musicaffect.features.params import LENGTH_RULES, FeatureParams

#: public name -> submodule that defines it (imported on first use: librosa is heavy)
_LAZY = {
    **dict.fromkeys(("apply_length_rule", "beat_sync", "check_audio", "chroma", "extract",
                     "extract_file", "fallback_beats", "fused", "hpss_percussive", "load_audio",
                     "median_filter_rows", "mel_db", "percussive_beats", "stack", "warm_up"),
                    "audio"),
    **dict.fromkeys(("BuildReport", "build_dataset", "read_label_table", "read_labels"),
                    "build"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"musicaffect.features.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "LENGTH_RULES", "BuildReport", "FeatureParams", "apply_length_rule",
    "beat_sync", "build_dataset", "check_audio", "chroma", "extract", "extract_file",
    "fallback_beats", "fused", "hpss_percussive", "load_audio", "median_filter_rows", "mel_db",
    "percussive_beats", "read_label_table", "read_labels", "stack", "warm_up",
]
