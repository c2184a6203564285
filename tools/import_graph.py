"""Print which top-level parts of the musicaffect package import which (static, from the AST).

Usage: python tools/import_graph.py [SRC_DIR]   (default: src)

A "part" is a subpackage (``data``, ``training`` ...) or a top-level module (``lab``,
``config`` ...). Imports inside functions count too: they are dependencies all the same.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path


def part_of(module: str) -> str | None:
    bits = module.split(".")
    if bits[0] != "musicaffect":
        return None
    return bits[1] if len(bits) > 1 else "__init__"


def graph(src: Path) -> dict[str, set[str]]:
    pkg = src / "musicaffect"
    out: dict[str, set[str]] = {}
    for path in sorted(pkg.rglob("*.py")):
        rel = path.relative_to(src).with_suffix("")
        mod = ".".join(rel.parts).removesuffix(".__init__")
        me = part_of(mod) or "__init__"
        if me.endswith(".py"):
            me = me[:-3]
        deps = out.setdefault(me, set())
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for n in names:
                p = part_of(n)
                if p and p != me and p not in ("errors", "__init__"):
                    deps.add(p)
    return out


def main(argv: list[str]) -> int:
    src = Path(argv[0] if argv else "src")
    for part, deps in sorted(graph(src).items()):
        print(f"{part:>12} -> {', '.join(sorted(deps)) or '-'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
