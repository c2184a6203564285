"""Faults a new user makes, each ending cleanly (issue 9: nothing lost, nothing silently wrong).

One test per case, grouped as in the issue: data lost, silent wrong results, tracebacks,
smaller ones; then output paths, the crash-free entry point and the SIGKILL fault injection.
Private copies of the sample data are hard links (fast); a test that corrupts a clip replaces
the link, never the shared file.
"""

from __future__ import annotations

import csv
import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from musicaffect.cli import main

TINY = ["--preset", "lstm-beat-mel", "--set", "model.params.hidden_size=8",
        "--set", "train.epochs=1", "--set", "train.max_batches_per_epoch=1",
        "--set", "train.batch_size=8", "--no-progress"]


def _copy_data(src: str, dst: Path) -> Path:
    """A private copy of a data root made of hard links (replace files, never edit them)."""
    shutil.copytree(src, dst, copy_function=os.link)
    return dst


def _replace(path: Path, data: bytes) -> None:
    path.unlink()
    path.write_bytes(data)


def _weights(run: Path, which: str = "last") -> dict:
    return torch.load(run / "checkpoints" / f"{which}.pt", weights_only=True)["state_dict"]


def _same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.allclose(a[k], b[k], rtol=0, atol=1e-6)
                                        for k in a)


@pytest.fixture(scope="module")
def run_dir(sample_root, tmp_path_factory) -> Path:
    """One tiny finished genre run, shared read-only by the tests of this file."""
    run = tmp_path_factory.mktemp("faults") / "run"
    assert main(["train", sample_root, "--out", str(run), *TINY]) == 0
    return run


# ------------------------------------------------------------------------ data lost (2)

