"""The settings bundled beside the presets (``presets/settings/*.yaml``), read on first use.

- ``budgets.yaml``: training budgets (``--budget NAME`` of the suites, the lab and ``cv``);
  :func:`budget_names` is the one list the CLI offers;
- ``suites.yaml``: the affect suites' experiments;
- ``references.yaml``: the reference numbers of the lab's report tables (LAB.md).

Nothing is read at import time; each file is read once and cached.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

import yaml

from musicaffect.errors import ConfigError


@cache
def read_settings(name: str) -> dict:
    """A settings file bundled beside the presets (``presets/settings/<name>.yaml``)."""
    path = resources.files("musicaffect") / "presets" / "settings" / f"{name}.yaml"
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"cannot read the bundled settings presets/settings/{name}.yaml "
                          f"({err}); reinstall musicaffect") from err
    return data or {}


def budgets() -> dict[str, dict]:
    """Budget name -> config overrides applied on top of every preset (budgets.yaml)."""
    return {k: dict(v.get("overrides") or {}) for k, v in read_settings("budgets").items()}


def budget_names() -> list[str]:
    """The budget names, in the file's order (``tiny``, ``quick``, ``standard``, ``full``)."""
    return list(read_settings("budgets"))


def budget_model_params() -> dict[str, dict[str, dict]]:
    """Budget name -> model parameters that shrink each registered model (smoke runs)."""
    return {k: dict(v["model_params"]) for k, v in read_settings("budgets").items()
            if v.get("model_params")}


def suite_experiments() -> dict:
    """The affect suites' experiments (suites.yaml): ``affect`` and ``multitask`` are lists
    of ``{experiment, preset, label, extra?, transfer?}``, ``transfer`` holds ``source``,
    ``baseline`` and ``variants``."""
    return read_settings("suites")


def genre_references() -> dict[str, tuple[str, str, float | None, float | None]]:
    """Lab report rows: preset -> (label, features, reference accuracy, reference macro-F1)."""
    rows = read_settings("references")["genre_suite"]
    return {p: (r["label"], r["features"], r.get("accuracy"), r.get("macro_f1"))
            for p, r in rows.items()}


def genre_reference_note() -> str:
    """Where the genre references come from."""
    return str(read_settings("references")["genre_note"])


def affect_references() -> dict[str, tuple[float, float, float, float]]:
    """Affect references (LAB.md): row label -> Spearman (valence, energy, danceability,
    mean)."""
    return {k: tuple(float(x) for x in v)
            for k, v in read_settings("references")["affect"].items()}
