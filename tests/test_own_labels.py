"""Your own labels: any genre names and targets, carried by the data root and the model.

A data root built from generated audio with the genres disco, k-pop and reggae and the
binary targets arousal and valence trains, evaluates, predicts, exports and runs through the
lab; the Kaggle layout keeps the lab's vocabulary; groups never cross a split.
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import soundfile as sf

from musicaffect.cli import main
from musicaffect.data.labels import CLASSES, GENRES20, TARGETS
from musicaffect.data.layout import index_clips
from musicaffect.data.splits import kfold_splits, train_val_split
from musicaffect.data.vocab import load_groups, load_vocabulary
from musicaffect.errors import ConfigError, DataError
from musicaffect.evaluation.binary import binary_metrics
from musicaffect.features.build import build_dataset, read_label_table

SR = 22050
GENRES = {"disco": (220.0, 120.0), "k-pop": (330.0, 150.0), "Reggae": (180.0, 75.0)}
TINY = ["--set", "train.epochs=1", "--set", "train.batch_size=4", "--set",
        "model.params.channels=[4,8,8,8]", "--set", "model.params.embed_dim=16",
        "--no-progress"]


def _song(seconds: float, *, bpm: float, f0: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    y = 0.3 * np.sin(2 * np.pi * f0 * t) + 0.2 * np.sin(2 * np.pi * 1.5 * f0 * t)
    clicks = np.zeros_like(t)
    clicks[::int(SR * 60 / bpm)] = 1.0
    y += np.convolve(clicks, np.exp(-np.arange(400) / 40.0), mode="same") * 0.5
    y += 0.01 * rng.standard_normal(t.size)
    return (y / np.abs(y).max() * 0.8).astype(np.float32)


@pytest.fixture(scope="module")
def own_root(tmp_path_factory):
    """12 generated songs of 6 s: genres disco, k-pop, reggae (also spelled Reggae), binary
    arousal and valence; built with build-dataset's default (auto) genre map."""
    base = tmp_path_factory.mktemp("own")
    audio = base / "audio"
    audio.mkdir()
    rows = []
    for i in range(12):
        genre = list(GENRES)[i % 3]
        f0, bpm = GENRES[genre]
        name = f"{genre.lower()}_{i}.wav"
        sf.write(audio / name, _song(6.0, bpm=bpm, f0=f0 + 7 * i, seed=i), SR)
        spelled = genre.lower() if i == 5 else genre        # "reggae" and "Reggae": one class
        rows.append({"file": name, "genre": spelled, "arousal": int(bpm > 100),
                     "valence": int(i % 2 == 0)})
    with open(base / "labels.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    out = base / "data"
    assert main(["build-dataset", str(audio), str(out), "--labels", str(base / "labels.csv"),
                 "--jobs", "1", "--clip-seconds", "6", "--test-fraction", "0.34"]) == 0
    return out


@pytest.fixture(scope="module")
def own_runs(own_root, tmp_path_factory):
    runs = tmp_path_factory.mktemp("own_runs")
    common = [*TINY, "--set", "data.val_fraction=0.34"]
    assert main(["train", str(own_root), "--preset", "cnn-full-mel", "--out",
                 str(runs / "genre"), *common]) == 0
    assert main(["train", str(own_root), "--preset", "affect-cnn-full-fused", "--out",
                 str(runs / "affect"), "--set", "data.tasks=[arousal, valence]", *common]) == 0
    return runs


# --------------------------------------------------------------------------- the data root

def test_labels_json_holds_the_vocabulary(own_root):
    labels = json.loads((own_root / "labels.json").read_text())
    assert labels["classes"] == ["disco", "k-pop", "Reggae"]
    assert labels["genre_map"] == "none"
    assert labels["targets"] == ["arousal", "valence"]
    assert labels["kinds"] == {"arousal": "binary", "valence": "binary"}
    assert labels["groups"]["file"] == "clips.csv"
    vocab = load_vocabulary(own_root)
    assert not vocab.is_lab and vocab.binary_targets() == ["arousal", "valence"]
    mt = (own_root / "multitask_dataset" / "train_labels.txt").read_text().splitlines()
    assert mt[0] == "Id,arousal,valence"
    recs = index_clips(own_root, dataset="genre", split="train")
    assert {r.genre10 for r in recs} <= {"disco", "k-pop", "Reggae"}


def test_kaggle_layout_keeps_the_lab_vocabulary(sample_root):
    vocab = load_vocabulary(sample_root)
    assert vocab.is_lab and vocab.classes == CLASSES and vocab.targets == TARGETS
    raw = index_clips(sample_root, dataset="genre", split="train", mapped=False)
    mapped = index_clips(sample_root, dataset="genre", split="train")
    dropped = {r.id for r in raw} - {r.id for r in mapped}
    assert dropped and all(r.genre10 is None for r in raw if r.id in dropped)
    assert {r.genre10 for r in mapped} <= set(CLASSES)
    # the genre map is explicit for any root: "none" keeps the 20 FMA names as classes
    raw20 = load_vocabulary(sample_root, genre_map="none")
    assert raw20.classes == tuple(sorted(GENRES20, key=str.casefold))
    kept = index_clips(sample_root, dataset="genre", split="train", vocab=raw20)
    assert len(kept) == len(raw) and all(r.genre10 == r.genre20 for r in kept)


def test_genre_maps(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("file,genre,tension\na.wav,disco,3.5\nb.wav,Rock,1\nc.wav,k-pop,\n")
    with pytest.raises(DataError, match="unknown genre 'disco'.*--genre-map none"):
        read_label_table(path, genre_map="lab")
    rows, vocab = read_label_table(path)            # auto: not all FMA names -> none
    assert vocab.classes == ("disco", "k-pop", "Rock") and vocab.genre_map == "none"
    assert vocab.targets == ("tension",) and vocab.kind("tension") == "continuous"
    assert vocab.ranges["tension"] == (1.0, 3.5) and rows[2].targets == {}
    gmap = tmp_path / "map.csv"
    gmap.write_text("genre,class\ndisco,Electronic\nRock,Rock\nk-pop,\n")
    rows, vocab = read_label_table(path, genre_map=gmap)
    assert vocab.classes == ("Electronic", "Rock") and vocab.mapping["k-pop"] is None
    only_fma = tmp_path / "fma.csv"
    only_fma.write_text("file,genre\na.wav,psych-rock\n")
    rows, vocab = read_label_table(only_fma)        # auto: all FMA names -> lab
    assert rows[0].genre == "Psych-Rock" and vocab.classes == CLASSES


# --------------------------------------------------------------------------- the model

def test_checkpoint_carries_the_names(own_runs):
    import torch

    ckpt = torch.load(own_runs / "genre" / "checkpoints" / "best.pt", weights_only=True)
    assert ckpt["classes"] == ["disco", "k-pop", "Reggae"]
    assert ckpt["model"]["tasks"] == {"genre": 3}
    affect = torch.load(own_runs / "affect" / "checkpoints" / "best.pt", weights_only=True)
    assert affect["targets"] == ["arousal", "valence"]
    assert affect["kinds"] == {"arousal": "binary", "valence": "binary"}


def test_evaluate_reports_the_data_vocabulary(own_runs, own_root, capsys):
    assert main(["evaluate", str(own_runs / "genre"), str(own_root)]) == 0
    out = capsys.readouterr().out
    assert "disco" in out and "k-pop" in out and "Reggae" in out and "Rock" not in out
    assert main(["evaluate", str(own_runs / "affect"), str(own_root)]) == 0
    out = capsys.readouterr().out
    assert "arousal: binary, ROC-AUC" in out and "balanced accuracy" in out
    metrics = json.loads(next((own_runs / "affect" / "eval").glob("*/metrics.json"))
                         .read_text())
    assert set(metrics["binary"]) == {"arousal", "valence"}


def test_predict_returns_the_checkpoint_names(own_runs, tmp_path, capsys):
    song = tmp_path / "song.wav"
    sf.write(song, _song(5.0, bpm=150, f0=330, seed=99), SR)
    assert main(["predict", str(own_runs / "genre"), str(own_runs / "affect"), str(song),
                 "--format", "json", "--threshold", "0.5"]) == 0
    (res,) = json.loads(capsys.readouterr().out)
    assert {g["class"] for g in res["genre"]} <= {"disco", "k-pop", "Reggae"}
    assert len(res["genre"]) == 3
    assert set(res) >= {"arousal", "valence", "arousal_label", "valence_label"}
    assert res["arousal_label"] == int(res["arousal"] >= 0.5)
    assert main(["predict", str(own_runs / "affect"), str(song), "--format", "csv"]) == 0
    header = capsys.readouterr().out.splitlines()[0].split(",")
    assert "arousal" in header and "valence" in header and "energy" not in header


def test_export_carries_the_names(own_runs, tmp_path, capsys):
    from musicaffect.export import read_metadata

    out = tmp_path / "m.torchscript.pt"
    assert main(["export", str(own_runs / "affect"), "--format", "torchscript", "--out",
                 str(out)]) == 0
    meta = read_metadata(out)
    assert meta["targets"] == ["arousal", "valence"] and meta["outputs"][1:] == meta["targets"]
    assert meta["kinds"]["arousal"] == "binary"


def test_submit_needs_the_kaggle_targets(own_runs, own_root, tmp_path, capsys):
    assert main(["submit", str(own_runs / "affect"), str(own_root), "--out",
                 str(tmp_path / "s.csv")]) == 2
    err = capsys.readouterr().err
    assert "needs valence, energy, danceability" in err and "arousal, valence" in err


def test_unknown_task_names_the_data_targets(own_root, tmp_path, capsys):
    assert main(["train", str(own_root), "--preset", "affect-cnn-full-fused", "--out",
                 str(tmp_path / "r"), "--set", "data.tasks=[energy]", *TINY]) == 2
    assert "targets are arousal, valence" in capsys.readouterr().err


def test_binary_targets_train_with_bce(own_runs, own_root, tmp_path):
    """A deep run on 0/1 targets stores binary task specs, and its loss is BCE on the
    logits: the trainer's loss of each target is BCE, and the validation loss recorded with
    best.pt is the BCE of the run's held-out scores (their MSE would differ)."""
    import torch

    from musicaffect.config import load_config
    from musicaffect.evaluation.predictor import Predictor
    from musicaffect.models.checkpoint import task_specs
    from musicaffect.tasks import BINARY
    from musicaffect.training.engine import Trainer

    ckpt = torch.load(own_runs / "affect" / "checkpoints" / "best.pt", weights_only=True)
    assert [d["kind"] for d in ckpt["task_specs"]] == [BINARY, BINARY]
    assert {t: s.kind for t, s in task_specs(ckpt).items()} == {"arousal": BINARY,
                                                                "valence": BINARY}
    pred = Predictor.load(own_runs / "affect", device="cpu").predict_heldout(own_root)
    bce = mse = 0.0
    for t in ("arousal", "valence"):
        p, y = pred.values[t].astype(np.float64), pred.labels[t].astype(np.float64)
        assert set(np.unique(y)) <= {0.0, 1.0} and ((p > 0) & (p < 1)).all()   # scores
        bce += float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
        mse += float(np.mean((p - y) ** 2))
    assert ckpt["metrics"]["val_loss"] == pytest.approx(bce, rel=1e-5)
    assert ckpt["metrics"]["val_loss"] != pytest.approx(mse, rel=1e-2)
    # the loss the loop trains with (the same object validates)
    cfg = load_config("affect-cnn-full-fused", ["data.tasks=[genre, arousal, valence]",
                                                "data.val_fraction=0.34",
                                                "model.params.channels=[4,8,8,8]"])
    trainer = Trainer(cfg, own_root, tmp_path / "run", progress=False)
    try:
        trainer.setup(resume=False, overwrite=False)
        assert {t: loss.kind for t, loss in trainer.loss_fn.losses.items()} == {
            "genre": "ce", "arousal": "bce", "valence": "bce"}
    finally:
        if trainer.claim is not None:
            trainer.claim.abort()


def test_resume_refuses_a_binary_run_trained_with_mse(own_root, tmp_path):
    """A run interrupted before binary targets trained with BCE (its last.pt stores no
    task specs) is not resumed with another loss."""
    import torch

    from musicaffect.config import load_config
    from musicaffect.errors import CheckpointError
    from musicaffect.training.engine import fit

    cfg = load_config("affect-cnn-full-fused", ["data.tasks=[arousal, valence]",
                                                "data.val_fraction=0.34", "train.epochs=2",
                                                "train.batch_size=4",
                                                "model.params.channels=[4,4,4,4]"])
    run = tmp_path / "run"
    fit(cfg, own_root, run, progress=False, stop_after=1)
    last = run / "checkpoints" / "last.pt"
    old = torch.load(last, weights_only=True)
    del old["task_specs"]
    torch.save(old, last)
    with pytest.raises(CheckpointError, match=r"arousal \(regression -> binary\).*BCE"):
        fit(cfg, own_root, run, resume=True, progress=False)


def test_genre_and_targets_train_together(own_root, tmp_path):
    from musicaffect.models.checkpoint import load_checkpoint

    assert main(["train", str(own_root), "--preset", "affect-cnn-full-fused", "--out",
                 str(tmp_path / "joint"), "--set", "data.tasks=[genre, arousal, valence]",
                 "--set", "data.val_fraction=0.34", *TINY]) == 0
    ckpt = load_checkpoint(tmp_path / "joint")
    assert ckpt["model"]["tasks"] == {"genre": 3, "arousal": 1, "valence": 1}
    assert "val_accuracy" in ckpt["metrics"] and "val_spearman_arousal" in ckpt["metrics"]


def test_transfer_reinitialises_only_heads_that_do_not_fit(own_runs, own_root, sample_root,
                                                          tmp_path, capsys):
    import torch

    src = own_runs / "genre"
    assert main(["train", str(own_root), "--preset", "cnn-full-mel", "--out",
                 str(tmp_path / "same"), "--set", f"transfer.checkpoint={src}",
                 "--set", "data.val_fraction=0.34", *TINY]) == 0
    err = capsys.readouterr().err
    assert "head(s) genre copied" in err and "re-initialised" not in err
    assert main(["train", sample_root, "--preset", "cnn-full-mel", "--out",
                 str(tmp_path / "other"), "--set", f"transfer.checkpoint={src}",
                 "--set", "train.max_batches_per_epoch=1", *TINY]) == 0
    err = capsys.readouterr().err
    assert "head 'genre' re-initialised" in err and "disco" in err
    ckpt = torch.load(tmp_path / "other" / "checkpoints" / "best.pt", weights_only=True)
    assert ckpt["model"]["tasks"] == {"genre": 10}


# --------------------------------------------------------------------------- the lab

@pytest.mark.slow
def test_lab_runs_on_own_labels(own_root, tmp_path):
    out = tmp_path / "lab"
    assert main(["lab", str(own_root), "--out", str(out), "--budget", "tiny",
                 "--no-progress", "--steps", "explore,genre,affect,multitask,submission",
                 "--set", "data.val_fraction=0.34"]) == 0
    state = json.loads((out / "lab_state.json").read_text())
    steps = {s: v["status"] for s, v in state["steps"].items()}
    assert steps == {"explore": "done", "genre": "done", "affect": "done",
                     "multitask": "done", "submission": "skipped"}
    assert "needs valence, energy, danceability" in state["steps"]["submission"]["reason"]
    assert state["references"] is False and state["targets"] == ["arousal", "valence"]
    affect = state["steps"]["affect"]["table"]
    assert affect["columns"] == ["model", "arousal", "valence", "mean", "auc_arousal",
                                 "auc_valence"]
    assert {r.split("-")[-1] for r in state["steps"]["affect"]["runs"]} == {"arousal",
                                                                            "valence"}
    genre = state["steps"]["genre"]["table"]
    assert "ref_accuracy" not in genre["columns"] and "no public reference" in genre["note"]
    md = (out / "report.md").read_text()
    assert "public (LAB.md)" not in md and "its own labels" in md


# --------------------------------------------------------------------------- groups

def test_grouped_splits_never_cross():
    groups = np.repeat([f"song{i}" for i in range(15)], 4)
    labels = np.repeat(np.arange(15) % 3, 4)
    for stratify in (None, labels):
        for seed in range(3):
            tr, va = train_val_split(len(groups), val_fraction=0.2, seed=seed,
                                     stratify=stratify, groups=groups)
            assert not set(groups[tr]) & set(groups[va]) and len(va)
            assert sorted(np.concatenate([tr, va])) == list(range(len(groups)))
    folds = kfold_splits(len(groups), k=5, seed=0, groups=groups)
    assert len(folds) == 5
    for tr, va in folds:
        assert not set(groups[tr]) & set(groups[va])
    with pytest.raises(ConfigError, match="one group"):
        train_val_split(8, groups=np.array(["a"] * 8))
    # singleton groups: the lab rule, unchanged
    assert [a.tolist() for a in train_val_split(10, groups=np.arange(10))] == \
        [a.tolist() for a in train_val_split(10)]


def test_segments_of_one_file_share_a_group(tmp_path):
    audio = tmp_path / "audio"
    audio.mkdir()
    for i in range(4):
        sf.write(audio / f"s{i}.wav", _song(10.0, bpm=100 + 10 * i, f0=200 + 30 * i, seed=i), SR)
    labels = tmp_path / "labels.csv"
    labels.write_text("file,tension\n" + "".join(f"s{i}.wav,{i / 3:.3f}\n" for i in range(4)))
    report = build_dataset(audio, tmp_path / "data", labels_csv=labels, segment=3.0, jobs=1,
                           test_fraction=0.25, seed=1)
    assert report.done == 12 and report.failed == 0     # 3 clips of 3 s per 10 s file
    with open(tmp_path / "data" / "clips.csv", newline="") as f:
        clips = list(csv.DictReader(f))
    by_file: dict[str, list[dict]] = {}
    for c in clips:
        by_file.setdefault(c["file"], []).append(c)
    for file, cs in by_file.items():
        assert [c["start"] for c in cs] == ["0", "3", "6"]
        assert {c["group"] for c in cs} == {file} and len({c["split"] for c in cs}) == 1
    arr = np.load(next((tmp_path / "data" / "multitask_dataset" / "train").glob("*.npy")))
    assert arr.shape[1] == 1 + 3 * SR // 512
    groups = load_groups(tmp_path / "data")
    assert len(groups) == 12 and len(set(groups.values())) == 4

    from musicaffect.config import load_config
    from musicaffect.data.loading import prepare_data

    cfg = load_config("affect-cnn-full-fused", ["data.tasks=[tension]",
                                                "data.val_fraction=0.34"])
    data = prepare_data(cfg, tmp_path / "data")
    ids = [r.id for r in data.dataset.records]
    tr = {groups[ids[i]] for i in data.train_idx}
    va = {groups[ids[i]] for i in data.val_idx}
    assert tr and va and not tr & va and data.info["grouped_split"]


def test_binary_metrics():
    m = binary_metrics([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9])
    assert m["roc_auc"] == pytest.approx(0.75) and m["balanced_accuracy"] == 0.5
    assert binary_metrics([1, 1], [0.2, 0.8])["roc_auc"] is None
    with pytest.raises(ValueError, match="0 or 1"):
        binary_metrics([0, 2], [0.1, 0.2])
