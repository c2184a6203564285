"""The package's layering, read from the import graph (tools/import_graph.py): lower layers
never import higher ones, so each can be read, tested and reused without the others."""

from __future__ import annotations

import ast
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
                                "suites", "families"}


# ----------------------------------------------------------------------------- module cycles

PACKAGE = ROOT / "src" / "musicaffect"


def module_graph(pkg: Path = PACKAGE) -> dict[str, set[str]]:
    """Module -> the package's modules it imports, read from the AST: imports inside
    functions count (they are dependencies all the same), relative imports are resolved and
    ``from package import name`` counts as the submodule ``name`` when there is one."""
    files = {}
    for f in pkg.rglob("*.py"):
        rel = f.relative_to(pkg.parent).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        files[".".join(parts)] = f
    edges: dict[str, set[str]] = {}
    for name, f in files.items():
        here = name.split(".") if f.name == "__init__.py" else name.split(".")[:-1]
        deps: set[str] = set()
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = ".".join(here[: len(here) - node.level + 1] if node.level else [])
                mod = ".".join(p for p in (base, node.module or "") if p)
                targets = [mod] + [f"{mod}.{a.name}" for a in node.names]
            else:
                continue
            for t in targets:
                while t and t not in files:        # an attribute, not a module: its module
                    t = t.rpartition(".")[0]
                if t and t != name and t != pkg.name:
                    deps.add(t)
        edges[name] = deps
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_check_finds_a_cycle():
    # a check that cannot fail proves nothing: a made-up circle through a function import
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    edges = module_graph()
    assert "musicaffect.training.engine" in edges["musicaffect.families.deep"]


def test_no_import_cycle_in_the_package():
    assert cycles(module_graph()) == []


# ----------------------------------------------------------------------------- families

#: modules that may name a model family: the families, the registry, the members' models
FAMILY_MODULES = ("musicaffect.families", "musicaffect.models.classical")


def test_no_code_outside_the_families_compares_a_family_name():
    from musicaffect.families.registry import families

    names = {f.name for f in families()}
    offenders = []
    for f in PACKAGE.rglob("*.py"):
        mod = ".".join(f.relative_to(PACKAGE.parent).with_suffix("").parts)
        if mod.startswith(FAMILY_MODULES):
            continue
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Compare):
                consts = [n for n in (node.left, *node.comparators)
                          if isinstance(n, ast.Constant)
                          or isinstance(n, (ast.Tuple, ast.List, ast.Set))]
                values = {c.value for n in consts
                          for c in ([n] if isinstance(n, ast.Constant) else n.elts)
                          if isinstance(c, ast.Constant)}
                if values & names:
                    offenders.append(f"{mod}:{node.lineno}")
    assert offenders == [], offenders


# ----------------------------------------------------------------------------- tasks

#: modules that may tell a task's kind from its name: the task specs and the vocabulary that
#: gives each task its spec
TASK_MODULES = ("musicaffect.tasks", "musicaffect.data.vocab")
#: modules that may call ``tasks.is_class_task`` / ``split_task_names``: config validation
#: (a task list is checked before any data root, and so any vocabulary, is read) and the
#: default specs of members whose files predate task specs
NAME_READERS = {"musicaffect.config", "musicaffect.models.predictions"}
TASK_CONSTANTS = {"GENRE_TASK", "CLASS_TASK"}


def task_name_checks(pkg: Path = PACKAGE) -> list[str]:
    """``module:line`` of each task-name comparison outside :data:`TASK_MODULES`: a compare
    with ``GENRE_TASK`` / ``CLASS_TASK``, a compare of ``"genre"`` with a name that holds a
    task (``t``, ``task``, ``tasks``, ``m.tasks`` ...), or a call of the name predicates
    outside :data:`NAME_READERS`."""
    from musicaffect.tasks import CLASS_TASK

    def names(node) -> set[str]:
        return {n.id if isinstance(n, ast.Name) else n.attr for n in ast.walk(node)
                if isinstance(n, (ast.Name, ast.Attribute))}

    found = []
    for f in sorted(pkg.rglob("*.py")):
        mod = ".".join(f.relative_to(pkg.parent).with_suffix("").parts)
        if mod.startswith(TASK_MODULES):
            continue
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Compare):
                sides = (node.left, *node.comparators)
                used = set().union(*map(names, sides))
                literal = any(isinstance(n, ast.Constant) and n.value == CLASS_TASK
                              for side in sides for n in ast.walk(side))
                if used & TASK_CONSTANTS or (literal and any(
                        u == "t" or "task" in u.lower() for u in used)):
                    found.append(f"{mod}:{node.lineno}")
            elif isinstance(node, ast.Call) and mod not in NAME_READERS \
                    and names(node.func) & {"is_class_task", "split_task_names"}:
                found.append(f"{mod}:{node.lineno}")
    return found


#: modules owned by other helpers this round that still compare the literal "genre" (export's
#: metadata, the submission's target check); they should read ``task_specs(ckpt)`` /
#: ``m.specs`` (``scalar_tasks``, ``multiclass_task``). Remove each once it does.
PENDING: set[str] = set()


def test_no_code_outside_the_task_specs_compares_a_task_name():
    found = task_name_checks()
    assert [f for f in found if f.split(":")[0] not in PENDING] == []
    stale = PENDING - {f.split(":")[0] for f in found}
    assert not stale, f"{sorted(stale)} no longer compare task names: remove from PENDING"


def test_the_task_name_check_finds_comparisons(tmp_path):
    pkg = tmp_path / "musicaffect"
    pkg.mkdir()
    (pkg / "mod.py").write_text(
        "from musicaffect.data.labels import GENRE_TASK\n"
        "def f(t, data, dataset):\n"
        "    a = t == GENRE_TASK\n"
        "    b = GENRE_TASK not in data.tasks\n"
        "    c = 'genre' in data.tasks\n"
        "    d = dataset == 'genre'\n"           # a folder kind, not a task: allowed
        "    return is_class_task(t)\n")
    assert task_name_checks(pkg) == ["musicaffect.mod:3", "musicaffect.mod:4",
                                     "musicaffect.mod:5", "musicaffect.mod:7"]


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