def test_overwrite_with_missing_data_root_keeps_the_run(run_dir, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    before = _weights(run)
    assert main(["train", str(tmp_path / "no-such-root"), "--out", str(run), "--overwrite",
                 *TINY]) == 2
    assert "data root does not exist" in capsys.readouterr().err
    assert _same_weights(_weights(run), before)
    assert (run / "config.yaml").is_file() and (run / "metrics.csv").is_file()


def test_overwrite_refuses_data_root_its_parents_cwd_and_foreign_folders(
        sample_root, run_dir, tmp_path, monkeypatch, capsys):
    root = _copy_data(sample_root, tmp_path / "holder" / "data")
    n_files = sum(1 for _ in root.rglob("*"))
    for out in (root, tmp_path / "holder"):
        assert main(["train", str(root), "--out", str(out), "--overwrite", *TINY]) == 2
        assert str(out) in capsys.readouterr().err
    assert sum(1 for _ in root.rglob("*")) == n_files
    # a folder that is not a run is never emptied
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("months of work")
    assert main(["train", sample_root, "--out", str(foreign), "--overwrite", *TINY]) == 2
    assert "not a musicaffect run folder" in capsys.readouterr().err
    assert (foreign / "thesis.tex").read_text() == "months of work"
    # the current directory, even when it is a run folder
    run = tmp_path / "cwd-run"
    shutil.copytree(run_dir, run)
    monkeypatch.chdir(run)
    assert main(["train", sample_root, "--out", ".", "--overwrite", *TINY]) == 2
    assert "current directory" in capsys.readouterr().err
    assert (run / "checkpoints" / "last.pt").is_file()


@pytest.mark.parametrize("preset", ["classical-logreg", "ensemble-genre"])
def test_models_without_epochs_follow_the_same_folder_rules(preset, sample_root, tmp_path,
                                                             capsys):
    """Classical and ensemble runs (no epochs, no Fabric) check their folder as deep runs
    do: the data root and foreign folders are never replaced (the ensemble used to
    ``rmtree`` its --out)."""
    root = _copy_data(sample_root, tmp_path / "data")
    n_files = sum(1 for _ in root.rglob("*"))
    assert main(["train", str(root), "--preset", preset, "--out", str(root),
                 "--overwrite"]) == 2
    assert sum(1 for _ in root.rglob("*")) == n_files
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep")
    assert main(["train", str(root), "--preset", preset, "--out", str(foreign),
                 "--overwrite"]) == 2
    assert (foreign / "notes.txt").read_text() == "keep"
    capsys.readouterr()


def test_overwrite_keeps_the_old_run_until_the_new_one_has_a_checkpoint(
        sample_root, run_dir, tmp_path, monkeypatch, capsys):
    from musicaffect.training import engine

    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    before = _weights(run)

    def boom(*args, **kwargs):
        raise RuntimeError("disk on fire during the first validation")

    monkeypatch.setattr(engine, "predict_outputs", boom)
    assert main(["train", sample_root, "--out", str(run), "--overwrite", *TINY,
                 "--seed", "7"]) == 3
    assert _same_weights(_weights(run), before)                 # the old run is untouched
    assert [p.name for p in tmp_path.iterdir()] == ["run"]      # no staging folder left
    monkeypatch.undo()
    capsys.readouterr()
    assert main(["train", sample_root, "--out", str(run), "--overwrite", *TINY,
                 "--set", "train.epochs=2", "--seed", "7"]) == 0
    assert not _same_weights(_weights(run), before)             # replaced now
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    # the TensorBoard log followed the run into place (epoch 1 before, epoch 2 after)
    assert len(list((run / "tensorboard").glob("events.*"))) == 2
    assert "Exception" not in capsys.readouterr().err


# ------------------------------------------------------------------ silent wrong results

def test_submit_never_drops_a_test_clip(sample_root, tmp_path, capsys):
    root = _copy_data(sample_root, tmp_path / "data")
    bad = sorted((root / "multitask_dataset_beat" / "test").iterdir())[3]
    _replace(bad, b"\x93NUMPY garbage")
    run = tmp_path / "mt"
    assert main(["train", str(root), "--preset", "multitask-cnn", "--out", str(run),
                 "--set", "data.rate=beat", "--set", "model.params.channels=[4,8,8,8]",
                 "--set", "model.params.embed_dim=8", "--set", "train.epochs=1",
                 "--set", "train.max_batches_per_epoch=1", "--skip-bad", "--no-progress",
                 "--set", f"data.cache_dir={tmp_path / 'cache'}"]) == 0
    capsys.readouterr()
    out = tmp_path / "solution.csv"
    assert main(["submit", str(run), str(root), "--out", str(out)]) == 2
    assert bad.name in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("override, needle", [
    ("train.max_batches_per_epoch=0", "train.max_batches_per_epoch"),
    ("data.max_length=0", "data.max_length"),
    ("train.patience=-1", "train.patience"),
    ("train.lr=.nan", "train.lr"),
    ("train.grad_clip=0", "train.grad_clip"),
    ("data.num_workers=-2", "data.num_workers"),
    ("loss.label_smoothing=1.5", "loss.label_smoothing"),
    ("seed=-1", "seed"),
    ("train.devices=0", "train.devices"),
])
def test_numeric_config_keys_are_range_checked(sample_root, tmp_path, capsys, override,
                                                needle):
    run = tmp_path / "run"
    assert main(["train", sample_root, "--out", str(run), *TINY, "--set", override]) == 2
    assert needle in capsys.readouterr().err
    assert not run.exists()


def test_zero_training_batches_is_an_error(sample_root, tmp_path):
    from musicaffect.config import load_config
    from musicaffect.data.loading import prepare_data
    from musicaffect.errors import RunError
    from musicaffect.training.engine import _check_batches

    cfg = load_config("lstm-beat-mel", ["train.batch_size=64"])
    data = prepare_data(cfg, sample_root)
    _check_batches(cfg, data, 1)
    with pytest.raises(RunError, match="zero batches"):
        _check_batches(cfg, data, 4)   # DDP drops the incomplete global batch of 4 x 64


def _source_and_store(sample_root, tmp_path):
    from musicaffect.data.cache import ClipStore

    src = Path(sample_root) / "multitask_dataset_beat" / "train"
    return src, ClipStore(src, cache_dir=tmp_path / "cache", progress=False)


@pytest.mark.parametrize("fill", ["finite", "nan"])
def test_corrupt_cache_is_detected_and_rebuilt(sample_root, tmp_path, caplog, fill):
    from musicaffect.data.arrays import load_array
    from musicaffect.data.cache import DATA_FILE, ClipStore

    src, store = _source_and_store(sample_root, tmp_path)
    cid = store.ids[5]
    path = store.path / DATA_FILE
    store.close()
    size = path.stat().st_size
    junk = (np.random.default_rng(1).normal(size=size // 4) if fill == "finite"
            else np.full(size // 4, np.nan))
    path.write_bytes(junk.astype(np.float32).tobytes())     # same size, other values
    with caplog.at_level(logging.WARNING):
        again = ClipStore(src, cache_dir=tmp_path / "cache", progress=False)
    assert "corrupt" in caplog.text and "rebuilding" in caplog.text
    assert again.built and again.repaired
    expected = load_array(again.source / again.sources[cid]).T
    np.testing.assert_array_equal(again.get(cid), expected)
    again.close()


def test_cache_verify_command_checks_every_clip(sample_root, tmp_path, monkeypatch, capsys):
    from musicaffect.data.cache import DATA_FILE

    monkeypatch.setenv("MUSICAFFECT_CACHE", str(tmp_path / "cache"))
    src, store = _source_and_store(sample_root, tmp_path)
    path = store.path / DATA_FILE
    k = 7
    start = int(store.offsets[k]) * 140 * 4
    store.close()
    raw = bytearray(path.read_bytes())
    raw[start:start + 4] = np.float32(123.0).tobytes()      # one value of one clip
    path.unlink()
    path.write_bytes(bytes(raw))
    assert main(["cache", "--verify", sample_root]) == 0
    out = capsys.readouterr().out
    assert "CORRUPT" in out and "rebuilt" in out
    assert main(["cache", "--verify", sample_root]) == 0
    assert "CORRUPT" not in capsys.readouterr().out


def test_nan_in_the_statistics_names_the_clip(sample_root, tmp_path, monkeypatch):
    from musicaffect.config import load_config
    from musicaffect.data.cache import ClipStore
    from musicaffect.data.loading import prepare_data
    from musicaffect.errors import DataError
    from musicaffect.training.engine import build_run_model

    cfg = load_config("lstm-beat-mel", [f"data.cache_dir={tmp_path / 'cache'}"])
    data = prepare_data(cfg, sample_root)
    victim = data.dataset.records[int(data.train_idx[3])]
    real_get = ClipStore.get

    def get(self, cid, *, rows=None):   # a corruption that happened after the open check
        out = real_get(self, cid, rows=rows)
        return np.full_like(out, np.nan) if cid == victim.id else out

    monkeypatch.setattr(ClipStore, "get", get)
    with pytest.raises(DataError, match=f"clip {victim.id} .*NaN") as err:
        build_run_model(cfg, data)
    assert str(victim.path) in str(err.value)


def test_failed_run_leaves_no_folder_and_a_rerun_works(sample_root, tmp_path, monkeypatch):
    from musicaffect.training import engine
    from musicaffect.training.rundir import MARKER

    run = tmp_path / "run"
    assert main(["train", str(tmp_path / "missing"), "--out", str(run), *TINY]) == 2
    assert not run.exists()

    def boom(*args, **kwargs):
        raise RuntimeError("failure in epoch 1")

    monkeypatch.setattr(engine, "predict_outputs", boom)
    assert main(["train", sample_root, "--out", str(run), *TINY]) == 3
    assert not run.exists()
    monkeypatch.undo()
    # what SIGKILL before the first checkpoint leaves: marker + config, no checkpoint
    (run / "checkpoints").mkdir(parents=True)
    (run / MARKER).write_text("{}")
    (run / "config.yaml").write_text("name: x\n")
    assert main(["train", sample_root, "--out", str(run), *TINY]) == 0
    assert (run / "checkpoints" / "last.pt").is_file()


def test_resume_after_interrupt_in_epoch_1_starts_from_scratch(sample_root, tmp_path,
                                                               monkeypatch, capsys):
    from musicaffect.training import engine

    run = tmp_path / "run"

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(engine, "predict_outputs", interrupt)
    assert main(["train", sample_root, "--out", str(run), *TINY]) == 130
    monkeypatch.undo()
    assert "rerun with --resume" in capsys.readouterr().err
    assert main(["train", sample_root, "--out", str(run), "--resume", *TINY]) == 0
    assert "starting from scratch" in capsys.readouterr().err
    assert (run / "checkpoints" / "last.pt").is_file()


# ----------------------------------------------------------------------------- tracebacks

def test_resume_with_changed_config_is_refused_with_a_diff(sample_root, run_dir, tmp_path,
                                                           capsys):
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    assert main(["train", sample_root, "--out", str(run), "--resume", *TINY,
                 "--set", "model.params.hidden_size=12", "--set", "train.lr=0.01"]) == 2
    err = capsys.readouterr().err
    assert "model.params.hidden_size: 8 -> 12" in err and "train.lr: 0.001 -> 0.01" in err
    assert "Traceback" not in err
    # allowed keys (more epochs, more patience) resume
    assert main(["train", sample_root, "--out", str(run), "--resume", *TINY,
                 "--set", "train.epochs=2", "--set", "train.patience=9"]) == 0
    assert torch.load(run / "checkpoints" / "last.pt", weights_only=True)["epoch"] == 1


def test_resume_with_a_checkpoint_that_does_not_fit_is_a_named_error(sample_root, run_dir,
                                                                     tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    last = run / "checkpoints" / "last.pt"
    ckpt = torch.load(last, weights_only=True)
    ckpt["state_dict"] = {k: v[..., :1] for k, v in ckpt["state_dict"].items()}
    torch.save(ckpt, last)
    assert main(["train", sample_root, "--out", str(run), "--resume", *TINY]) == 2
    assert "does not fit this run's model" in capsys.readouterr().err


def _labels_csv(path: Path, files: list[str]) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "genre"])
        w.writerows([name, "Rock"] for name in files)
    return path


def test_build_dataset_out_under_a_file(tmp_path, capsys):
    (tmp_path / "audio").mkdir()
    (tmp_path / "afile").write_text("x")
    csv_path = _labels_csv(tmp_path / "labels.csv", ["a.wav"])
    assert main(["build-dataset", str(tmp_path / "audio"), str(tmp_path / "afile" / "out"),
                 "--labels", str(csv_path)]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err


@pytest.fixture(scope="module")
def song(tmp_path_factory) -> Path:
    import soundfile as sf

    sr = 22050
    t = np.arange(6 * sr) / sr
    path = tmp_path_factory.mktemp("song") / "song.wav"
    sf.write(path, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), sr)
    return path


def test_predict_out_is_checked_first_and_missing_folders_are_made(run_dir, song, tmp_path,
                                                                  monkeypatch, capsys):
    from musicaffect import predict

    (tmp_path / "afile").write_text("x")
    calls = []
    real = predict.load_models
    monkeypatch.setattr(predict, "load_models",
                        lambda p, **kw: calls.append(p) or real(p, **kw))
    assert main(["predict", str(run_dir), str(song), "--out",
                 str(tmp_path / "afile" / "p.json")]) == 2
    assert "afile is a file" in capsys.readouterr().err and not calls
    out = tmp_path / "missing_dir" / "p.json"
    assert main(["predict", str(run_dir), str(song), "--format", "json", "--out",
                 str(out)]) == 0
    assert "genre" in out.read_text()


def test_export_out_under_a_file(run_dir, tmp_path, capsys):
    (tmp_path / "existing_file").write_text("x")
    assert main(["export", str(run_dir), "--format", "torchscript", "--out",
                 str(tmp_path / "existing_file" / "x.pt")]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err


# --------------------------------------------------------------------------------- smaller

def test_predict_on_a_directory_says_so(run_dir, tmp_path, capsys):
    (tmp_path / "songs").mkdir()
    assert main(["predict", str(run_dir), str(tmp_path / "songs")]) == 2
    err = capsys.readouterr().err
    assert "is a folder, not an audio file" in err and "does not exist" not in err


def test_evaluate_a_loose_checkpoint_writes_next_to_it(run_dir, sample_root, tmp_path):
    loose = tmp_path / "some" / "dir"
    loose.mkdir(parents=True)
    shutil.copy(run_dir / "checkpoints" / "best.pt", loose / "model.pt")
    assert main(["evaluate", str(loose / "model.pt"), sample_root]) == 0
    assert (loose / "eval" / "genre-beat-test" / "metrics.json").is_file()
    assert not (tmp_path / "some" / "eval").exists()


@pytest.mark.parametrize("content", ["garbage", "pickle"])
def test_garbage_checkpoint_never_suggests_weights_only_false(tmp_path, sample_root, capsys,
                                                              content):
    path = tmp_path / "model.pt"
    if content == "garbage":
        path.write_bytes(b"not a checkpoint at all" * 10)
    else:
        torch.save({"callable": shutil.rmtree}, path)
    assert main(["evaluate", str(path), sample_root]) == 2
    err = capsys.readouterr().err
    assert "cannot read checkpoint" in err and "weights_only" not in err


def test_build_dataset_refuses_rows_outside_audio_dir(tmp_path, capsys):
    (tmp_path / "audio").mkdir()
    csv_path = _labels_csv(tmp_path / "labels.csv", ["ok.wav", "../outside/x.wav"])
    assert main(["build-dataset", str(tmp_path / "audio"), str(tmp_path / "out"),
                 "--labels", str(csv_path)]) == 2
    err = capsys.readouterr().err
    assert "labels.csv:3" in err and "outside the audio folder" in err
    assert not (tmp_path / "out").exists()


def test_export_without_the_extra_names_it(run_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "onnx", None)     # import onnx -> ImportError
    assert main(["export", str(run_dir), "--out", str(tmp_path / "m.onnx")]) == 2
    assert "pip install 'musicaffect[export]'" in capsys.readouterr().err


# -------------------------------------------------------------------- output paths, entry

@pytest.mark.parametrize("cmd", [
    lambda r, d, bad: ["evaluate", str(r), d, "--out", str(bad / "ev")],
    lambda r, d, bad: ["submit", str(r), d, "--out", str(bad / "s.csv")],
    lambda r, d, bad: ["lab", d, "--out", str(bad / "lab")],
    lambda r, d, bad: ["explore", d, "--out", str(bad / "ex")],
    lambda r, d, bad: ["sample-data", str(bad / "data")],
    lambda r, d, bad: ["train", d, "--out", str(bad / "run"), *TINY],
], ids=["evaluate", "submit", "lab", "explore", "sample-data", "train"])
def test_outputs_under_a_file_fail_before_work(run_dir, sample_root, tmp_path, capsys, cmd):
    bad = tmp_path / "afile"
    bad.write_text("x")
    assert main(cmd(run_dir, sample_root, bad)) == 2
    assert "afile is a file" in capsys.readouterr().err


def test_unexpected_errors_print_one_line_and_a_log(tmp_path, monkeypatch, capsys):
    from musicaffect.cli import data_cmds

    monkeypatch.setenv("MUSICAFFECT_CACHE", str(tmp_path / "cache"))

    def bug(args):
        raise ZeroDivisionError("a bug deep inside")

    monkeypatch.setattr(data_cmds, "_sample_data", bug)
    assert main(["sample-data", str(tmp_path / "x")]) == 3
    err = capsys.readouterr().err
    assert "ZeroDivisionError: a bug deep inside" in err and "please report" in err
    assert "Traceback" not in err
    logs = list((tmp_path / "cache" / "logs").glob("crash-*.log"))
    assert len(logs) == 1 and str(logs[0]) in err
    assert "Traceback" in logs[0].read_text() and "in bug" in logs[0].read_text()
    assert main(["-v", "sample-data", str(tmp_path / "x")]) == 3
    assert "Traceback" in capsys.readouterr().err


# ------------------------------------------------------------------------ fault injection

def _state(run: Path) -> str:
    last = run / "checkpoints" / "last.pt"
    if last.is_file():
        return f"epoch {torch.load(last, weights_only=True)['epoch'] + 1}"
    return "no checkpoint" if run.exists() else "no folder"


@pytest.mark.slow
def test_sigkill_at_random_points_then_resume_finishes_with_the_same_weights(sample_root,
                                                                             tmp_path):
    """SIGKILL the training process 10 times at random points (during start-up, and during
    its first epochs once the run folder is claimed); then ``--resume`` (or, over an old
    run, ``--overwrite`` again) always finishes, and the final weights equal an
    uninterrupted run's. Half the runs replace an older run (--overwrite): until the new
    run's first checkpoint the old run must stay intact."""
    from musicaffect.training.rundir import MARKER

    args = ["--preset", "lstm-beat-mel", "--no-progress", "--device", "cpu",
            "--set", "model.params.hidden_size=16", "--set", "train.epochs=4",
            "--set", "train.patience=0", "--set", "train.max_batches_per_epoch=3",
            "--set", "train.batch_size=8", "--set", f"data.cache_dir={tmp_path / 'cache'}"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1",
           "MUSICAFFECT_CACHE": str(tmp_path / "cache")}
    exe = [sys.executable, "-m", "musicaffect", "-q", "train", sample_root]
    subprocess.run([*exe, "--out", str(tmp_path / "ref"), *args], check=True, env=env,
                   timeout=600)
    reference = _weights(tmp_path / "ref")

    def claimed(run: Path, replacing: bool) -> bool:
        if replacing:
            return any(run.parent.glob(f".{run.name}.new-*"))
        return (run / MARKER).is_file()

    def start(run: Path, extra: list[str]) -> subprocess.Popen:
        return subprocess.Popen([*exe, "--out", str(run), *args, *extra], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def wait_claim(proc, run: Path, replacing: bool) -> float:
        t0 = time.monotonic()
        while not claimed(run, replacing) and proc.poll() is None:
            time.sleep(0.005)
            assert time.monotonic() - t0 < 300
        return time.monotonic()

    # the old run (another seed) also gives the two phases' lengths with a warm clip cache
    t0 = time.monotonic()
    proc = start(tmp_path / "old", ["--seed", "1"])
    t_claim = wait_claim(proc, tmp_path / "old", False)
    assert proc.wait(timeout=600) == 0
    startup, training = t_claim - t0, time.monotonic() - t_claim
    old = _weights(tmp_path / "old")
    rng = random.Random(9)
    states = []
    for i in range(10):
        run = tmp_path / f"run{i}"
        replacing = i % 2 == 1
        extra = []
        if replacing:
            shutil.copytree(tmp_path / "old", run)
            extra = ["--overwrite"]
        proc = start(run, extra)
        if i % 3 == 0:     # during start-up (imports, data, model): nothing claimed yet
            time.sleep(rng.uniform(0.2, 1.0) * startup)
        else:              # in the first epochs, from the moment the folder is claimed
            wait_claim(proc, run, replacing)
            time.sleep(rng.uniform(0.0, 0.6) * training)   # the end writes figures
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        states.append(_state(run))
        if replacing and run.exists() and _same_weights(_weights(run), old):
            rerun = ["--overwrite"]          # killed before the new run's first checkpoint
        else:
            rerun = ["--resume"]
        done = subprocess.run([*exe, "--out", str(run), *args, *rerun], env=env,
                              timeout=600, capture_output=True, text=True)
        if done.returncode != 0:
            logs = "".join(p.read_text() for p in (tmp_path / "cache" / "logs").glob("*.log"))
            pytest.fail(f"kill {i}, rerun {rerun}: exit {done.returncode}\n{done.stderr}\n{logs}")
        assert _same_weights(_weights(run), reference), (i, rerun)
        leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(f".run{i}.")]
        assert not leftovers, leftovers
    print("state after each kill:", states)
