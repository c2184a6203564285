"""build-dataset: Kaggle layout from audio files, bad files listed, resume, splits, CLI."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile as sf

from musicaffect.cli import main
from musicaffect.data.layout import index_clips
from musicaffect.data.splits import assign_splits
from musicaffect.errors import DataError
from musicaffect.features import FeatureParams, build_dataset, read_labels
from musicaffect.features.audio import extract_file
from musicaffect.features.build import LabelRow

SR = 22050
CLIP = ".fused.full.npy"

LABELS = """\
file,genre,valence,energy,danceability,split,group
r0.wav,Rock,,,,,a
r1.wav,rock,,,,,a
j0.wav,Jazz,0.2,0.8,0.5,,b
sub/j1.flac,Jazz,0.6,0.4,0.3,,c
p0.ogg,Pop,0.9,0.9,0.9,test,
unl.wav,,,,,,
corrupt.wav,Rock,,,,,
silent.wav,Jazz,,,,,
short.wav,Pop,,,,,
missing.wav,Pop,,,,,
"""


def music(seconds: float, *, bpm: float = 120.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    freqs = rng.choice([220.0, 261.6, 329.6, 392.0, 440.0], size=2, replace=False)
    y = sum(0.2 * np.sin(2 * np.pi * f * t) for f in freqs)
    y = y + 0.5 * librosa.clicks(times=np.arange(0.1, seconds, 60.0 / bpm), sr=SR, length=n)
    return (y + 0.01 * rng.standard_normal(n)).astype(np.float32)


def write_audio(audio: Path) -> None:
    (audio / "sub").mkdir(parents=True)
    sf.write(audio / "r0.wav", music(6.0, seed=0), SR)
    sf.write(audio / "r1.wav", music(6.0, bpm=100, seed=1), SR)
    sf.write(audio / "j0.wav", music(6.0, bpm=90, seed=2), SR)
    sf.write(audio / "sub" / "j1.flac", music(8.0, bpm=140, seed=3), SR)  # cropped to 6 s
    sf.write(audio / "p0.ogg", music(6.0, seed=4), SR)
    sf.write(audio / "unl.wav", music(6.0, bpm=110, seed=5), SR)
    (audio / "corrupt.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk" * 50)
    sf.write(audio / "silent.wav", np.zeros(6 * SR, np.float32), SR)
    sf.write(audio / "short.wav", music(2.0, seed=6), SR)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    base = tmp_path_factory.mktemp("build")
    audio = base / "audio"
    write_audio(audio)
    labels = base / "labels.csv"
    labels.write_text(LABELS)
    out = base / "data"
    report = build_dataset(audio, out, labels_csv=labels, test_fraction=0.34, seed=0,
                           jobs=2, clip_seconds=6.0)
    return {"audio": audio, "labels": labels, "out": out, "report": report, "base": base}


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def clips_by_file(out: Path) -> dict[str, dict[str, str]]:
    return {r["file"]: r for r in read_csv(out / "clips.csv")}


# ---------------------------------------------------------------------------------------
# the build


def test_report_counts_and_errors_file(built):
    report = built["report"]
    assert (report.done, report.skipped, report.failed) == (6, 0, 4)
    errors = {r["file"]: r["reason"] for r in read_csv(report.errors_file)}
    assert report.errors_file == built["out"] / "errors.csv"
    assert set(errors) == {"corrupt.wav", "silent.wav", "short.wav", "missing.wav"}
    assert "cannot decode" in errors["corrupt.wav"]
    assert "silent" in errors["silent.wav"]
    assert "too short" in errors["short.wav"]
    assert "not found" in errors["missing.wav"]


def test_clip_ids_follow_sorted_file_order(built):
    clips = clips_by_file(built["out"])
    files = sorted(clips)
    assert [int(clips[f]["id"]) for f in files] == list(range(len(files)))
    assert clips["sub/j1.flac"]["status"] == "ok" and clips["corrupt.wav"]["status"] == "failed"
    assert clips["r0.wav"]["split"] == clips["r1.wav"]["split"]  # one group, one side
    assert clips["p0.ogg"]["split"] == "test" and clips["unl.wav"]["split"] == "test"
    assert clips["r1.wav"]["genre"] == "Rock"  # canonical spelling


def test_params_file_states_the_rules(built):
    params = FeatureParams.read(built["out"] / "feature_params.json")
    assert params == FeatureParams(clip_seconds=6.0, length_rule="crop")
    assert "central 6 s" in (built["out"] / "feature_params.json").read_text()


def test_layout_and_label_file_variants(built):
    out, clips = built["out"], clips_by_file(built["out"])
    for folder in ("fma_genre_spectrograms", "fma_genre_spectrograms_beat",
                   "multitask_dataset", "multitask_dataset_beat"):
        assert (out / folder / "train").is_dir() and (out / folder / "test").is_dir()
    genre_ok = [f for f, r in clips.items() if r["genre"] and r["status"] == "ok"]
    names = {f: clips[f]["id"] for f in genre_ok}
    train = [f for f in genre_ok if clips[f]["split"] == "train"]
    test = [f for f in genre_ok if clips[f]["split"] == "test"]
    g = out / "fma_genre_spectrograms"
    lines = (g / "train_labels.txt").read_text().splitlines()
    assert lines[0] == "Id\tGenre"
    assert sorted(lines[1:]) == sorted(f"{names[f]}.fused.full.npy.gz\t{clips[f]['genre']}"
                                       for f in train)
    lines = (g / "test_labels.txt").read_text().splitlines()
    assert sorted(lines[1:]) == sorted(f"{names[f]}.full.fused.npy.gz\t{clips[f]['genre']}"
                                       for f in test)
    beat = (out / "fma_genre_spectrograms_beat" / "train_labels.txt").read_text()
    assert all(".beatsync.fused.npy.gz\t" in line for line in beat.splitlines()[1:])
    for f in train:
        assert (g / "train" / f"{names[f]}{CLIP}").is_file()
    mt = (out / "multitask_dataset" / "train_labels.txt").read_text().splitlines()
    assert mt[0] == "Id,valence,energy,danceability"
    for line in mt[1:]:
        assert line.split(",")[0].isdigit()
    test_files = {p.name for p in (out / "multitask_dataset" / "test").iterdir()}
    assert f"{clips['unl.wav']['id']}{CLIP}" in test_files
    assert f"{clips['p0.ogg']['id']}{CLIP}" in test_files


def test_arrays_are_the_features_of_the_source(built):
    out, audio, clips = built["out"], built["audio"], clips_by_file(built["out"])
    params = FeatureParams(clip_seconds=6.0)
    for f in ("r0.wav", "sub/j1.flac"):
        cid, split = clips[f]["id"], clips[f]["split"]
        full = np.load(out / "fma_genre_spectrograms" / split / f"{cid}{CLIP}")
        beat = np.load(out / "fma_genre_spectrograms_beat" / split / f"{cid}{CLIP}")
        expected = extract_file(audio / f, params=params)
        assert full.shape == (140, 1 + 6 * SR // 512) and full.dtype == np.float32
        np.testing.assert_allclose(full, expected["full"], atol=1e-5)
        np.testing.assert_allclose(beat, expected["beat"], atol=1e-5)


def test_dataset_layer_reads_the_result(built, tmp_path):
    out, clips = built["out"], clips_by_file(built["out"])
    by_id = {r["id"]: r for r in clips.values()}
    n_genre = 0
    for rate in ("full", "beat"):
        for split in ("train", "test"):
            records = index_clips(out, dataset="genre", rate=rate, split=split, mapped=False)
            for rec in records:
                assert by_id[rec.id]["genre"] == rec.genre20
                assert by_id[rec.id]["split"] == split
            n_genre += len(records)
    assert n_genre == 2 * 5  # r0, r1, j0, j1, p0 in both rates
    train = index_clips(out, dataset="multitask", split="train")
    for rec in train:
        assert rec.targets["valence"] == float(by_id[rec.id]["valence"])
    test = index_clips(out, dataset="multitask", split="test")
    assert {r.id for r in test} >= {clips["unl.wav"]["id"], clips["p0.ogg"]["id"]}
    assert all(r.targets == {} for r in test)

    from musicaffect.data.dataset import SpectrogramDataset

    ds = SpectrogramDataset(out, dataset="genre", rate="beat", split="train", view="fused",
                            cache_dir=tmp_path / "cache")
    assert len(ds) == len(index_clips(out, dataset="genre", rate="beat", split="train"))
    if len(ds):
        item = ds[0]
        assert item["x"].shape[1] == 140 and item["x"].shape[0] == item["length"]


def test_resume_skips_built_clips(built):
    out = built["out"]
    clip = next((out / "multitask_dataset" / "test").iterdir())
    before = clip.stat().st_mtime_ns
    report = build_dataset(built["audio"], out, labels_csv=built["labels"], test_fraction=0.34,
                           seed=0, jobs=2, clip_seconds=6.0)
    assert (report.done, report.skipped, report.failed) == (0, 6, 4)
    assert clip.stat().st_mtime_ns == before


def test_changed_labels_keep_ids_and_drop_stale_clips(built, tmp_path):
    out = tmp_path / "data"
    shutil.copytree(built["out"], out)
    old = clips_by_file(out)
    labels = tmp_path / "labels.csv"
    labels.write_text("\n".join(line for line in LABELS.splitlines()
                                if not line.startswith("r1.wav")) + "\n")
    report = build_dataset(built["audio"], out, labels_csv=labels, test_fraction=0.34,
                           seed=0, jobs=1, clip_seconds=6.0)
    assert report.done == 0 and report.skipped == 5
    new = clips_by_file(out)
    assert "r1.wav" not in new
    assert all(new[f]["id"] == old[f]["id"] for f in new)
    stale = old["r1.wav"]["id"] + CLIP
    assert not any(p.name == stale for p in out.rglob("*.npy"))


def test_other_params_rebuild(built, tmp_path):
    out = tmp_path / "data"
    shutil.copytree(built["out"], out)
    labels = tmp_path / "labels.csv"
    labels.write_text("file,genre\nr0.wav,Rock\n")
    report = build_dataset(built["audio"], out, labels_csv=labels, jobs=1, clip_seconds=5.0,
                           test_fraction=0.0)
    assert (report.done, report.skipped) == (1, 0)
    (full,) = (out / "fma_genre_spectrograms" / "train").glob(f"*{CLIP}")
    assert np.load(full).shape[1] == 1 + 5 * SR // 512


# ---------------------------------------------------------------------------------------
# bad input


def test_refuses_a_dataset_it_did_not_build(tmp_path):
    (tmp_path / "data" / "fma_genre_spectrograms").mkdir(parents=True)
    labels = tmp_path / "labels.csv"
    labels.write_text("file\nx.wav\n")
    with pytest.raises(DataError, match="did not write"):
        build_dataset(tmp_path, tmp_path / "data", labels_csv=labels, jobs=1)


@pytest.mark.parametrize(("text", "match", "genre_map"), [
    ("file,mood\na.wav,happy\n", r"column 'mood' holds 'happy'.*not a number", "auto"),
    ("genre\nRock\n", "no 'file' column", "auto"),
    ("file,genre\na.wav,Polka\n", "unknown genre 'Polka'.*--genre-map none", "lab"),
    ("file,valence,energy\na.wav,0.5,\nb.wav,0.1,0.2\n", "energy missing", "auto"),
    ("file,valence,energy,danceability\na.wav,inf,0.5,0.5\n", "not a finite number", "auto"),
    ("file,valence,energy,danceability\na.wav,x,0.5,0.5\n", "not a number", "auto"),
    ("file,genre\na.wav,Rock\na.wav,Jazz\n", "listed twice", "auto"),
    ("file,genre,split\na.wav,Rock,val\n", "unknown split", "auto"),
    ("file,split\na.wav,train\n", "needs labels", "auto"),
    ("file,embedding\na.wav,1\n", "cannot name a regression target", "auto"),
    ("", "empty", "auto"),
])
def test_labels_csv_errors(tmp_path, text, match, genre_map):
    path = tmp_path / "labels.csv"
    path.write_text(text)
    with pytest.raises(DataError, match=match) as err:
        read_labels(path, genre_map=genre_map)
    assert "labels.csv" in str(err.value)


def test_read_labels_rows(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("File, Genre ,valence,energy,danceability\n"
                    "a.wav,hip-hop,,,\nb.wav,,0.1,0.2,0.3\nc.wav,,,,\n")
    a, b, c = read_labels(path)
    assert a.genre == "Hip-Hop" and a.datasets == ("genre",)
    assert b.targets == {"valence": 0.1, "energy": 0.2, "danceability": 0.3}
    assert b.datasets == ("multitask",) and c.datasets == ("multitask",)


def test_assign_splits_is_stratified_and_seeded():
    genres = ["Rock", "Jazz", "Pop", "Blues", "Folk"]
    rows = [LabelRow(file=f"{g}{i}.wav", line=i, genre=g) for g in genres for i in range(10)]
    splits = assign_splits(rows, test_fraction=0.2, seed=0)
    for g in genres:
        assert sum(s == "test" for r, s in zip(rows, splits) if r.genre == g) == 2
    assert assign_splits(rows, test_fraction=0.2, seed=0) == splits
    assert assign_splits(rows, test_fraction=0.2, seed=1) != splits
    assert set(assign_splits(rows, test_fraction=0.0)) == {"train"}


def test_assign_splits_keeps_groups_together():
    rows = [LabelRow(file=f"{i}.wav", line=i, genre="Rock", group=f"song{i // 3}")
            for i in range(30)]
    splits = assign_splits(rows, test_fraction=0.2, seed=3)
    for k in range(10):
        assert len({s for r, s in zip(rows, splits) if r.group == f"song{k}"}) == 1
    assert splits.count("test") == 6
    fixed = rows[:2] + [LabelRow(file="x.wav", line=99, genre="Rock", group="song0",
                                 split="test")]
    assert assign_splits(fixed, seed=0)[:3] == ["test", "test", "test"]
    clash = [LabelRow(file="y.wav", line=100, genre="Rock", group="song0", split="train")]
    with pytest.raises(DataError, match="song0"):
        assign_splits(fixed + clash, seed=0)


# ---------------------------------------------------------------------------------------
# CLI


def test_cli_exit_0_with_failures(built, tmp_path, capsys):
    out = tmp_path / "data"
    shutil.copytree(built["out"], out)
    rc = main(["build-dataset", str(built["audio"]), str(out), "--labels",
               str(built["labels"]), "--test-fraction", "0.34", "--clip-seconds", "6",
               "--jobs", "1"])
    text = capsys.readouterr().out
    assert rc == 0
    assert "6 clips built" in text and "4 files could not be used" in text
    assert str(out / "errors.csv") in text


def test_cli_exit_2_when_nothing_built(tmp_path, capsys):
    (tmp_path / "bad.wav").write_bytes(b"not audio at all")
    labels = tmp_path / "labels.csv"
    labels.write_text("file,genre\nbad.wav,Rock\nnothere.wav,Jazz\n")
    rc = main(["build-dataset", str(tmp_path), str(tmp_path / "data"), "--labels",
               str(labels), "--jobs", "1"])
    text = capsys.readouterr().out
    assert rc == 2 and "nothing could be built" in text
    errors = read_csv(tmp_path / "data" / "errors.csv")
    assert {r["file"] for r in errors} == {"bad.wav", "nothere.wav"}


def test_cli_bad_labels_is_a_one_line_error(tmp_path, capsys):
    labels = tmp_path / "labels.csv"
    labels.write_text("file,tempo\na.wav,fast\n")
    rc = main(["build-dataset", str(tmp_path), str(tmp_path / "data"), "--labels", str(labels)])
    err = capsys.readouterr().err
    assert rc == 2 and "labels.csv:2: column 'tempo' holds 'fast'" in err
