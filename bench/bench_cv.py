"""Cross-validation benchmark: ``musicaffect cv`` over the presets on one or more data roots.

Runs :func:`musicaffect.cv.run_cv` for each (data root, kind) pair, then writes one JSON
file per root under ``bench/results/`` (the cv table: mean +- std of every metric over folds
and seeds, and training seconds per preset) and prints the tables as Markdown.

    .venv/bin/python bench/bench_cv.py --root /data/scores-style --name scores \
        --genre classical-logreg,cnn-full-mel,chunk-cnn-genre,ensemble-chunk-genre \
        --affect affect-classical-ridge,chunk-cnn-affect,ensemble-chunk-affect \
        --folds 5 --set train.epochs=20

Rendered scores and generated data are not recordings: the tables say so (``source``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _source(root: Path) -> str:
    if (root / "SYNTHETIC.txt").is_file():
        return "SYNTHETIC (generated spectrograms, not music)"
    if (root / "SOURCE.txt").is_file():
        return (root / "SOURCE.txt").read_text().splitlines()[0].strip()
    return "unknown"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", required=True, type=Path, help="data root (Kaggle layout)")
    ap.add_argument("--name", required=True, help="result name: bench/results/cv_<name>.json")
    ap.add_argument("--genre", default="", help="comma-separated genre presets")
    ap.add_argument("--affect", default="", help="comma-separated affect presets")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--budget", default="standard")
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--out", type=Path, default=None, help="work folder (default /tmp/bench_cv)")
    args = ap.parse_args(argv)

    from musicaffect.cv import run_cv

    out = args.out or Path(os.environ.get("TMPDIR", "/tmp")) / "bench_cv" / args.name
    result = {"root": str(args.root), "source": _source(args.root), "folds": args.folds,
              "seeds": args.seeds, "budget": args.budget, "overrides": args.overrides,
              "machine": f"{platform.processor() or platform.machine()}, "
                         f"{os.cpu_count()} CPUs", "tables": {}}
    for kind, presets in (("genre", args.genre), ("affect", args.affect)):
        names = [p for p in presets.split(",") if p]
        if not names:
            continue
        t0 = time.perf_counter()
        res = run_cv(args.root, names, out / kind, folds=args.folds, seeds=args.seeds,
                     budget=args.budget, overrides=list(args.overrides), progress=False)
        result["tables"][kind] = {**res.to_dict(), "wall_seconds": time.perf_counter() - t0}
        print(f"## {kind} ({result['source']})\n")
        print(res.to_markdown())
        print()
    path = HERE / "results" / f"cv_{args.name}.json"
    path.write_text(json.dumps(result, indent=2, default=float) + "\n")
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
