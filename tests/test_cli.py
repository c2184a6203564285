"""CLI smoke runs on the small synthetic sample: train, evaluate, overfit, suite, submit,
lab and report (every preset of the lab runs once, with the tiny budget)."""

from __future__ import annotations

import csv
import json
from html.parser import HTMLParser
from pathlib import Path

import pytest

from musicaffect.cli import main
from musicaffect.data.layout import index_clips
from musicaffect.submission import HEADER

TINY = ["--set", "model.params.hidden_size=16", "--set", "train.epochs=1",
        "--set", "train.max_batches_per_epoch=2", "--no-progress"]


def test_help_lists_commands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for cmd in ("sample-data", "explore", "train", "evaluate", "suite", "submit",
                "build-dataset", "predict", "export", "lab", "report", "activations"):
        assert cmd in out


def test_train_evaluate_and_refuse_existing(sample_root, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", sample_root, "--preset", "lstm-beat-fused", "--out", str(run),
                 *TINY]) == 0
    assert "best epoch 1" in capsys.readouterr().out
    assert main(["evaluate", str(run), sample_root]) == 0
    out = capsys.readouterr().out
    assert "macro avg" in out and "weighted avg" in out and "accuracy" in out
    assert (run / "eval" / "genre-beat-test" / "confusion.png").is_file()
    metrics = json.loads((run / "eval" / "genre-beat-test" / "metrics.json").read_text())
    assert metrics["genre"]["n"] == len(index_clips(sample_root, dataset="genre", rate="beat",
                                                    split="test"))
    # an existing run folder is refused without --resume / --overwrite (exit 2, clear message)
    assert main(["train", sample_root, "--preset", "lstm-beat-fused", "--out", str(run),
                 *TINY]) == 2
    assert main(["train", sample_root, "--preset", "lstm-beat-fused", "--out", str(run),
                 "--resume", *TINY]) == 0


def test_bad_config_is_exit_2(sample_root, tmp_path, capsys):
    assert main(["train", sample_root, "--preset", "lstm-beat-mel", "--out",
                 str(tmp_path / "r"), "--set", "train.epochz=3"]) == 2
    assert "unknown config key 'train.epochz'" in capsys.readouterr().err


def test_evaluate_rejects_mismatched_checkpoint(sample_root, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", sample_root, "--preset", "lstm-beat-chroma", "--out", str(run),
                 *TINY]) == 0
    ckpt = run / "checkpoints" / "best.pt"
    import torch
    state = torch.load(ckpt, weights_only=True)
    state["config"]["data"]["view"] = "mel"      # data now has 128 features, model reads 12
    torch.save(state, ckpt)
    capsys.readouterr()
    assert main(["evaluate", str(run), sample_root]) == 2
    assert "features per frame" in capsys.readouterr().err


@pytest.mark.slow
def test_overfit_mode_exit_codes(sample_root, tmp_path):
    args = ["train", sample_root, "--preset", "lstm-beat-mel", "--overfit-batch", "1",
            "--set", "train.batch_size=8", "--set", "train.lr=0.005", "--no-progress"]
    assert main([*args, "--out", str(tmp_path / "ok")]) == 0
    assert (tmp_path / "ok" / "overfit_curve.png").is_file()
    # two epochs cannot get there: exit 1
    assert main([*args, "--set", "train.overfit_epochs=2"]) == 1


