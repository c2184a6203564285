"""Features from audio, computed as the dataset's clips were made, and datasets built from
folders of audio files (:func:`build_dataset`)."""

from __future__ import annotations

from musicaffect.features.audio import (
    LENGTH_RULES,
    FeatureParams,
    apply_length_rule,
    beat_sync,
    check_audio,
    chroma,
    extract,
    extract_file,
    fallback_beats,
    fused,
    hpss_percussive,
    load_audio,
    median_filter_rows,
    mel_db,
    percussive_beats,
    stack,
    warm_up,
)
from musicaffect.features.build import (
    BuildReport,
    assign_splits,
    build_dataset,
    read_label_table,
    read_labels,
)

__all__ = [
    "LENGTH_RULES", "BuildReport", "FeatureParams", "apply_length_rule", "assign_splits",
    "beat_sync", "build_dataset", "check_audio", "chroma", "extract", "extract_file",
    "fallback_beats", "fused", "hpss_percussive", "load_audio", "median_filter_rows", "mel_db",
    "percussive_beats", "read_label_table", "read_labels", "stack", "warm_up",
]
