"""Start-up: ``--version`` and ``--help`` answer without importing the heavy libraries."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "lightning", "librosa", "sklearn", "matplotlib", "scipy")


@pytest.mark.parametrize("argv", [["--version"], ["--help"], ["train", "--help"],
                                  ["predict", "--help"], ["export", "--help"]])
def test_cli_parser_imports_no_heavy_module(argv):
    code = (
        "import sys, json\n"
        "from musicaffect.cli import main\n"
        "try:\n"
        f"    main({argv!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    loaded = json.loads(out.strip().splitlines()[-1])
    assert loaded == [], f"{argv} imported {loaded}"


def test_export_choices_match_the_exporter():
    from musicaffect.cli.model_cmds import EXPORT_FORMATS
    from musicaffect.export import FORMATS

    assert sorted(EXPORT_FORMATS) == sorted(FORMATS)
