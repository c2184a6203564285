"""From audio to predictions: build-dataset output trains and evaluates through the CLI, and
`predict` reports genre and affect for songs of 5 s and 90 s (and survives a bad file)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import soundfile as sf

from musicaffect.cli import main
from musicaffect.predict import windows

SR = 22050


def _song(seconds: float, *, bpm: float, f0: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    y = 0.3 * np.sin(2 * np.pi * f0 * t) + 0.2 * np.sin(2 * np.pi * 1.5 * f0 * t)
    clicks = np.zeros_like(t)
    step = int(SR * 60 / bpm)
    clicks[::step] = 1.0
    y += np.convolve(clicks, np.exp(-np.arange(400) / 40.0), mode="same") * 0.5
    y += 0.01 * rng.standard_normal(t.size)
    return (y / np.abs(y).max() * 0.8).astype(np.float32)


@pytest.fixture(scope="module")
def audio_root(tmp_path_factory):
    """A small audio dataset built with build-dataset (genre + affect labels)."""
    base = tmp_path_factory.mktemp("audio")
    audio = base / "audio"
    audio.mkdir()
    rows = []
    for i, (genre, f0, bpm) in enumerate([("Rock", 220, 140), ("Classical", 330, 70)] * 4):
        name = f"{genre.lower()}_{i}.wav"
        sf.write(audio / name, _song(6.0, bpm=bpm, f0=f0 + 5 * i, seed=i), SR)
        v = 0.8 if genre == "Rock" else 0.3
        rows.append({"file": name, "genre": genre, "valence": v, "energy": v,
                     "danceability": v})
    with open(base / "labels.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    out = base / "data"
    assert main(["build-dataset", str(audio), str(out), "--labels", str(base / "labels.csv"),
                 "--jobs", "1", "--test-fraction", "0.25"]) == 0
    return out


@pytest.fixture(scope="module")
def trained(audio_root, tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    common = ["--set", "train.epochs=1", "--set", "train.batch_size=2",
              "--set", "data.val_fraction=0.34", "--no-progress"]
    assert main(["train", str(audio_root), "--preset", "cnn-full-mel", "--out",
                 str(runs / "genre"), "--set", "model.params.channels=[4,8,8,8]", *common]) == 0
    assert main(["train", str(audio_root), "--preset", "multitask-cnn", "--out",
                 str(runs / "affect"), "--set", "model.params.channels=[4,8,8,8]",
                 *common]) == 0
    return runs


def test_built_dataset_trains_and_evaluates(trained, audio_root, capsys):
    assert main(["evaluate", str(trained / "genre"), str(audio_root)]) == 0
    assert "macro avg" in capsys.readouterr().out


def test_predict_short_and_long_songs(trained, tmp_path, capsys):
    short, long = tmp_path / "short.wav", tmp_path / "long.flac"
    sf.write(short, _song(5.0, bpm=120, f0=260, seed=1), SR)
    sf.write(long, _song(90.0, bpm=100, f0=200, seed=2), SR)
    capsys.readouterr()
    assert main(["predict", str(trained / "genre"), str(trained / "affect"), str(short),
                 str(long), "--format", "json", "--top", "2"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert [r["file"] for r in res] == [str(short), str(long)]
    for r in res:
        assert len(r["genre"]) == 2
        assert r["genre"][0]["probability"] >= r["genre"][1]["probability"]
        assert {"valence", "energy", "danceability"} <= set(r)
    assert res[0]["windows"] == 1 and res[0]["seconds"] == pytest.approx(5.0, abs=0.01)
    assert res[1]["windows"] == 5  # 90 s in half-overlapping 30 s windows
    # table and csv formats
    assert main(["predict", str(trained / "genre"), str(short)]) == 0
    assert "genre:" in capsys.readouterr().out
    assert main(["predict", str(trained / "affect"), str(short), "--format", "csv"]) == 0
    header = capsys.readouterr().out.splitlines()[0].split(",")
    assert header[:3] == ["file", "seconds", "windows"] and "danceability" in header


def test_predict_bad_file_does_not_stop_others(trained, tmp_path, capsys):
    good, bad = tmp_path / "good.wav", tmp_path / "bad.wav"
    sf.write(good, _song(6.0, bpm=120, f0=300, seed=3), SR)
    bad.write_bytes(b"this is not audio")
    missing = tmp_path / "missing.mp3"
    capsys.readouterr()
    assert main(["predict", str(trained / "genre"), str(bad), str(good), str(missing),
                 "--format", "json"]) == 1
    res = json.loads(capsys.readouterr().out)
    assert "error" in res[0] and "genre" in res[1] and "error" in res[2]
    assert "bad.wav" in res[0]["error"]


def test_predict_needs_a_checkpoint(tmp_path, capsys):
    wav = tmp_path / "a.wav"
    sf.write(wav, _song(6.0, bpm=120, f0=300, seed=3), SR)
    assert main(["predict", str(wav)]) == 2
    assert "not a checkpoint" in capsys.readouterr().err


def test_windows_rule():
    feats = np.zeros((140, 900))
    assert len(windows(feats, seconds=20.0)) == 1
    w = windows(feats, seconds=90.0)
    assert all(x.shape == (140, 300) for x in w) and len(w) == 5
    # the last window ends at the end of the song
    w = windows(np.arange(1000)[None], seconds=100.0)
    assert w[-1][0, -1] == 999


def test_predict_with_a_classical_run_and_an_ensemble(trained, audio_root, tmp_path, capsys):
    run = tmp_path / "classical"
    assert main(["train", str(audio_root), "--preset", "classical-logreg", "--out", str(run),
                 "--set", "data.val_fraction=0.34", "--set", "model.params.cv_folds=2",
                 "--no-progress"]) == 0
    song = tmp_path / "song.wav"
    sf.write(song, _song(6.0, bpm=120, f0=260, seed=4), SR)
    capsys.readouterr()
    assert main(["predict", str(run), str(song), "--format", "json", "--top", "2"]) == 0
    alone = json.loads(capsys.readouterr().out)[0]
    assert alone["models"] == ["classical-logreg"] and len(alone["genre"]) == 2
    # an ensemble folder of the classical and the CNN run predicts like the two given apart
    assert main(["ensemble", str(run), str(trained / "genre"), "--out",
                 str(tmp_path / "ens")]) == 0
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "ens"), str(song), "--format", "json"]) == 0
    ens = json.loads(capsys.readouterr().out)[0]
    assert main(["predict", str(run), str(trained / "genre"), str(song), "--format",
                 "json"]) == 0
    both = json.loads(capsys.readouterr().out)[0]
    assert ens["genre"] == both["genre"] and len(ens["models"]) == 2
