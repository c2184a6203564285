"""Data commands: ``sample-data`` (write a synthetic or score-based dataset) and ``explore``
(lab steps 1-4)."""

from __future__ import annotations

import argparse


def _sample_data(args: argparse.Namespace) -> int:
    from musicaffect.outputs import claiming

    with claiming(args.out, "sample-data", legacy=_old_sample_root):
        root = _write_sample(args)
    print(f"sample data written to {root}")
    return 0


def _write_sample(args: argparse.Namespace):
    if args.source == "scores":
        from musicaffect.samples.build import build_scores_sample

        root = build_scores_sample(args.out, size=args.size, seed=args.seed,
                                   label_by=args.label_by or "style")
    else:
        from musicaffect.data.sample import write_sample_dataset
        from musicaffect.errors import ConfigError

        if args.label_by is not None:
            raise ConfigError("--label-by applies to --source scores only: drop it, or add "
                              "--source scores")
        if args.size == "dev":
            raise ConfigError("--size dev applies to --source scores only: use small or full "
                              "for synthetic data")
        root = write_sample_dataset(args.out, size=args.size, seed=args.seed, gz=args.gz)
    return root


def _old_sample_root(p) -> bool:
    """A sample root written before output folders had markers."""
    from musicaffect.data.layout import FOLDERS, SYNTHETIC_MARKER

    text = (p / SYNTHETIC_MARKER).read_text(errors="replace") if (
        p / SYNTHETIC_MARKER).is_file() else ""
    sample = text.startswith("SYNTHETIC DATA") or (p / "SOURCE.txt").is_file()
    return sample and any((p / f).is_dir() for f in set(FOLDERS.values()))


def _explore(args: argparse.Namespace) -> int:
    from musicaffect.explore import run_explore
    from musicaffect.outputs import claiming

    with claiming(args.out, "explore", writes=("summary.md", "summary.json")):
        result = run_explore(args.data_root, args.out, seed=args.seed, dpi=args.dpi)
    if result["synthetic"]:
        print("note: this data root holds SYNTHETIC sample data")
    for clip in result["clips"]:
        s = clip["shapes"]
        print(f"clip {clip['id']} ({clip['genre20']}): mel full {tuple(s['mel_full'])}, "
              f"mel beat {tuple(s['mel_beat'])}, chroma full {tuple(s['chroma_full'])}, "
              f"chroma beat {tuple(s['chroma_beat'])}")
    before, after = result["counts_before"], result["counts_after"]
    print(f"training clips: {sum(before.values())} in {len(before)} genres -> "
          f"{sum(after.values())} in {len(after)} classes")
    print(f"figures and summary written to {args.out} (summary.md)")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add this group's sub-commands to ``sub``."""
    p = sub.add_parser("sample-data", help="write a sample dataset in the Kaggle layout",
                       description="Write a dataset in the exact layout of the Kaggle dataset "
                                   "(patreco3-multitask-affective-music). The default source "
                                   "is synthetic (marked by SYNTHETIC.txt).")
    p.add_argument("out", metavar="OUT", help="data root to write")
    p.add_argument("--size", choices=("small", "dev", "full"), default="small",
                   help="small: seconds, for tests and demos (scores: ~42 clips, 6 styles); "
                        "full (synthetic only): the real dataset's sizes (about 8 GB as "
                        ".npy); dev (scores only): ~350 clips over 8 styles, to choose "
                        "models with (about an hour on 2 cores)")
    p.add_argument("--gz", action="store_true",
                   help="write .npy.gz files (the original release) instead of .npy")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--source", choices=("synthetic", "scores"), default="synthetic",
                   help="synthetic arrays (default) or features of rendered scores")
    p.add_argument("--label-by", choices=("genre", "style"), default=None,
                   help="scores only: what the genre labels hold, the style's own name "
                        "(chorale, quartet, ...; default) or the FMA genre of each style")
    p.set_defaults(func=_sample_data)

    p = sub.add_parser("explore", help="lab steps 1-4: spectrograms, shapes, class histograms",
                       description="Plot two random training clips (mel and chroma, full rate "
                                   "and beat-synchronous), print their shapes and plot the "
                                   "clips per class before and after the 20 -> 10 mapping.")
    p.add_argument("data_root", metavar="DATA_ROOT", help="data root (Kaggle layout)")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for PNGs and summary")
    p.add_argument("--seed", type=int, default=0, help="picks the two clips (default 0)")
    p.add_argument("--dpi", type=int, default=110, help="resolution of the PNG files")
    p.set_defaults(func=_explore)
