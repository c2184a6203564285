"""Model commands: ``export`` (a trained network to ONNX or TorchScript)."""

from __future__ import annotations

import argparse
from pathlib import Path

#: the ``--format`` choices, named here so that ``--help`` does not import torch
#: (``musicaffect.export.FORMATS`` owns the suffixes; a test keeps the two in step)
EXPORT_FORMATS = ("onnx", "torchscript")


def register(sub: argparse._SubParsersAction) -> None:
    """Add this group's sub-commands to ``sub``."""
    p = sub.add_parser(
        "export",
        help="write a trained network as ONNX or TorchScript",
        description="Export the network of a checkpoint (input normalisation, backbone and "
                    "heads; the audio feature front-end stays in Python). Inputs: x (B, T, F) "
                    "float32 features and lengths (B,) int64; outputs: embedding and one per "
                    "task (logits or regression values). The file is checked against PyTorch.",
    )
    p.add_argument("checkpoint", metavar="CHECKPOINT", help="a .pt checkpoint or a run folder")
    p.add_argument("--format", dest="fmt", choices=EXPORT_FORMATS, default="onnx",
                   help="export format (default: onnx)")
    p.add_argument("--out", type=Path, default=None,
                   help="output file (default: next to the checkpoint, suffix .onnx or "
                        ".torchscript.pt)")
    p.add_argument("--which", choices=("best", "last"), default="best",
                   help="checkpoint to use when CHECKPOINT is a run folder (default: best)")
    p.add_argument("--example-length", type=int, default=64,
                   help="time length of the tracing example (any length works afterwards)")
    p.set_defaults(func=cmd_export)


def default_export_path(checkpoint: str | Path, fmt: str) -> Path:
    """``run/checkpoints/best.pt`` -> ``run/checkpoints/best.onnx`` (or ``.torchscript.pt``)."""
    from musicaffect.export import FORMATS

    checkpoint = Path(checkpoint)
    return checkpoint.with_name(checkpoint.name.removesuffix(".pt") + FORMATS[fmt])


def _refuse_non_networks(run: Path) -> None:
    """Only a deep run holds one network to export: say which family a folder is instead of
    "train first" (the registry recognises it)."""
    from musicaffect.errors import ConfigError
    from musicaffect.families.registry import recognise

    found = recognise(run)
    if found is not None and not found[0].fallback:
        raise ConfigError(f"{run}: a {found[0].name} model folder; export writes one neural "
                          "network (ONNX/TorchScript) from a deep run's checkpoint. Use this "
                          "folder itself with predict, evaluate or submit (an ensemble: "
                          "export its deep members one by one)")


def cmd_export(args: argparse.Namespace) -> int:
    """Load the checkpoint, export it, print the written path."""
    from musicaffect.export import export_model
    from musicaffect.models.checkpoint import load_model
    from musicaffect.paths import check_output_file

    if args.out:
        check_output_file(args.out, what="exported model")
    _refuse_non_networks(Path(args.checkpoint))
    model, ckpt = load_model(args.checkpoint, which=args.which)
    out = args.out or default_export_path(ckpt["path"], args.fmt)
    check_output_file(out, what="exported model")
    from musicaffect.data.vocab import vocabulary_of_checkpoint
    from musicaffect.models.checkpoint import task_specs
    from musicaffect.tasks import multiclass_task, scalar_tasks

    vocab = vocabulary_of_checkpoint(ckpt)
    specs = task_specs(ckpt)
    targets = scalar_tasks(specs)
    meta = {"classes": list(vocab.classes) if multiclass_task(specs) else [],
            "targets": targets, "kinds": {t: vocab.kind(t) for t in targets},
            "data": ckpt.get("data"),
            "checkpoint": str(ckpt["path"]), "epoch": ckpt.get("epoch")}
    path = export_model(model, out, fmt=args.fmt, example_length=args.example_length,
                        metadata=meta)
    print(path)
    return 0
