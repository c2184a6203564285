"""Suite settings come from YAML beside the presets (budgets.yaml, suites.yaml), and table
rows name their runs explicitly (no label-to-run mapping, no label-prefix filters)."""

from __future__ import annotations

import pytest

from musicaffect import suites
from musicaffect.config import load_config, preset_names
from musicaffect.errors import ConfigError
from musicaffect.models import available_models
from musicaffect.suites import SuiteResult, best_run, multitask_baseline


def test_budgets_are_read_from_yaml():
    assert list(suites.BUDGETS) == ["tiny", "quick", "standard", "full"]
    assert suites.BUDGETS["tiny"]["train"]["epochs"] == 1
    assert suites.BUDGETS["standard"] == {}
    # the tiny budget shrinks every registered model (a new backbone must be listed)
    assert set(available_models()) <= set(suites.BUDGET_MODEL_PARAMS["tiny"])
    with pytest.raises(ConfigError, match="unknown budget"):
        suites.budget_overrides("huge")


def test_settings_files_are_not_presets():
    assert not {"budgets", "suites", "references", "settings"} & set(preset_names())


def test_nothing_is_read_at_import_time():
    import subprocess
    import sys

    code = ("import musicaffect.suites, musicaffect.cli, musicaffect.lab\n"
            "from musicaffect.settings import read_settings\n"
            "print(read_settings.cache_info().currsize)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "0"


def test_the_cli_offers_the_budgets_of_budgets_yaml(monkeypatch):
    import argparse

    from musicaffect import settings
    from musicaffect.cli import build_parser

    monkeypatch.setattr(settings, "budget_names", lambda: ["tiny", "huge"])
    monkeypatch.setattr("musicaffect.cli.cv_cmds.budget_names", settings.budget_names)
    monkeypatch.setattr("musicaffect.cli.lab_cmds.budget_names", settings.budget_names)
    monkeypatch.setattr("musicaffect.cli.train_cmds.budget_names", settings.budget_names)
    parser = build_parser()
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    offered = {name: next(a.choices for a in p._actions if a.dest == "budget")
               for name, p in subs.choices.items()
               if any(a.dest == "budget" for a in p._actions)}
    assert len(offered) >= 3 and all(c == ["tiny", "huge"] for c in offered.values())


def test_reference_numbers_are_data():
    from musicaffect.settings import affect_references, genre_references

    genre = genre_references()
    assert genre["lstm-beat-mel"] == ("LSTM", "beat mel", 0.37, 0.28)
    assert genre["rescnn-genre"][2:] == (None, None)
    assert list(genre)[0] == "lstm-full-mel" and list(genre)[-1] == "best-genre"
    assert affect_references()["CNN multitask"] == (0.67, 0.79, 0.77, 0.74)
    assert suites.GENRE_SUITE == genre and suites.AFFECT_REFERENCE == affect_references()


def test_suite_experiments_name_existing_presets():
    presets = set(preset_names())
    exps = [*suites.SUITES["affect"], *suites.SUITES["transfer"]["variants"],
            *suites.SUITES["multitask"]]
    assert {e["preset"] for e in exps} <= presets
    assert suites.SUITES["transfer"]["source"] in presets
    names = [e["experiment"] for e in exps]
    assert len(names) == len(set(names))
    # every multitask experiment's config loads (extra overrides included)
    for e in suites.SUITES["multitask"]:
        load_config(e["preset"], extra=e.get("extra") or {})


def _row(exp, mean, model="any label"):
    return {"model": model, "mean": mean, "experiment": exp}


def test_best_run_follows_the_experiment_key_not_the_label():
    res = SuiteResult("t", [_row("base", 0.9, "CNN multitask"),       # not a run of this suite
                            _row("a", 0.5, "renamed"), _row("b", 0.7, "also renamed")],
                      ["model", "mean"], runs={"a": "/runs/a", "b": "/runs/b"})
    assert best_run(res) == "/runs/b"
    with pytest.raises(ConfigError, match="no row names a run"):
        best_run(SuiteResult("t", [_row("x", 0.1)], ["model"], runs={"a": "/r"}))


def test_multitask_baseline_skips_the_rows_transfer_repeats():
    affect = SuiteResult("a", [_row("affect-lstm-beat-fused", 0.4),
                               _row("affect-cnn-full-fused", 0.6)], ["model"])
    transfer = SuiteResult("t", [_row("affect-cnn-full-fused", 0.6),
                                 _row("transfer-cnn", 0.7, "CNN from genre"),
                                 _row("transfer-cnn-frozen", 0.65)], ["model"])
    rows = multitask_baseline(affect, transfer)
    assert [r["experiment"] for r in rows] == ["affect-lstm-beat-fused", "affect-cnn-full-fused",
                                               "transfer-cnn", "transfer-cnn-frozen"]
    assert multitask_baseline(None, None) == []
