"""Indexing the Kaggle layout: every folder and name variant, the mapping, and bad input."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from musicaffect.data.labels import CLASS_MAPPING, CLASSES
from musicaffect.data.layout import (
    ClipRecord,
    folder_name,
    index_clips,
    list_clip_files,
    write_skipped,
)
from musicaffect.errors import ConfigError, DataError

GENRE_BEAT = "fma_genre_spectrograms_beat"
MT_BEAT = "multitask_dataset_beat"


def _copy(sample_root: str, tmp_path: Path, *folders: str) -> Path:
    """A private data root holding copies of some (small, beat-synchronous) folders."""
    root = tmp_path / "data"
    for folder in folders:
        shutil.copytree(Path(sample_root) / folder, root / folder)
    return root


def _edit_line(path: Path, lineno: int, new: str | None) -> None:
    lines = path.read_text().splitlines()
    if new is None:
        del lines[lineno - 1]
    else:
        lines[lineno - 1] = new
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("root_fixture, suffix", [("sample_root", ".npy"),
                                                  ("sample_root_gz", ".npy.gz")])
@pytest.mark.parametrize("rate", ["full", "beat"])
def test_every_folder_and_split_resolves(request, root_fixture, suffix, rate):
    root = request.getfixturevalue(root_fixture)
    train = index_clips(root, dataset="genre", rate=rate, split="train", mapped=False)
    test = index_clips(root, dataset="genre", rate=rate, split="test", mapped=False)
    assert (len(train), len(test)) == (80, 40)
    assert all(r.path.name == f"{r.id}.fused.full{suffix}" and r.path.is_file()
               for r in train + test)
    assert all(r.genre20 is not None and r.targets == {} for r in train)
    mt_train = index_clips(root, dataset="multitask", rate=rate, split="train")
    mt_test = index_clips(root, dataset="multitask", rate=rate, split="test")
    assert len(mt_train) == 40 and len(mt_test) == 12
    assert all(set(r.targets) == {"valence", "energy", "danceability"} for r in mt_train)
    assert all(r.targets == {} and r.genre20 is None for r in mt_test)
    assert [r.id for r in mt_test] == sorted((r.id for r in mt_test), key=int)


def test_full_and_beat_folders_list_the_same_clips(sample_root):
    for dataset in ("genre", "multitask"):
        full = index_clips(sample_root, dataset=dataset, rate="full", split="train")
        beat = index_clips(sample_root, dataset=dataset, rate="beat", split="train")
        assert [r.id for r in full] == [r.id for r in beat]
        assert [r.genre20 for r in full] == [r.genre20 for r in beat]


def test_mapping_counts(sample_root):
    raw = index_clips(sample_root, split="train", mapped=False)
    mapped = index_clips(sample_root, split="train", mapped=True)
    dropped = {g for g, c in CLASS_MAPPING.items() if c is None}
    assert len(raw) - len(mapped) == sum(r.genre20 in dropped for r in raw) == 20
    counts = Counter(r.genre10 for r in mapped)
    expected = Counter(CLASS_MAPPING[r.genre20] for r in raw if CLASS_MAPPING[r.genre20])
    assert counts == expected and set(counts) == set(CLASSES)
    assert counts["Rock"] == 3 * counts["Blues"]  # Rock <- Rock, Psych-Rock, Post-Rock
    assert all(r.genre10 == CLASS_MAPPING[r.genre20] for r in mapped)
    test_counts = Counter(r.genre10 for r in index_clips(sample_root, split="test"))
    assert min(test_counts.values()) >= 2


def test_npy_is_preferred_when_both_forms_exist(tmp_path):
    np.save(tmp_path / "7.fused.full.npy", np.zeros((140, 3)))
    (tmp_path / "7.fused.full.npy.gz").write_bytes(b"")
    (tmp_path / "8.fused.full.npy.gz").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("x")
    files = list_clip_files(tmp_path)
    assert {k: v.name for k, v in files.items()} == {"7": "7.fused.full.npy",
                                                     "8": "8.fused.full.npy.gz"}


def test_unknown_dataset_or_split_is_a_config_error(sample_root):
    with pytest.raises(ConfigError):
        folder_name("genre", "half")
    with pytest.raises(ConfigError):
        index_clips(sample_root, split="validation")


def test_missing_root_folder_split_and_label_file(sample_root, tmp_path):
    with pytest.raises(DataError, match="data root does not exist") as err:
        index_clips(tmp_path / "nowhere")
    assert err.value.path == str(tmp_path / "nowhere")
    root = _copy(sample_root, tmp_path, GENRE_BEAT)
    with pytest.raises(DataError, match="sample-data") as err:
        index_clips(root, rate="full")
    assert err.value.path.endswith("fma_genre_spectrograms")
    shutil.rmtree(root / GENRE_BEAT / "test")
    with pytest.raises(DataError, match="split folder is missing"):
        index_clips(root, rate="beat", split="test")
    (root / GENRE_BEAT / "train_labels.txt").unlink()
    with pytest.raises(DataError, match="label file is missing") as err:
        index_clips(root, rate="beat")
    assert err.value.path.endswith("train_labels.txt")


@pytest.mark.parametrize("dataset, folder, header", [
    ("genre", GENRE_BEAT, "Id,Genre"), ("multitask", MT_BEAT, "Id\tvalence\tenergy"),
])
def test_malformed_header_is_always_an_error(sample_root, tmp_path, dataset, folder, header):
    root = _copy(sample_root, tmp_path, folder)
    _edit_line(root / folder / "train_labels.txt", 1, header)
    for skip_bad in (False, True):
        with pytest.raises(DataError, match="malformed header") as err:
            index_clips(root, dataset=dataset, rate="beat", skip_bad=skip_bad)
        assert err.value.line == 1 and err.value.path.endswith("train_labels.txt")


def _genre_row_error(root: Path, lineno: int, new: str | None, match: str) -> None:
    _edit_line(root / GENRE_BEAT / "train_labels.txt", lineno, new)
    with pytest.raises(DataError, match=match) as err:
        index_clips(root, rate="beat")
    assert err.value.line == lineno
    assert err.value.path == str(root / GENRE_BEAT / "train_labels.txt")
    assert "--skip-bad" in str(err.value)


def test_malformed_genre_row(sample_root, tmp_path):
    _genre_row_error(_copy(sample_root, tmp_path, GENRE_BEAT), 3, "123 Rock", "malformed row")


def test_unknown_genre(sample_root, tmp_path):
    root = _copy(sample_root, tmp_path, GENRE_BEAT)
    name = (root / GENRE_BEAT / "train_labels.txt").read_text().splitlines()[4].split("\t")[0]
    _genre_row_error(root, 5, f"{name}\tPolka", "unknown genre 'Polka'")


def test_row_whose_clip_file_is_missing(sample_root, tmp_path):
    root = _copy(sample_root, tmp_path, GENRE_BEAT)
    name = (root / GENRE_BEAT / "train_labels.txt").read_text().splitlines()[6].split("\t")[0]
    (root / GENRE_BEAT / "train" / f"{name.split('.')[0]}.fused.full.npy").unlink()
    with pytest.raises(DataError, match="has no file") as err:
        index_clips(root, rate="beat")
    assert err.value.line == 7


def test_duplicate_row(sample_root, tmp_path):
    root = _copy(sample_root, tmp_path, GENRE_BEAT)
    second = (root / GENRE_BEAT / "train_labels.txt").read_text().splitlines()[1]
    _genre_row_error(root, 4, second, "listed twice")


@pytest.mark.parametrize("field, match", [
    ("", "valence is missing"), ("nan", "valence is NaN"), ("1.5", "outside \\[0, 1\\]"),
    ("-0.1", "outside \\[0, 1\\]"), ("high", "not a number"),
])
def test_bad_regression_label(sample_root, tmp_path, field, match):
    root = _copy(sample_root, tmp_path, MT_BEAT)
    labels = root / MT_BEAT / "train_labels.txt"
    cid, _, energy, dance = labels.read_text().splitlines()[2].split(",")
    _edit_line(labels, 3, f"{cid},{field},{energy},{dance}")
    with pytest.raises(DataError, match=match) as err:
        index_clips(root, dataset="multitask", rate="beat")
    assert (err.value.path, err.value.line) == (str(labels), 3)


def test_short_multitask_row(sample_root, tmp_path):
    root = _copy(sample_root, tmp_path, MT_BEAT)
    labels = root / MT_BEAT / "train_labels.txt"
    _edit_line(labels, 2, "1234,0.5")
    with pytest.raises(DataError, match="malformed row"):
        index_clips(root, dataset="multitask", rate="beat")


def test_skip_bad_collects_what_it_skipped(sample_root, tmp_path, caplog):
    root = _copy(sample_root, tmp_path, GENRE_BEAT, MT_BEAT)
    labels = root / GENRE_BEAT / "train_labels.txt"
    lines = labels.read_text().splitlines()
    lines[2] = lines[2].split("\t")[0] + "\tPolka"
    lines[3] = "garbage"
    labels.write_text("\n".join(lines) + "\n")
    skipped: list[tuple[str, str]] = []
    records = index_clips(root, rate="beat", skip_bad=True, mapped=False, skipped=skipped)
    assert len(records) == 78
    assert [s[0] for s in skipped] == [str(labels)] * 2
    assert "Polka" in skipped[0][1] and "malformed row" in skipped[1][1]
    assert "skipped" in caplog.text
    mt_labels = root / MT_BEAT / "train_labels.txt"
    _edit_line(mt_labels, 2, "1234,0.5,2.0,0.1")
    mt_skipped: list[tuple[str, str]] = []
    assert len(index_clips(root, dataset="multitask", rate="beat", skip_bad=True,
                           skipped=mt_skipped)) == 39
    out = write_skipped(skipped + mt_skipped, tmp_path / "report" / "skipped.tsv")
    lines = out.read_text().splitlines()
    assert lines[0] == "path\treason" and len(lines) == 4
    assert "energy = 2.0 is outside" in lines[3]


def test_records_are_frozen(sample_root):
    record = index_clips(sample_root, rate="beat")[0]
    assert isinstance(record, ClipRecord)
    with pytest.raises(AttributeError):
        record.id = "x"  # type: ignore[misc]
