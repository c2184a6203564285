"""Command ``predict``: genre and/or the regression targets of audio files, named as in
the checkpoints."""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from pathlib import Path

from musicaffect.errors import ConfigError, OutputError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict", help="predict genre and emotion of songs (audio files)",
        description="musicaffect predict CHECKPOINT [CHECKPOINT ...] AUDIO [AUDIO ...]: the "
        "leading arguments that are checkpoints (.pt files, run folders of deep or classical "
        "models, ensemble folders) are models; the "
        "rest are audio files (wav, flac, ogg, mp3). Several models combine: genre "
        "probabilities and affect values are averaged.")
    p.add_argument("paths", nargs="+", metavar="CHECKPOINT_OR_AUDIO")
    p.add_argument("--model", "-m", action="append", default=[], metavar="CHECKPOINT",
                   help="an extra checkpoint (repeatable)")
    p.add_argument("--format", "-f", choices=["table", "json", "csv"], default=None,
                   help="output format (default: from the --out suffix .json/.csv, else "
                        "table)")
    p.add_argument("--top", type=int, default=3, help="number of genres to show")
    p.add_argument("--device", choices=["cpu", "cuda", "mps"])
    p.add_argument("--threshold", type=float, default=None, metavar="T",
                   help="also decide each binary target: 1 when its score is >= T "
                        "(e.g. 0.5)")
    p.add_argument("--out", help="write the result to this file instead of standard output")
    p.set_defaults(func=cmd_predict)


def _is_checkpoint(p: str) -> bool:
    from musicaffect.evaluation.predictor import is_model_path

    return is_model_path(p)


def cmd_predict(args) -> int:
    from musicaffect import predict
    from musicaffect.paths import check_output_file

    if args.out:
        check_output_file(args.out, what="predictions file")
    if args.format is None:
        suffix = Path(args.out).suffix.lower() if args.out else ""
        args.format = {".json": "json", ".csv": "csv"}.get(suffix, "table")
    if args.top < 1:
        raise ConfigError(f"--top {args.top}: give the number of genres to show (1 or more)")
    if args.threshold is not None and not (math.isfinite(args.threshold)
                                           and 0.0 <= args.threshold <= 1.0):
        raise ConfigError(f"--threshold {args.threshold}: give a score between 0 and 1 "
                          "(e.g. 0.5)")
    ckpts = list(args.model)
    rest = list(args.paths)
    while rest and _is_checkpoint(rest[0]):
        ckpts.append(rest.pop(0))
    if not ckpts:
        raise ConfigError(f"{args.paths[0]}: not a checkpoint (.pt file or run folder with "
                          "checkpoints/best.pt); usage: musicaffect predict CHECKPOINT AUDIO...")
    if not rest:
        raise ConfigError("no audio files given; usage: musicaffect predict CHECKPOINT AUDIO...")
    for path in rest:
        if Path(path).is_dir():
            if (Path(path) / "checkpoints").is_dir() or (Path(path) / "config.yaml").is_file():
                raise ConfigError(f"{path}: a run folder without checkpoints/best.pt (has its "
                                  "training finished an epoch?); models go first, then audio "
                                  "files")
            raise ConfigError(f"{path}: is a folder, not an audio file; give the files "
                              f"(e.g. {Path(path) / '*.wav'})")
    models = predict.load_models(ckpts, device=args.device)
    preds = predict.predict_files(models, rest, top=args.top,
                                  progress=args.format == "table" and not args.out,
                                  threshold=args.threshold)
    if args.out:
        from musicaffect.io import atomic_open

        try:   # a temporary file renamed into place: a failed write leaves no file
            with atomic_open(args.out, "w", newline="") as out:
                _write(out, preds, args, models)
        except OSError as err:
            # the path was fine a moment ago: keep the computed predictions anyway
            sys.stdout.write(f"cannot write {args.out} ({err.strerror}); the predictions:\n")
            _write(sys.stdout, preds, args, models)
            raise OutputError(f"{args.out}: cannot write the predictions ({err.strerror}); "
                              "they were printed above") from None
    else:
        _write(sys.stdout, preds, args, models)
    return 1 if any(p.error for p in preds) else 0


def _write(out, preds, args, models) -> None:
    from musicaffect import predict

    if args.format == "json":
        json.dump([p.to_dict(top=args.top) for p in preds], out, indent=2)
        out.write("\n")
    elif args.format == "csv":
        header, rows = predict.to_csv_rows(preds, top=args.top,
                                           targets=predict.model_targets(models))
        w = csv.writer(out)
        w.writerow(header)
        w.writerows(rows)
    else:
        out.write(predict.format_table(preds) + "\n")
