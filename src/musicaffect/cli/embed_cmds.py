"""``embed`` (musicnn embeddings as a view of a data root) and ``tags`` (musicnn's top tags)."""

from __future__ import annotations

import argparse

from musicaffect.features.params import MUSICNN_MODELS

#: --model's short names
MODEL_CHOICES: dict[str, str] = {m.split("_")[0].lower(): m for m in MUSICNN_MODELS}


def register(sub: argparse._SubParsersAction) -> None:
    """Add this group's sub-commands to ``sub``."""
    p = sub.add_parser(
        "embed",
        help="add pretrained musicnn embeddings to a data root",
        description="Compute the pretrained musicnn embeddings (penultimate and pooling "
                    "layers, averaged over 3-s patches) of every clip of a data root and "
                    "store them under DATA_ROOT/embeddings/<model>/. With --audio (the folder "
                    "build-dataset read) the clips are embedded from their audio; otherwise "
                    "from their mel rows through the mel adapter, at each of --gains. "
                    "Interrupted runs resume; clips that fail are listed in errors.csv.",
    )
    p.add_argument("root", metavar="DATA_ROOT", help="data root (build-dataset or Kaggle layout)")
    p.add_argument("--model", choices=sorted(MODEL_CHOICES), default="msd",
                   help="msd: MSD_musicnn (default); mtt: MTT_musicnn")
    p.add_argument("--audio", metavar="AUDIO_DIR", default=None,
                   help="the audio folder the root's clips.csv paths are relative to")
    p.add_argument("--gains", nargs="+", default=None, metavar="GAIN",
                   help="adapter gains to store: positive numbers and/or 'clip' (per-clip "
                        "level normalisation); default: clip 1 10 100 1000")
    p.add_argument("--jobs", type=int, default=1,
                   help="worker processes (default 1: one process, all its threads)")
    p.add_argument("--device", default=None, help="cpu, cuda ... (default: cuda if available)")
    p.add_argument("--no-resume", dest="resume", action="store_false",
                   help="re-embed every clip instead of keeping those already done")
    p.set_defaults(func=_embed)

    p = sub.add_parser(
        "tags",
        help="print the top musicnn tags of songs",
        description="Print the most likely musicnn tags of each song (the taggram averaged "
                    "over its 3-s patches), with their probabilities.",
    )
    p.add_argument("songs", nargs="+", metavar="SONG", help="audio files")
    p.add_argument("--top", type=int, default=5, metavar="K", help="tags per song (default 5)")
    p.add_argument("--model", choices=sorted(MODEL_CHOICES), default="msd",
                   help="msd: MSD_musicnn (default); mtt: MTT_musicnn")
    p.add_argument("--device", default=None, help="cpu, cuda ... (default: cuda if available)")
    p.set_defaults(func=_tags)


def _embed(args: argparse.Namespace) -> int:
    from musicaffect.features.embed import DEFAULT_GAINS, embed_root

    report = embed_root(args.root, model=MODEL_CHOICES[args.model], audio_dir=args.audio,
                        gains=args.gains or DEFAULT_GAINS, jobs=args.jobs, resume=args.resume,
                        device=args.device)
    print(report.summary())
    if report.way == "adapter":
        print("gains: " + ", ".join(str(g) for g in report.gains))
    if report.failed:
        print(f"{report.failed} clips could not be embedded: see {report.errors_file}")
    return 0 if report.done + report.skipped else 2


def _tags(args: argparse.Namespace) -> int:
    from musicaffect.features.embed import top_tags

    results = top_tags(args.songs, k=args.top, model=MODEL_CHOICES[args.model],
                       device=args.device)
    for song, tags in zip(args.songs, results):
        print(f"{song}: " + ", ".join(f"{name} {p:.2f}" for name, p in tags))
    return 0
