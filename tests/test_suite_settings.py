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
    assert not {"budgets", "suites", "settings"} & set(preset_names())


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
