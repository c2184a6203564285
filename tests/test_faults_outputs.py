"""Issue 15, "nothing overwritten, nothing mixed": one rule for every output folder, folders
held while used, reuse only of what provably belongs.

One test per case of the issue (the data-lost cases first); each failed before the fix.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from musicaffect.cli import main

TINY = ["--preset", "lstm-beat-mel", "--set", "model.params.hidden_size=8",
        "--set", "train.epochs=1", "--set", "train.max_batches_per_epoch=1",
        "--set", "train.batch_size=8", "--no-progress"]


def _user_folder(path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    return path


def _unchanged(path: Path, files: dict[str, str]) -> bool:
    return all((path / n).read_text() == t for n, t in files.items())


def _fake_run(path: Path) -> Path:
    """A folder that is a run folder by its marker (nothing in it is loaded)."""
    path.mkdir(parents=True)
    (path / ".musicaffect-run").write_text("{}\n")
    (path / "config.yaml").write_text("name: mine\n")
    (path / "checkpoints").mkdir()
    return path


# ------------------------------------------------------------------------ data lost (7)

def test_lab_into_a_users_folder_is_refused(sample_root, tmp_path, capsys):
    mine = {"report.md": "my report", "explore/summary.md": "my summary"}
    out = _user_folder(tmp_path / "myproject", mine)
    assert main(["lab", sample_root, "--out", str(out), "--steps", "explore",
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "report.md" in err and "explore" in err
    assert _unchanged(out, mine)
    assert not (out / "lab_state.json").exists()


def test_explore_into_a_users_folder_is_refused(sample_root, tmp_path, capsys):
    mine = {"summary.md": "mine", "summary.json": "{}"}
    out = _user_folder(tmp_path / "dir", mine)
    assert main(["explore", sample_root, "--out", str(out)]) == 2
    assert "summary.md" in capsys.readouterr().err
    assert _unchanged(out, mine)


def test_explore_reruns_into_its_own_folder(sample_root, tmp_path):
    out = tmp_path / "explore"
    assert main(["explore", sample_root, "--out", str(out)]) == 0
    assert main(["explore", sample_root, "--out", str(out), "--seed", "1"]) == 0


def test_evaluate_out_into_a_users_folder_is_refused(tmp_path, capsys):
    mine = {"metrics.json": '{"mine": 1}'}
    out = _user_folder(tmp_path / "dir", mine)
    assert main(["evaluate", str(tmp_path / "run"), str(tmp_path / "data"),
                 "--out", str(out)]) == 2
    assert "metrics.json" in capsys.readouterr().err
    assert _unchanged(out, mine)


def test_sample_data_into_a_users_folder_is_refused(tmp_path, capsys):
    mine = {"SYNTHETIC.txt": "my notes"}
    out = _user_folder(tmp_path / "dir", mine)
    assert main(["sample-data", str(out)]) == 2
    assert "SYNTHETIC.txt" in capsys.readouterr().err
    assert _unchanged(out, mine) and len(list(out.iterdir())) == 1


def test_sample_data_never_writes_into_a_real_data_root(sample_root, tmp_path, capsys):
    root = tmp_path / "kaggle"
    shutil.copytree(sample_root, root, copy_function=os.link)
    (root / "SYNTHETIC.txt").unlink()       # a real (not generated) data root
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    assert main(["sample-data", str(root)]) == 2
    assert "data root" in capsys.readouterr().err
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before


def test_sample_data_rewrites_its_own_root(tmp_path):
    out = tmp_path / "sample"
    assert main(["sample-data", str(out)]) == 0
    assert main(["sample-data", str(out), "--seed", "1"]) == 0


def test_build_dataset_into_a_users_folder_is_refused(tmp_path, capsys):
    mine = {"clips.csv": "mine", "labels.json": "{}", "notes.txt": "x"}
    out = _user_folder(tmp_path / "out", mine)
    audio = tmp_path / "audio"
    audio.mkdir()
    labels = tmp_path / "labels.csv"
    labels.write_text("file,genre\na.wav,rock\n")
    assert main(["build-dataset", str(audio), str(out), "--labels", str(labels)]) == 2
    err = capsys.readouterr().err
    assert "clips.csv" in err and "labels.json" in err
    assert _unchanged(out, mine)


def test_build_dataset_never_writes_into_a_data_root(sample_root, tmp_path, capsys):
    labels = tmp_path / "labels.csv"
    labels.write_text("file,genre\na.wav,rock\n")
    assert main(["build-dataset", str(tmp_path), sample_root, "--labels", str(labels)]) == 2
    assert "data root" in capsys.readouterr().err


@pytest.mark.parametrize("cmd", [
    ["suite", "genre", "DATA", "--out", "OUT", "--budget", "tiny", "--no-progress"],
    ["cv", "DATA", "--presets", "classical-logreg", "--out", "OUT", "--folds", "2"],
])
def test_suite_and_cv_into_a_users_folder_are_refused(cmd, sample_root, tmp_path, capsys):
    mine = {"results.md": "mine"}
    out = _user_folder(tmp_path / "dir", mine)
    argv = [{"DATA": sample_root, "OUT": str(out)}.get(a, a) for a in cmd]
    assert main(argv) == 2
    assert "results.md" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["results.md"]


def test_a_refused_cv_leaves_no_out_folder(sample_root, tmp_path):
    out = tmp_path / "cv"
    assert main(["cv", sample_root, "--presets", "classical-logreg", "--folds", "1",
                 "--out", str(out)]) == 2
    assert not out.exists()


def test_train_overwrite_replaces_only_a_run(tmp_path, sample_root, capsys):
    lab = tmp_path / "lab"
    lab.mkdir()
    (lab / ".musicaffect-lab").write_text("{}")
    (lab / "lab_state.json").write_text("{}")
    assert main(["train", sample_root, "--out", str(lab), "--overwrite", *TINY]) == 2
    assert (lab / "lab_state.json").read_text() == "{}"


# ------------------------------------------------------------------------ held folders

HOLD = """
import sys, time
from musicaffect.outputs import hold_folder
hold_folder(sys.argv[1])
print("held", flush=True)
time.sleep(60)
"""


@pytest.fixture
def held(tmp_path):
    """A run folder held by another live process; yields (folder, that process)."""
    run = _fake_run(tmp_path / "run")
    (run / "checkpoints" / "last.pt").write_bytes(b"x")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(run)], stdout=subprocess.PIPE,
                            text=True, env=env)
    assert proc.stdout.readline().strip() == "held"
    yield run, proc
    proc.kill()
    proc.wait()


@pytest.mark.parametrize("flag", [[], ["--overwrite"], ["--resume"]])
def test_a_held_run_folder_is_refused_naming_the_holder(held, flag, sample_root, capsys):
    run, proc = held
    assert main(["train", sample_root, "--out", str(run), *flag, *TINY]) == 2
    err = capsys.readouterr().err
    assert "in use" in err and f"pid {proc.pid}" in err and "started" in err
    assert (run / "checkpoints" / "last.pt").read_bytes() == b"x"


def test_a_killed_holder_frees_the_folder(held):
    from musicaffect.outputs import check_not_held, holder

    run, proc = held
    assert holder(run)["pid"] == proc.pid
    proc.kill()
    proc.wait()
    assert holder(run) is None
    check_not_held(run)


def test_a_held_lab_folder_is_refused(tmp_path, sample_root, capsys):
    out = tmp_path / "lab"
    out.mkdir()
    (out / ".musicaffect-lab").write_text("{}")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE,
                            text=True, env=env)
    try:
        assert proc.stdout.readline().strip() == "held"
        assert main(["lab", sample_root, "--out", str(out), "--steps", "explore",
                     "--no-progress"]) == 2
        assert f"pid {proc.pid}" in capsys.readouterr().err
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.slow
def test_two_train_processes_on_one_out(sample_root, tmp_path):
    """Two real `train` commands on one --out: the second is refused naming the first, and
    the first run is intact (it is stopped with Ctrl-C afterwards: its files agree)."""
    import signal

    import torch
    import yaml

    from musicaffect.outputs import holder

    run = tmp_path / "run"
    argv = [sys.executable, "-m", "musicaffect", "train", sample_root, "--out", str(run),
            "--preset", "lstm-beat-mel", "--set", "model.params.hidden_size=8",
            "--set", "train.epochs=5000", "--set", "train.patience=100000",
            "--set", "train.max_batches_per_epoch=1", "--set", "train.batch_size=8",
            "--no-progress"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    first = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 180
        while not (run / "checkpoints" / "last.pt").is_file() or holder(run) is None:
            assert first.poll() is None and time.time() < deadline
            time.sleep(0.05)
        second = subprocess.run([*argv, "--set", "seed=1"], env=env, capture_output=True,
                                text=True, timeout=300)
        assert first.poll() is None, "the first run ended before the second was refused"
        for flag in ("--overwrite", "--resume"):
            other = subprocess.run([*argv, flag], env=env, capture_output=True, text=True,
                                   timeout=300)
            assert other.returncode == 2 and "in use" in other.stderr, other.stderr
        first.send_signal(signal.SIGINT)
        assert first.wait(timeout=120) == 130
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert second.returncode == 2, second.stderr
    assert f"pid {first.pid}" in second.stderr and "in use" in second.stderr
    assert json.loads((run / ".musicaffect-run").read_text())["pid"] == first.pid
    seed = _cfg().seed       # the first run's (the second asked for seed=1)
    assert seed != 1 and yaml.safe_load((run / "config.yaml").read_text())["seed"] == seed
    last = torch.load(run / "checkpoints" / "last.pt", weights_only=False)
    best = torch.load(run / "checkpoints" / "best.pt", weights_only=False)
    assert last["config"]["seed"] == best["config"]["seed"] == seed
    rows = (run / "metrics.csv").read_text().strip().splitlines()[1:]
    assert len(rows) in (len(last["history"]), len(last["history"]) + 1)


# ------------------------------------------------------------------------ reuse

def test_resume_on_other_data_is_refused_naming_both(sample_root, tmp_path):
    from musicaffect.errors import RunError
    from musicaffect.training.rundir import RunClaim, plan_run_dir

    other = tmp_path / "other"
    shutil.copytree(sample_root, other, copy_function=os.link)
    (other / "fma_genre_spectrograms" / "train_labels.txt").unlink()
    run = tmp_path / "run"
    claim = RunClaim(plan_run_dir(run, data_root=sample_root))
    claim.claim(_cfg())
    (run / "checkpoints" / "last.pt").write_bytes(b"x")
    claim.commit()
    plan_run_dir(run, data_root=sample_root, resume=True)   # same data: fine
    with pytest.raises(RunError) as err:
        plan_run_dir(run, data_root=other, resume=True)
    assert str(Path(sample_root).resolve()) in str(err.value)
    assert str(other.resolve()) in str(err.value)


def test_resume_on_changed_data_is_refused(sample_root, tmp_path):
    from musicaffect.errors import RunError
    from musicaffect.training.rundir import RunClaim, plan_run_dir

    data = tmp_path / "data"
    shutil.copytree(sample_root, data, copy_function=os.link)
    run = tmp_path / "run"
    RunClaim(plan_run_dir(run, data_root=data)).claim(_cfg())
    (run / "checkpoints" / "last.pt").write_bytes(b"x")
    labels = data / "fma_genre_spectrograms" / "train_labels.txt"
    lines = labels.read_text().splitlines()
    labels.unlink()
    labels.write_text("\n".join(lines[:-1]) + "\n")     # one clip fewer
    with pytest.raises(RunError, match="changed"):
        plan_run_dir(run, data_root=data, resume=True)


def _cfg():
    from musicaffect.config import load_config

    return load_config("lstm-beat-mel", [])


@pytest.mark.slow
def test_cv_with_another_split_seed_retrains_every_fold(sample_root, tmp_path, capsys):
    out = tmp_path / "cv"
    argv = ["cv", sample_root, "--presets", "classical-logreg", "--folds", "2",
            "--budget", "tiny", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    runs = sorted(out.glob("folds/fold-*/seed-0/classical-logreg"))
    assert len(runs) == 2
    stamps = [(r / "summary.json").stat().st_mtime_ns for r in runs]
    assert main(argv) == 0              # same split: every fold reused
    assert [(r / "summary.json").stat().st_mtime_ns for r in runs] == stamps
    capsys.readouterr()
    assert main([*argv, "--split-seed", "1"]) == 0
    assert [(r / "summary.json").stat().st_mtime_ns for r in runs] != stamps
    assert all((r / "summary.json").stat().st_mtime_ns != s for r, s in zip(runs, stamps))
    notes = [ln for ln in capsys.readouterr().err.splitlines() if "not reused" in ln]
    assert len(notes) == 2 and all("changed since it was trained" in n for n in notes)


def test_build_dataset_resume_recomputes_a_clip_whose_audio_changed(tmp_path):
    import numpy as np
    import soundfile as sf

    from musicaffect.features.build import build_dataset

    sr = 22050
    audio = tmp_path / "audio"
    audio.mkdir()
    t = np.arange(6 * sr) / sr
    for i, f in enumerate((220.0, 330.0, 440.0)):
        sf.write(audio / f"s{i}.wav", (0.3 * np.sin(2 * np.pi * f * t)).astype(np.float32), sr)
    labels = tmp_path / "labels.csv"
    labels.write_text("file,genre,split\ns0.wav,a,train\ns1.wav,b,train\ns2.wav,a,test\n")
    out = tmp_path / "data"
    kw = dict(labels_csv=labels, jobs=1, clip_seconds=6.0)
    assert build_dataset(audio, out, **kw).done == 3
    rep = build_dataset(audio, out, **kw)
    assert (rep.done, rep.skipped) == (0, 3)
    clip = next((out / "fma_genre_spectrograms" / "test").glob("*.npy"))
    before = np.load(clip)
    noise = np.random.default_rng(0).standard_normal(len(t)).astype(np.float32)
    sf.write(audio / "s2.wav", 0.3 * noise, sr)
    rep = build_dataset(audio, out, **kw)
    assert (rep.done, rep.skipped) == (1, 2)
    assert not np.allclose(np.load(clip), before)


# ------------------------------------------------------------------------ named errors

def test_base_cycles_are_named(tmp_path, capsys):
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text(f"base: {b}\ntrain: {{lr: 0.001}}\n")
    b.write_text(f"base: {a}\n")
    assert main(["train", str(tmp_path), "--config", str(a)]) == 2
    err = capsys.readouterr().err
    assert "loops back" in err and "a.yaml" in err and "b.yaml" in err


@pytest.mark.parametrize("err", [
    OSError(28, "No space left on device", "/full/run/checkpoints/last.pt"),
    RuntimeError("[enforce fail at inline_container.cc:603] . unexpected pos 64 vs 0"),
    OSError(30, "Read-only file system", "/ro/run/config.yaml"),
])
def test_full_or_read_only_disks_are_named(err, sample_root, tmp_path, monkeypatch, capsys):
    import musicaffect.training.engine as engine

    def fail(*a, **k):
        raise err

    monkeypatch.setattr(engine, "fit", fail)
    out = tmp_path / "run"
    assert main(["train", sample_root, "--out", str(out), *TINY]) == 2
    msg = capsys.readouterr().err
    assert "nothing finished was lost" in msg and "unexpected" not in msg
    assert (getattr(err, "filename", None) or str(out)) in msg
    assert ("full" in msg) if "28" in str(err) or "inline" in str(err) else ("read-only" in msg)


def test_a_read_only_cache_folder_reads_without_a_cache(sample_root, tmp_path, monkeypatch,
                                                         caplog):
    import errno

    import numpy as np

    from musicaffect.data.cache import ClipStore

    split = Path(sample_root) / "fma_genre_spectrograms_beat" / "train"
    cached = ClipStore(split, cache_dir=tmp_path / "ok", progress=False)

    def read_only(self, *a, **k):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(ClipStore, "_build", read_only)
    store = ClipStore(split, cache_dir=tmp_path / "ro", progress=False)
    assert "without a cache" in caplog.text
    assert store.ids == cached.ids and (store.lengths == cached.lengths).all()
    cid = store.ids[3]
    assert np.array_equal(store.get(cid), cached.get(cid))
    assert np.array_equal(store.get(cid, rows=slice(0, 128)), cached.get(cid, rows=slice(0, 128)))


def test_single_genre_data_is_named_for_deep_presets(sample_root, tmp_path, capsys):
    from dataclasses import replace

    from musicaffect.data.vocab import lab_vocabulary

    root = tmp_path / "one"
    shutil.copytree(sample_root, root, copy_function=os.link)
    for rate in ("fma_genre_spectrograms", "fma_genre_spectrograms_beat"):
        for split in ("train", "test"):
            f = root / rate / f"{split}_labels.txt"
            lines = f.read_text().splitlines()
            f.unlink()
            f.write_text("\n".join([lines[0]] + [ln for ln in lines[1:]
                                                  if ln.endswith("\tBlues")]) + "\n")
    replace(lab_vocabulary(), classes=("Blues",), mapping={"Blues": "Blues"},
            genre_map="none", source="own").write(root)
    assert main(["train", str(root), "--out", str(tmp_path / "run"), *TINY,
                 "--set", "data.val_fraction=0.5"]) == 2
    assert "single genre class" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_an_impossible_stratified_split_falls_back(caplog):
    import numpy as np

    from musicaffect.data.splits import train_val_split

    labels = np.repeat(np.arange(10), 4)          # 40 clips, 10 classes: 8 val < 10 classes
    tr, va = train_val_split(40, val_fraction=0.2, seed=0, stratify=labels)
    assert len(va) == 8 and len(tr) == 32 and not set(tr) & set(va)
    assert "unstratified" in caplog.text
    groups = np.repeat(np.arange(20), 2)
    tr, va = train_val_split(40, val_fraction=0.2, seed=0, stratify=np.arange(40) % 10,
                             groups=groups)
    assert len(va) and not set(groups[tr]) & set(groups[va])


# ------------------------------------------------------------------------ predict

@pytest.fixture(scope="module")
def tiny_run(sample_root, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("outputs") / "run"
    assert main(["train", sample_root, "--out", str(run), *TINY]) == 0
    return run


def test_ensemble_into_a_trained_run_is_refused(tiny_run, tmp_path, capsys):
    run = _fake_run(tmp_path / "run")
    assert main(["ensemble", str(tiny_run), str(tiny_run), "--out", str(run)]) == 2
    assert "run folder" in capsys.readouterr().err
    assert (run / "config.yaml").read_text() == "name: mine\n"
    assert not (run / "ensemble.json").exists()
    ens = tmp_path / "ens"
    assert main(["ensemble", str(tiny_run), str(tiny_run), "--out", str(ens)]) == 0
    assert main(["ensemble", str(tiny_run), "--out", str(ens)]) == 0   # its own kind


@pytest.fixture(scope="module")
def songs(tmp_path_factory) -> tuple[Path, Path]:
    import numpy as np
    import soundfile as sf

    folder = tmp_path_factory.mktemp("songs")
    sr = 44100
    t = np.arange(6 * sr) / sr
    good = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    sf.write(folder / "good.wav", np.stack([good, good], 1), sr, subtype="FLOAT")
    bad = good.copy()
    bad[1000:1010] = np.nan
    bad[5000] = np.inf
    sf.write(folder / "bad.wav", np.stack([bad, bad], 1), sr, subtype="FLOAT")
    return folder / "good.wav", folder / "bad.wav"


def test_non_finite_audio_is_a_per_file_error(tiny_run, songs, capsys):
    good, bad = songs
    assert main(["predict", str(tiny_run), str(bad), str(good), "--format", "json"]) == 1
    out = json.loads(capsys.readouterr().out)
    by_file = {Path(p["file"]).name: p for p in out}
    assert "NaN or infinite" in by_file["bad.wav"]["error"]
    assert not by_file["good.wav"].get("error") and by_file["good.wav"]["genre"]


@pytest.mark.parametrize("opt", [["--threshold", "nan"], ["--threshold", "1.5"],
                                 ["--threshold", "-0.1"], ["--top", "-5"], ["--top", "0"]])
def test_predict_options_are_checked(opt, tiny_run, songs, capsys):
    assert main(["predict", str(tiny_run), str(songs[0]), *opt]) == 2
    assert opt[0] in capsys.readouterr().err


def test_predict_out_takes_the_format_from_its_suffix(tiny_run, songs, tmp_path):
    assert main(["predict", str(tiny_run), str(songs[0]), "--out", str(tmp_path / "p.json")]) == 0
    assert json.loads((tmp_path / "p.json").read_text())[0]["genre"]
    assert main(["predict", str(tiny_run), str(songs[0]), "--out", str(tmp_path / "p.csv")]) == 0
    assert (tmp_path / "p.csv").read_text().startswith("file,")
    assert main(["predict", str(tiny_run), str(songs[0]), "--out", str(tmp_path / "p.json"),
                 "--format", "table"]) == 0
    assert not (tmp_path / "p.json").read_text().lstrip().startswith("[")


def test_a_failed_predict_out_leaves_no_empty_file(tiny_run, songs, tmp_path, monkeypatch,
                                                   capsys):
    import errno

    from musicaffect.cli import predict_cmds

    def full(out, *a, **k):
        out.write("x")
        raise OSError(errno.ENOSPC, "No space left on device")

    real = predict_cmds._write
    monkeypatch.setattr(predict_cmds, "_write",
                        lambda out, *a: full(out) if out is not sys.stdout else real(out, *a))
    target = tmp_path / "p.json"
    assert main(["predict", str(tiny_run), str(songs[0]), "--out", str(target)]) == 2
    assert not target.exists() and list(tmp_path.iterdir()) == []
    assert "genre" in capsys.readouterr().out      # the predictions were printed instead


def test_export_of_a_classical_run_says_so(tmp_path, capsys):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "best.classical.json").write_text("{}")
    assert main(["export", str(run)]) == 2
    err = capsys.readouterr().err
    assert "classical" in err and "train first" not in err


def test_warnings_are_one_line_without_source_paths(tmp_path, capsys, monkeypatch):
    import warnings

    from musicaffect.cli import predict_cmds

    def warn(args):
        warnings.warn("Spearman's rho of fewer than 2 values is undefined", RuntimeWarning,
                      stacklevel=1)
        return 0

    monkeypatch.setattr(predict_cmds, "cmd_predict", warn)
    parser_main = main(["predict", "x"])
    err = capsys.readouterr().err
    assert parser_main == 0 and "undefined" in err and ".py:" not in err


# ------------------------------------------------------------------------ the lab on small data

LAB10 = ("Blues", "Classical", "Electronic", "Folk", "Hip-Hop", "Jazz", "Metal", "Pop", "Rock",
         "Trip-Hop")


def _small_root(src: str, dst: Path) -> Path:
    """40 training clips in the 10 lab classes (4 each), Kaggle layout: 8 validation clips
    cannot hold all 10 classes, so a stratified split is impossible."""
    shutil.copytree(src, dst, copy_function=os.link)
    for rate in ("fma_genre_spectrograms", "fma_genre_spectrograms_beat"):
        for split in ("train", "test"):
            f = dst / rate / f"{split}_labels.txt"
            lines = f.read_text().splitlines()
            f.unlink()
            f.write_text("\n".join([lines[0]] + [ln for ln in lines[1:]
                                                  if ln.split("\t")[1] in LAB10]) + "\n")
    for rate in ("multitask_dataset", "multitask_dataset_beat"):
        f = dst / rate / "train_labels.txt"
        lines = f.read_text().splitlines()
        f.unlink()
        f.write_text("\n".join(lines[:41]) + "\n")
    return dst


def test_a_failing_preset_is_a_row_and_lab_exits_non_zero(sample_root, tmp_path,
                                                          monkeypatch, capsys):
    from musicaffect import suites

    monkeypatch.setattr(suites, "genre_references", lambda: {
        "no-such-preset": ("broken", "-", None, None),
        "classical-logreg": ("classical", "fused statistics", None, None)})
    out = tmp_path / "lab"
    assert main(["lab", sample_root, "--out", str(out), "--steps", "genre",
                 "--budget", "tiny", "--no-progress"]) == 1
    printed = capsys.readouterr().out
    assert "failed: genre/no-such-preset" in printed
    state = json.loads((out / "lab_state.json").read_text())["steps"]["genre"]
    rows = {r["experiment"]: r for r in state["table"]["rows"]}
    assert "unknown preset" in rows["no-such-preset"]["error"]
    assert rows["classical-logreg"]["accuracy"] is not None
    assert "no-such-preset" in (out / "report.md").read_text()


@pytest.mark.slow
def test_lab_on_40_clips_finishes_every_step(sample_root, tmp_path, capsys):
    from musicaffect.suites import GENRE_SUITE

    root = _small_root(sample_root, tmp_path / "small")
    out = tmp_path / "lab"
    assert main(["lab", str(root), "--out", str(out), "--budget", "quick",
                 "--no-progress"]) == 0
    steps = json.loads((out / "lab_state.json").read_text())["steps"]
    assert {s: v["status"] for s, v in steps.items()} == {s: "done" for s in steps}
    rows = steps["genre"]["table"]["rows"]
    assert [r["experiment"] for r in rows] == list(GENRE_SUITE)
    assert all(r["accuracy"] is not None and not r.get("error") for r in rows)


def test_a_finished_run_is_given_back(tiny_run):
    from musicaffect import outputs

    assert (tiny_run / outputs.LOCK_FILE).is_file()      # it was held while training
    assert str(tiny_run.resolve()) not in outputs._HELD  # and given back at the end
