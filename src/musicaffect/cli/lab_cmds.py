"""Commands ``lab`` (the whole lab, steps 1-11, ending in a report), ``report`` and
``activations`` (lab step 7a for one run)."""

from __future__ import annotations

import argparse
from pathlib import Path

from musicaffect.errors import ConfigError
from musicaffect.settings import budget_names


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("lab", help="run the whole lab (steps 1-11) and write a report",
                       description="Exploration, genre experiments, affect regression, "
                       "transfer and multitask learning and the Kaggle submission, ending in "
                       "OUT/report.html and OUT/report.md. Rerunning continues where it "
                       "stopped and reuses finished runs.")
    p.add_argument("data_root", nargs="?", help="dataset root (the four Kaggle folders)")
    p.add_argument("--out", "-o", required=True, help="output folder")
    p.add_argument("--budget", default="quick", choices=budget_names(),
                   help="training budget per run (quick: minutes on a CPU; standard: the "
                        "lab's 30 epochs with early stopping)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"])
    p.add_argument("--seed", type=int, default=0, help="seed of the exploration's clip choice")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="config override applied to every training run")
    p.add_argument("--steps", help="comma-separated subset of steps: explore, overfit, genre, "
                   "affect, transfer, multitask, submission")
    p.add_argument("--sample", metavar="DIR", help="no DATA_ROOT: write (once) and use the "
                   "synthetic sample dataset in DIR")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_lab)

    p = sub.add_parser("report", help="rebuild report.html / report.md of a lab folder")
    p.add_argument("out", help="the lab's output folder")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("activations", help="activation maps of a CNN run's blocks for one "
                       "test clip (lab step 7a)",
                       description="Run one test clip of the genre folder (at the run's rate "
                       "and view) through a CNN run and draw the output of each "
                       "convolutional block: the first channels, time on x, frequency on y.")
    p.add_argument("run", help="a CNN run folder or .pt checkpoint")
    p.add_argument("data_root", help="dataset root (the four Kaggle folders)")
    p.add_argument("--out", "-o", metavar="PNG",
                   help="image to write (default: RUN/eval/activations.png)")
    p.add_argument("--clip", type=int, default=0, help="index of the test clip (default 0)")
    p.set_defaults(func=cmd_activations)


def cmd_lab(args) -> int:
    from musicaffect.lab import STEPS, run_lab
    from musicaffect.paths import check_output_dir

    check_output_dir(args.out, what="lab folder")
    if args.sample:
        check_output_dir(args.sample, what="sample data folder")
    root = args.data_root
    if root is None:
        if not args.sample:
            raise ConfigError("give DATA_ROOT, or --sample DIR to use the synthetic sample data")
        root = Path(args.sample)
        if not (root / "SYNTHETIC.txt").is_file():
            from musicaffect.data.sample import write_sample_dataset
            from musicaffect.outputs import claim_output_dir

            claim_output_dir(root, "sample-data")
            print(f"writing the synthetic sample dataset to {root} ...")
            write_sample_dataset(root, size="small", seed=0)
    steps = None
    if args.steps:
        steps = [s.strip() for s in args.steps.split(",") if s.strip()]
        bad = [s for s in steps if s not in STEPS]
        if bad:
            raise ConfigError(f"unknown step {bad[0]!r}: choose from {', '.join(STEPS)}")
    html = run_lab(root, args.out, budget=args.budget, device=args.device, seed=args.seed,
                   overrides=args.overrides, steps=steps, progress=not args.no_progress)
    failed = _print_summary(Path(args.out))
    print(f"report: {html}\n        {Path(html).with_suffix('.md')}")
    if failed:
        print(f"failed: {', '.join(failed)} (see the report)")
        return 1
    return 0


def _print_summary(out: Path) -> list[str]:
    """Print the steps of the lab in ``out``; returns the failed steps (and presets)."""
    import json

    state = json.loads((out / "lab_state.json").read_text())
    if state.get("synthetic"):
        print("NOTE: the data is synthetic; the numbers are not results on real music.")
    failed = []
    for step, s in state["steps"].items():
        if s.get("status") == "failed":
            failed.append(step)
        failed += [f"{step}/{p}" for p in s.get("failed_presets", [])]
        extra = s.get("reason") or s.get("error") or ""
        secs = f"{s['seconds']:.0f}s" if "seconds" in s else ""
        print(f"  {step:<11} {s.get('status', '?'):<8} {secs:>6}  {extra}")
        table = s.get("table")
        if table:
            from musicaffect.suites import format_table

            print("\n".join("      " + line for line in format_table(
                table["rows"], table["columns"], title=table["title"]).splitlines()))
    return failed


def cmd_report(args) -> int:
    from musicaffect.lab import build_report

    html = build_report(args.out)
    print(f"report: {html}")
    return 0


def cmd_activations(args) -> int:
    from musicaffect.evaluation.activations import activation_figure
    from musicaffect.paths import check_output_file

    run = Path(args.run)
    default = (run.parent if run.is_file() else run) / "eval" / "activations.png"
    out = check_output_file(args.out or default, what="activation image")
    path = activation_figure(run, args.data_root, out, clip=args.clip)
    print(f"activation maps: {path}")
    return 0
