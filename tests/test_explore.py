"""Exploration (lab steps 1-4) and the data commands of the CLI."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest

from musicaffect.cli import main
from musicaffect.data.labels import CLASSES, GENRES20
from musicaffect.data.layout import index_clips
from musicaffect.explore import pick_two_clips, run_explore


@pytest.fixture(scope="module")
def explored(sample_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("explore")
    return out, run_explore(sample_root, out, seed=3, dpi=40)


def test_explore_writes_figures_and_summaries(explored):
    out, result = explored
    names = {"mel_full", "mel_beat", "chroma_full", "chroma_beat", "class_histograms"}
    assert set(result["figures"]) == names
    for path in result["figures"].values():
        assert Path(path).parent == out
        assert Path(path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads(Path(result["summary_json"]).read_text())
    assert summary["clips"] == result["clips"] and summary["synthetic"] is True
    text = Path(result["summary_md"]).read_text()
    assert "SYNTHETIC" in text and "(128, " in text and "class_histograms.png" in text


def test_explore_picks_two_genres_and_reports_shapes(explored):
    _, result = explored
    a, b = result["clips"]
    assert a["genre20"] != b["genre20"] and a["id"] != b["id"]
    for clip in result["clips"]:
        s = clip["shapes"]
        assert s["mel_full"][0] == 128 and 1291 <= s["mel_full"][1] <= 1293
        assert s["chroma_full"] == [12, s["mel_full"][1]]
        assert s["mel_beat"][0] == 128 and 30 <= s["mel_beat"][1] <= 129
        assert s["chroma_beat"] == [12, s["mel_beat"][1]]


def test_explore_counts_before_and_after_mapping(explored):
    _, result = explored
    before, after = result["counts_before"], result["counts_after"]
    assert list(before) == list(GENRES20) and list(after) == list(CLASSES)
    assert sum(before.values()) == 80 and sum(after.values()) == 60
    assert after["Rock"] == before["Rock"] + before["Psych-Rock"] + before["Post-Rock"]


def test_explore_is_seeded(sample_root, explored):
    _, result = explored
    records = index_clips(sample_root, split="train", mapped=False)
    again = pick_two_clips(records, seed=3)
    assert [r.id for r in again] == [c["id"] for c in result["clips"]]
    other_seeds = {tuple(r.id for r in pick_two_clips(records, seed=s)) for s in range(5)}
    assert len(other_seeds) > 1


def test_cli_explore(sample_root, tmp_path, capsys):
    assert main(["explore", sample_root, "--out", str(tmp_path / "ex"), "--seed", "1",
                 "--dpi", "40"]) == 0
    printed = capsys.readouterr().out
    assert "SYNTHETIC" in printed and "mel full (128, " in printed
    assert (tmp_path / "ex" / "summary.md").is_file()


def test_cli_explore_missing_root_is_a_clear_error(tmp_path, capsys):
    assert main(["explore", str(tmp_path / "none"), "--out", str(tmp_path / "ex")]) == 2
    assert "data root does not exist" in capsys.readouterr().err


def test_cli_sample_data(tmp_path, capsys):
    out = tmp_path / "sample"
    assert main(["sample-data", str(out), "--seed", "5"]) == 0
    assert (out / "SYNTHETIC.txt").is_file()
    assert len(list((out / "fma_genre_spectrograms" / "train").glob("*.fused.full.npy"))) == 80
    assert str(out) in capsys.readouterr().out


def test_cli_sample_data_from_scores(tmp_path, monkeypatch):
    calls = []
    fake = types.ModuleType("musicaffect.samples.build")

    def build_scores_sample(out, *, size="small", seed=0, label_by="genre"):
        calls.append((str(out), size, seed, label_by))
        return Path(out)

    fake.build_scores_sample = build_scores_sample
    monkeypatch.setitem(sys.modules, "musicaffect.samples.build", fake)
    assert main(["sample-data", str(tmp_path / "s"), "--source", "scores", "--seed", "2"]) == 0
    assert main(["sample-data", str(tmp_path / "d"), "--source", "scores", "--size", "dev",
                 "--label-by", "genre"]) == 0
    assert calls == [(str(tmp_path / "s"), "small", 2, "style"),
                     (str(tmp_path / "d"), "dev", 0, "genre")]


@pytest.mark.parametrize(("extra", "message"), [(["--label-by", "style"], "--label-by"),
                                                (["--size", "dev"], "--size dev")])
def test_cli_sample_data_scores_options_refused_for_synthetic(tmp_path, capsys, extra,
                                                              message):
    assert main(["sample-data", str(tmp_path / "s"), *extra]) != 0
    assert message in capsys.readouterr().err
    assert not (tmp_path / "s").exists()
