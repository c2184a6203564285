"""Data exploration, lab steps 1-4: two clips' spectrograms and chromagrams (full rate and
beat-synchronous), their shapes, and the clips per class before and after the 20 -> 10
mapping."""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from musicaffect.data.arrays import load_array, select_view
from musicaffect.data.layout import (
    FOLDERS,
    ClipRecord,
    index_clips,
    is_synthetic,
    label_file_name,
)
from musicaffect.data.vocab import Vocabulary, lab_vocabulary, load_vocabulary
from musicaffect.errors import DataError
from musicaffect.evaluation.spectra import plot_class_histogram, plot_spectrogram_grid

log = logging.getLogger(__name__)


def pick_two_clips(records: list[ClipRecord], *, seed: int = 0) -> tuple[ClipRecord, ClipRecord]:
    """Two random clips with different genres (and different lab classes where possible)."""
    rng = np.random.default_rng(seed)
    if not records:
        raise DataError("no training clips to explore: the genre label file lists none")
    first = records[int(rng.integers(len(records)))]
    others = [r for r in records if r.genre10 is not None and r.genre10 != first.genre10
              and r.genre20 != first.genre20]
    if not others:
        others = [r for r in records if r.genre20 != first.genre20]
    if not others:
        raise DataError("every training clip has the same genre: cannot pick two different "
                        "genres to compare")
    return first, others[int(rng.integers(len(others)))]


def class_counts(records: list[ClipRecord], vocab: Vocabulary | None = None
                 ) -> tuple[dict[str, int], dict[str, int]]:
    """Clips per raw genre (every name of the mapping, in name order: the 20 FMA genres on
    the Kaggle data) and per class (index order: the lab's 10 by default)."""
    vocab = vocab if vocab is not None else lab_vocabulary()
    raw = Counter(r.genre20 for r in records)
    mapped = Counter(vocab.mapping.get(r.genre20) for r in records if r.genre20 is not None)
    genres = sorted(vocab.genres, key=lambda g: (g.casefold(), g))
    return ({g: raw.get(g, 0) for g in genres}, {c: mapped.get(c, 0) for c in vocab.classes})


def _summary_markdown(result: dict[str, Any]) -> str:
    lines = ["# Data exploration (lab steps 1-4)", ""]
    if result["synthetic"]:
        lines += ["**The data root holds SYNTHETIC sample data** (see its SYNTHETIC.txt): "
                  "the plots show generated arrays, not music.", ""]
    lines += [f"Data root: `{result['root']}`  ", f"Seed: {result['seed']}", "",
              "## Two random training clips with different genres", "",
              "| clip | genre | class | mel full | mel beat | chroma full | chroma beat |",
              "|---|---|---|---|---|---|---|"]
    for clip in result["clips"]:
        s = clip["shapes"]
        lines.append(f"| {clip['id']} | {clip['genre20']} | {clip['genre10'] or '(dropped)'} "
                     f"| {tuple(s['mel_full'])} | {tuple(s['mel_beat'])} "
                     f"| {tuple(s['chroma_full'])} | {tuple(s['chroma_beat'])} |")
    lines += ["", "Shapes are (features, frames); full-rate frames are 512 samples at 22050 Hz "
              "(about 23 ms), beat-synchronous frames are one per beat.", "",
              "## Figures", ""]
    for name, path in result["figures"].items():
        lines.append(f"- {name}: ![{name}]({Path(path).name})")
    before, after = result["counts_before"], result["counts_after"]
    lines += ["", "## Clips per class (training split)", "",
              f"Before the mapping: {sum(before.values())} clips in {len(before)} genres; "
              f"after: {sum(after.values())} clips in {len(after)} classes "
              f"({sum(before.values()) - sum(after.values())} clips of the dropped genres "
              "removed).", "", "| class | clips |", "|---|---|"]
    lines += [f"| {c} | {n} |" for c, n in after.items()]
    return "\n".join(lines) + "\n"


