"""Commands ``ensemble`` (combine trained runs into one) and ``cv`` (cross-validation)."""

from __future__ import annotations

import argparse
from pathlib import Path

from musicaffect.errors import ConfigError
from musicaffect.settings import budget_names


def register(sub: argparse._SubParsersAction) -> None:
    """Add this group's sub-commands to ``sub``."""
    p = sub.add_parser("ensemble", help="combine trained runs into one ensemble folder",
                       description="Write an ensemble folder (ensemble.json + config.yaml) "
                       "that evaluate, submit, predict and the lab take like a run: the genre "
                       "probabilities and the affect values of its members are averaged "
                       "(weighted with --weights).")
    p.add_argument("runs", nargs="+", metavar="RUN",
                   help="run folders or checkpoints (deep, classical or ensembles)")
    p.add_argument("--out", "-o", required=True, help="the ensemble folder to write")
    p.add_argument("--weights", help="comma-separated positive weights, one per run "
                   "(default: equal)")
    p.set_defaults(func=cmd_ensemble)

    p = sub.add_parser(
        "cv", help="cross-validate presets on the pooled labelled clips",
        description="Pool the train and test clips of the genre folders (or the labelled "
        "multitask clips for affect presets), cut them into stratified folds (whole groups "
        "per fold when the data has groups), train every preset per fold and seed, and "
        "print and save (cv_table.json, cv_table.md) the mean +- std of each metric with "
        "the training time per preset.")
    p.add_argument("data_root", metavar="DATA_ROOT", help="dataset root (Kaggle layout)")
    p.add_argument("--presets", required=True,
                   help="comma-separated presets (or YAML files) of one kind, e.g. "
                        "classical-logreg,cnn-full-mel,ensemble-genre")
    p.add_argument("--folds", type=int, default=5, help="number of folds (default 5)")
    p.add_argument("--seeds", type=int, default=1,
                   help="training seeds per fold (seed=0..N-1; default 1)")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the folds (default 0)")
    p.add_argument("--budget", default="standard",
                   choices=budget_names(),
                   help="training budget of every run (default: the presets as written)")
    p.add_argument("--out", "-o", default="cv", help="output folder (default cv/)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override applied to every run")
    p.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"],
                   help="shortcut for --set train.accelerator=...")
    p.add_argument("--no-reuse", action="store_true", help="retrain finished runs")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_cv)


def cmd_ensemble(args) -> int:
    from musicaffect.families.ensemble import write_ensemble
    from musicaffect.outputs import check_output_folder, mark_output_dir

    weights = None
    if args.weights:
        try:
            weights = [float(w) for w in args.weights.split(",")]
        except ValueError as err:
            raise ConfigError(f"--weights {args.weights!r}: give numbers, e.g. 1,2") from err
    check_output_folder(args.out, "ensemble", writes=("ensemble.json", "config.yaml"),
                        legacy=lambda p: (p / "ensemble.json").is_file()
                        and not (p / "checkpoints").exists())
    path = write_ensemble(args.out, args.runs, weights=weights)
    mark_output_dir(args.out, "ensemble")
    print(f"ensemble of {len(args.runs)} run(s) written to {path.parent}")
    return 0


def cmd_cv(args) -> int:
    from musicaffect.cv import run_cv

    presets = [p.strip() for p in args.presets.split(",") if p.strip()]
    overrides = list(args.overrides)
    if args.device:
        overrides.append(f"train.accelerator={args.device}")
    res = run_cv(args.data_root, presets, args.out, folds=args.folds, seeds=args.seeds,
                 budget=args.budget, overrides=overrides, split_seed=args.split_seed,
                 reuse=not args.no_reuse, progress=not args.no_progress)
    print(res.to_text())
    print(f"written to {Path(args.out) / 'cv_table.md'} and cv_table.json")
    return 0
