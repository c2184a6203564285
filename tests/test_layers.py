"""The package's layering, read from the import graph (tools/import_graph.py): lower layers
never import higher ones, so each can be read, tested and reused without the others."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    spec = importlib.util.spec_from_file_location("import_graph", ROOT / "tools" / "import_graph.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.graph(ROOT / "src")


def test_the_graph_sees_the_packages(graph):
    # a broken parser would make every layering test below pass vacuously
    assert {"data", "models", "training", "evaluation", "cli"} <= set(graph)
    assert "data" in graph["training"] and "models" in graph["evaluation"]


def test_training_and_evaluation_do_not_import_each_other(graph):
    # training validates with evaluation's inference; evaluation never reaches back
    assert "training" not in graph["evaluation"]


@pytest.mark.parametrize("low", ["data", "models"])
def test_data_and_models_import_neither_training_nor_evaluation(graph, low):
    assert not graph[low] & {"training", "evaluation"}, graph[low]


def test_data_imports_no_model_and_no_pipeline(graph):
    assert not graph["data"] & {"models", "training", "evaluation", "config", "cli", "lab",
                                "suites", "ensemble"}


def test_process_tuning_is_the_programs(graph):
    # the library never tunes the process by itself: only the CLI imports runtime
    users = {part for part, deps in graph.items() if "runtime" in deps}
    assert users == {"cli"}


def test_cli_main_tunes_the_process_once(monkeypatch, capsys):
    from musicaffect import runtime
    from musicaffect.cli import main

    calls = []
    monkeypatch.setattr(runtime, "tune_process", lambda **kw: calls.append(kw) or {})
    with pytest.raises(SystemExit):
        main(["--version"])
    assert len(calls) == 1


def test_tune_process_sets_omp_passive_unless_set(monkeypatch):
    from musicaffect import runtime

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    runtime.tune_process(heap=False)
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    res = runtime.tune_process(heap=False)
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE" and not res["omp_passive"]
