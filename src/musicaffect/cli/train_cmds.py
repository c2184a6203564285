"""Commands ``train``, ``evaluate``, ``suite`` and ``submit`` (lab steps 5-11)."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from musicaffect.errors import ConfigError
from musicaffect.settings import budget_names


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", "-p", help="bundled preset name (see `musicaffect train "
                   "--list-presets`)")
    p.add_argument("--config", "-c", help="YAML config file (instead of a preset)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set train.lr=3e-4 (repeatable)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"],
                   help="shortcut for --set train.accelerator=...")
    p.add_argument("--devices", type=int, help="number of devices/processes (DDP when > 1)")
    p.add_argument("--seed", type=int, help="shortcut for --set seed=N")
    p.add_argument("--skip-bad", action="store_true", help="skip bad label rows and clip "
                   "files with a warning (listed in <run>/skipped.tsv) instead of stopping")


def _overrides(args) -> list[str]:
    out = list(args.overrides)
    if getattr(args, "device", None):
        out.append(f"train.accelerator={args.device}")
    if getattr(args, "devices", None):
        out.append(f"train.devices={args.devices}")
        if args.devices > 1:
            out.append("train.strategy=ddp")
    if getattr(args, "seed", None) is not None:
        out.append(f"seed={args.seed}")
    if getattr(args, "skip_bad", False):
        out.append("data.skip_bad=true")
    return out


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model (lab steps 5, 7-10)",
                       description="Train a model from a preset or YAML config. The run folder "
                       "gets config.yaml, checkpoints/{best,last}.pt, metrics.csv, TensorBoard "
                       "logs and learning_curves.png.")
    p.add_argument("data_root", nargs="?", help="dataset root (holds the four Kaggle folders)")
    p.add_argument("--out", "-o", help="run folder (default runs/<config name>)")
    _add_config_args(p)
    p.add_argument("--resume", action="store_true", help="continue an interrupted run")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run folder")
    p.add_argument("--overfit-batch", "--overfit-batches", dest="overfit_batches", type=int,
                   metavar="K", help="lab step 5b: train on the first K batches until the "
                   "loss is near zero; exit 1 if it does not get there")
    p.add_argument("--list-presets", action="store_true", help="list presets and exit")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="evaluate a run on the test set (lab step 6)",
                       description="Accuracy, per-class precision/recall/F1, macro/micro/"
                       "weighted averages and a confusion matrix on the official test set "
                       "(genre), or Spearman/Pearson/MSE and scatter plots on the held-out "
                       "part of the multitask train split (affect).")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run folder or checkpoint file "
                   "(deep, classical or ensemble); several runs are evaluated as one ensemble "
                   "(probabilities/values averaged, needs --out); the last positional "
                   "argument is DATA_ROOT")
    p.add_argument("--rate", choices=["full", "beat", "both"],
                   help="genre test folder (default: the rate the model was trained on)")
    p.add_argument("--out", help="output folder (default <run>/eval/<test set>)")
    p.add_argument("--device", choices=["cpu", "cuda", "mps"])
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("suite", help="run the lab's experiment tables (genre, affect, "
                       "transfer, multitask)")
    p.add_argument("which", choices=["genre", "affect", "transfer", "multitask"])
    p.add_argument("data_root", help="dataset root")
    p.add_argument("--out", "-o", default="runs", help="folder for the suite's runs")
    p.add_argument("--budget", default="standard",
                   choices=budget_names(),
                   help="quick = a few short epochs; standard = the presets as written")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override applied to every run of the suite")
    p.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"],
                   help="shortcut for --set train.accelerator=...")
    p.add_argument("--genre-run", help="transfer/multitask: genre CNN run to start from "
                   "(default: train cnn-full-fused)")
    p.add_argument("--freeze", action="store_true", help="transfer: also run the frozen-"
                   "backbone variant")
    p.add_argument("--no-reuse", action="store_true", help="retrain finished runs")
    p.add_argument("--seeds", type=int, default=1, metavar="N",
                   help="run the suite N times (seed=0..N-1, into --out/seed-S/) and print "
                        "the mean and std of every column (default 1: one run, as before)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_suite)

    p = sub.add_parser("submit", help="write the Kaggle submission CSV (lab step 11)")
    p.add_argument("runs", nargs="+", metavar="RUN", help="a multitask run, or three "
                   "single-target runs; the last positional argument is DATA_ROOT")
    p.add_argument("--out", "-o", default="solution.csv", help="CSV to write")
    p.add_argument("--device", choices=["cpu", "cuda", "mps"])
    p.set_defaults(func=cmd_submit)


def cmd_train(args) -> int:
    from musicaffect.config import load_config, preset_names

    if args.list_presets:
        for name in preset_names():
            print(name)
        return 0
    if not args.data_root:
        raise ConfigError("give DATA_ROOT (the folder holding the four Kaggle folders)")
    if args.preset and args.config:
        raise ConfigError("give either --preset or --config, not both")
    overrides = _overrides(args)
    if args.overfit_batches:
        overrides.append(f"train.overfit_batches={args.overfit_batches}")
    cfg = load_config(args.preset or args.config, overrides)
    if args.out and cfg.train.overfit_batches > 0:
        from musicaffect.paths import check_output_dir

        check_output_dir(args.out, what="overfit output folder")
    if cfg.train.overfit_batches > 0:
        from musicaffect.training.engine import overfit

        res = overfit(cfg, args.data_root, progress=not args.no_progress)
        status = "reached" if res.reached else "did NOT reach"
        print(f"overfit on {res.n_batches} batch(es): loss {res.losses[0]:.4f} -> "
              f"{res.losses[-1]:.4f} after {len(res.losses)} epochs; {status} "
              f"the target {res.target}")
        if args.out:
            from musicaffect.training.engine import save_overfit

            save_overfit(res, args.out)
        return 0 if res.reached else 1
    from musicaffect.families.registry import family_of
    from musicaffect.training.engine import fit

    out = Path(args.out or Path("runs") / cfg.name)
    res = fit(cfg, args.data_root, out, resume=args.resume, overwrite=args.overwrite,
              progress=not args.no_progress)
    line = family_of(cfg).describe(cfg, res, out)
    if line and int(os.environ.get("RANK", "0")) == 0:   # once under DDP
        print(line)
    return 0


def cmd_evaluate(args) -> int:
    from musicaffect.evaluation.evaluate import evaluate

    if len(args.runs) < 2:
        raise ConfigError("usage: musicaffect evaluate RUN [RUN ...] DATA_ROOT")
    *runs, args.data_root = args.runs
    args.run = runs if len(runs) > 1 else runs[0]
    if args.out:   # a new folder, or one an earlier `evaluate --out` made (marked below)
        from musicaffect.outputs import check_output_folder, mark_output_dir

        check_output_folder(args.out, "evaluate", writes=("metrics.json", "full", "beat"))
    rates = ["full", "beat"] if args.rate == "both" else [args.rate]
    for rate in rates:
        out = args.out if (args.out and len(rates) == 1) else (
            str(Path(args.out) / rate) if args.out else None)
        res = evaluate(args.run, args.data_root, rate=rate, out_dir=out, device=args.device)
        if args.out:
            mark_output_dir(args.out, "evaluate")
        epoch = f", epoch {res['epoch'] + 1}" if isinstance(res.get("epoch"), int) else ""
        members = f", ensemble of {len(res['members'])}" if res.get("members") else ""
        print(f"== {res['evaluated_on']} ({res['n_clips']} clips{epoch}{members})")
        if "genre" in res:
            print(res["genre"]["report"])
        if "regression" in res:
            reg = res["regression"]
            for t, m in reg["per_target"].items():
                print(f"{t:>13}: Spearman {m['spearman']:.3f}  Pearson "
                      f"{m['pearson']:.3f}  MSE {m['mse']:.4f}")
            print(f"{'mean':>13}: Spearman {reg['spearman_mean']:.3f}")
        for t, b in res.get("binary", {}).items():
            auc = "-" if b["roc_auc"] is None else f"{b['roc_auc']:.3f}"
            print(f"{t:>13}: binary, ROC-AUC {auc}  balanced accuracy "
                  f"{b['balanced_accuracy']:.3f} at {b['threshold']:g} ({b['positives']} of "
                  f"{b['n']} positive)")
        print(f"written to {res['out_dir']}")
    return 0


def cmd_suite(args) -> int:
    from musicaffect import suites
    from musicaffect.outputs import claim_output_dir

    if args.seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, got {args.seeds}")
    claim_output_dir(args.out, "suite", legacy=lambda p: any(
        (p / w / f"{w}_table.json").is_file() or (p / "seed-0" / w).is_dir()
        for w in ("genre", "affect", "transfer", "multitask")))
    if args.seeds > 1:
        results = []
        for seed in range(args.seeds):
            one = argparse.Namespace(**{**vars(args), "seeds": 1,
                                        "out": str(Path(args.out) / f"seed-{seed}"),
                                        "overrides": [*args.overrides, f"seed={seed}"]})
            results.append(_run_suite(one))
        res = suites.aggregate_seeds(results)
        suites._save(res, Path(args.out) / f"{args.which}_seeds_table")
        print(res.to_text())
        return 0
    print(_run_suite(args).to_text())
    return 0


def _run_suite(args):
    from musicaffect import suites

    overrides = list(args.overrides)
    if args.device:
        overrides.append(f"train.accelerator={args.device}")
    kw = dict(budget=args.budget, overrides=overrides, reuse=not args.no_reuse,
              progress=not args.no_progress)
    out = Path(args.out)
    if args.which == "genre":
        res = suites.genre_suite(args.data_root, out / "genre", **kw)
    elif args.which == "affect":
        res = suites.affect_suite(args.data_root, out / "affect", **kw)
    elif args.which == "transfer":
        res = suites.transfer_suite(args.data_root, out / "transfer", genre_run=args.genre_run,
                                    freeze=args.freeze, baseline=_saved(out, "affect"), **kw)
    else:
        # compare with steps 8 and 9 when their tables are in the same --out folder
        base = suites.multitask_baseline(_saved(out, "affect"), _saved(out, "transfer"))
        res = suites.multitask_suite(args.data_root, out / "multitask",
                                     genre_run=args.genre_run, baseline_rows=base, **kw)
    return res


def _saved(out: Path, which: str):
    """A suite table saved earlier under ``out`` (None when that suite has not run)."""
    from musicaffect.suites import SuiteResult

    path = out / which / f"{which}_table.json"
    return SuiteResult(**json.loads(path.read_text())) if path.is_file() else None


def cmd_submit(args) -> int:
    from musicaffect.paths import check_output_file
    from musicaffect.submission import submit

    check_output_file(args.out, what="submission CSV")
    if len(args.runs) < 2:
        raise ConfigError("usage: musicaffect submit RUN [RUN ...] DATA_ROOT --out solution.csv")
    *runs, data_root = args.runs
    path = submit(runs, data_root, args.out, device=args.device)
    print(f"wrote {path}: header and one row per test clip checked")
    return 0