def run_explore(root: str | os.PathLike, out_dir: str | os.PathLike, *,
                seed: int = 0, dpi: int = 110) -> dict[str, Any]:
    """Run lab steps 1-4 on a data root and write figures and a summary.

    Parameters
    ----------
    root : str or os.PathLike
        Data root (Kaggle layout).
    out_dir : str or os.PathLike
        Receives ``mel_full.png``, ``mel_beat.png``, ``chroma_full.png``,
        ``chroma_beat.png``, ``class_histograms.png``, ``summary.md`` and ``summary.json``.
    seed : int
        Picks the two clips.
    dpi : int
        Resolution of the PNG files.

    Returns
    -------
    result : dict
        ``clips`` (id, genres, ``shapes`` of each view/rate as (F, T)), ``figures``
        (name -> path), ``counts_before`` (20 genres), ``counts_after`` (10 classes),
        ``summary_md``, ``summary_json``, ``synthetic``, ``root``, ``seed``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    vocab = load_vocabulary(root)
    train = index_clips(root, dataset="genre", rate="full", split="train", mapped=False,
                        vocab=vocab)
    beat = {r.id: r for r in index_clips(root, dataset="genre", rate="beat", split="train",
                                         mapped=False, vocab=vocab)}
    pair = pick_two_clips(train, seed=seed)
    clips: list[dict[str, Any]] = []
    views: dict[str, list[np.ndarray]] = {k: [] for k in ("mel_full", "mel_beat", "chroma_full",
                                                          "chroma_beat")}
    titles: list[str] = []
    for rec in pair:
        if rec.id not in beat:
            raise DataError(f"clip {rec.id} has no beat-synchronous version in the beat "
                            "folder's label file: restore it from the dataset download",
                            path=Path(root) / FOLDERS["genre", "beat"] / label_file_name("train"))
        full_a, beat_a = load_array(rec.path), load_array(beat[rec.id].path)  # (140, T)
        shapes = {}
        for rate, a in (("full", full_a), ("beat", beat_a)):
            for view in ("mel", "chroma"):
                S = select_view(a, view)  # (F, T)
                views[f"{view}_{rate}"].append(S)
                shapes[f"{view}_{rate}"] = list(S.shape)
        clips.append({"id": rec.id, "genre20": rec.genre20, "genre10": rec.genre10,
                      "path": str(rec.path), "beat_path": str(beat[rec.id].path),
                      "shapes": shapes})
        titles.append(f"clip {rec.id} - {rec.genre20}")
        log.info("clip %s (%s): mel full %s, mel beat %s, chroma full %s, chroma beat %s",
                 rec.id, rec.genre20, shapes["mel_full"], shapes["mel_beat"],
                 shapes["chroma_full"], shapes["chroma_beat"])

    figures: dict[str, str] = {}
    labels = {"mel_full": "mel spectrogram, full rate",
              "mel_beat": "mel spectrogram, beat-synchronous",
              "chroma_full": "chromagram, full rate",
              "chroma_beat": "chromagram, beat-synchronous"}
    for key, arrays in views.items():
        kind, rate = key.split("_")
        fig = plot_spectrogram_grid(arrays, [f"{t}: {labels[key]} {tuple(a.shape)}"
                                             for t, a in zip(titles, arrays)],
                                    kind=kind, beat=rate == "beat")
        path = out / f"{key}.png"
        fig.savefig(path, dpi=dpi)
        figures[key] = str(path)

    before, after = class_counts(train, vocab)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 4.2), layout="tight")
    ax_before, ax_after = fig.subplots(1, 2, width_ratios=[2, 1])
    dropped = [g for g, c in vocab.mapping.items() if c is None]
    plot_class_histogram(before, ax=ax_before, dropped=dropped,
                         title=f"training clips per genre, before mapping ({len(before)}"
                               f"{'; grey = dropped' if dropped else ''})")
    plot_class_histogram(after, title=f"after mapping ({len(after)} classes)", ax=ax_after)
    path = out / "class_histograms.png"
    fig.savefig(path, dpi=dpi)
    figures["class_histograms"] = str(path)

    result: dict[str, Any] = {
        "root": str(root), "seed": seed, "synthetic": is_synthetic(root), "clips": clips,
        "figures": figures, "counts_before": before, "counts_after": after,
        "summary_md": str(out / "summary.md"), "summary_json": str(out / "summary.json"),
    }
    Path(result["summary_md"]).write_text(_summary_markdown(result))
    Path(result["summary_json"]).write_text(json.dumps(result, indent=2) + "\n")
    log.info("exploration written to %s", out)
    return result