@pytest.fixture(scope="module")
def lab_out(sample_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("lab")
    assert main(["lab", sample_root, "--out", str(out), "--budget", "tiny",
                 "--no-progress"]) == 0
    return out


@pytest.mark.slow
def test_lab_report_has_every_step(lab_out, sample_root):
    state = json.loads((lab_out / "lab_state.json").read_text())
    assert {s: v["status"] for s, v in state["steps"].items()} == {
        s: "done" for s in ("explore", "overfit", "genre", "affect", "transfer", "multitask",
                            "submission")}
    md = (lab_out / "report.md").read_text()
    for heading in ("Data exploration", "Genre classification", "Affect regression",
                    "Transfer learning", "Multitask learning", "Kaggle submission",
                    "activation", "Run information", "SYNTHETIC"):
        assert heading.lower() in md.lower(), heading
    html = (lab_out / "report.html").read_text()

    class Counter(HTMLParser):
        def __init__(self):
            super().__init__()
            self.tags: dict[str, int] = {}
            self.external = []

        def handle_starttag(self, tag, attrs):
            self.tags[tag] = self.tags.get(tag, 0) + 1
            for k, v in attrs:
                if k in ("src", "href") and v and v.startswith(("http:", "https:")):
                    self.external.append(v)

    p = Counter()
    p.feed(html)
    assert p.tags.get("table", 0) >= 6 and p.tags.get("img", 0) >= 10
    assert not p.external
    assert html.count("data:image/png;base64,") >= 10
    # the genre table holds every report row, next to the public numbers
    genre = json.loads((lab_out / "runs" / "genre" / "genre_table.json").read_text())
    assert [r["experiment"] for r in genre["rows"]][:5] == [
        "lstm-full-mel", "lstm-beat-mel", "lstm-beat-chroma", "lstm-beat-fused", "cnn-full-mel"]
    assert genre["rows"][0]["ref_accuracy"] == 0.31 and genre["synthetic"]
    # the classical baseline, the chunk CNN and the ensembles are rows of the table; the
    # default (best-genre) is the ensemble of the chunk CNN and the logistic regression
    assert {"classical-logreg", "chunk-cnn-genre", "ensemble-genre",
            "best-genre"} <= {r["experiment"] for r in genre["rows"]}
    for name in ("ensemble-genre", "best-genre"):
        assert (Path(genre["runs"][name]) / "ensemble.json").is_file()


@pytest.mark.slow
def test_lab_submission_valid(lab_out, sample_root):
    path = lab_out / "solution.csv"
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == HEADER == ["Id.fused.full.npy.gz", "valence", "energy", "danceability"]
    test_ids = {r.id for r in index_clips(sample_root, dataset="multitask", rate="full",
                                          split="test")}
    got = [r[0] for r in rows[1:]]
    assert len(got) == len(set(got)) == len(test_ids)
    assert {g.split(".")[0] for g in got} == test_ids
    assert all(g.endswith(".fused.full.npy.gz") for g in got)


@pytest.mark.slow
def test_suite_reuses_lab_runs_and_prints_table(lab_out, sample_root, capsys):
    assert main(["suite", "genre", sample_root, "--out", str(lab_out / "runs"),
                 "--budget", "tiny", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "lstm-beat-chroma" in out and "ref_macro_f1" in out and "SYNTHETIC" in out


@pytest.mark.slow
def test_submit_command_and_report_rebuild(lab_out, sample_root, tmp_path, capsys):
    run = json.loads((lab_out / "lab_state.json").read_text())["steps"]["submission"]["run"]
    out = tmp_path / "solution.csv"
    assert main(["submit", run, sample_root, "--out", str(out)]) == 0
    assert out.read_text().splitlines()[0] == ",".join(HEADER)
    # three single-target runs also make a submission
    singles = sorted((lab_out / "runs" / "affect").glob("affect-cnn-full-fused-*"))
    assert len(singles) == 3
    assert main(["submit", *map(str, singles), sample_root, "--out", str(out)]) == 0
    # a genre run cannot
    genre = lab_out / "runs" / "genre" / "cnn-full-mel"
    assert main(["submit", str(genre), sample_root, "--out", str(out)]) == 2
    (lab_out / "report.html").unlink()
    assert main(["report", str(lab_out)]) == 0
    assert (lab_out / "report.html").is_file()


@pytest.mark.slow
def test_lab_skips_missing_folders(sample_root, tmp_path):
    import shutil
    root = tmp_path / "partial"
    shutil.copytree(Path(sample_root) / "fma_genre_spectrograms_beat",
                    root / "fma_genre_spectrograms_beat")
    out = tmp_path / "lab"
    assert main(["lab", str(root), "--out", str(out), "--budget", "tiny", "--no-progress",
                 "--steps", "overfit,affect,submission"]) == 0
    state = json.loads((out / "lab_state.json").read_text())["steps"]
    assert state["overfit"]["status"] == "done"
    for preset in ("lstm-beat-mel", "cnn-full-mel"):   # training.engine.save_overfit's files
        assert (out / "overfit" / f"{preset}_curve.png").is_file()
        assert json.loads((out / "overfit" / f"{preset}.json").read_text())["losses"]
    assert state["affect"]["status"] == "skipped"
    assert "multitask_dataset" in state["affect"]["reason"]
    assert "Skipped" in (out / "report.md").read_text()


def test_skip_bad_lists_what_was_skipped(sample_root, tmp_path, capsys):
    import shutil
    root = tmp_path / "data"
    shutil.copytree(Path(sample_root) / "fma_genre_spectrograms_beat",
                    root / "fma_genre_spectrograms_beat")
    victim = sorted((root / "fma_genre_spectrograms_beat" / "train").iterdir())[0]
    victim.write_bytes(b"not an npy file")
    args = ["train", str(root), "--preset", "lstm-beat-mel", *TINY]
    assert main([*args, "--out", str(tmp_path / "strict")]) == 2
    assert victim.name in capsys.readouterr().err
    assert main([*args, "--out", str(tmp_path / "lenient"), "--skip-bad"]) == 0
    skipped = (tmp_path / "lenient" / "skipped.tsv").read_text()
    assert victim.name in skipped


def test_empty_training_split_is_a_clear_error(sample_root, tmp_path, capsys):
    import shutil
    root = tmp_path / "data"
    shutil.copytree(Path(sample_root) / "fma_genre_spectrograms_beat",
                    root / "fma_genre_spectrograms_beat")
    labels = root / "fma_genre_spectrograms_beat" / "train_labels.txt"
    labels.write_text(labels.read_text().splitlines()[0] + "\n")
    assert main(["train", str(root), "--preset", "lstm-beat-mel", "--out",
                 str(tmp_path / "r"), *TINY]) == 2
    err = capsys.readouterr().err
    assert "training split has 0 usable clip" in err or "no clips" in err
