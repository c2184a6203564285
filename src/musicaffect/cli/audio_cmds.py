"""``build-dataset``: a dataset in the Kaggle layout from a folder of audio files."""

from __future__ import annotations

import argparse

from musicaffect.features.params import LENGTH_RULES


def register(sub: argparse._SubParsersAction) -> None:
    """Add this group's sub-commands to ``sub``."""
    p = sub.add_parser(
        "build-dataset",
        help="extract the dataset's features from audio files into the Kaggle layout",
        description="Extract log-mel + chroma features (full and beat-synchronous) from the "
                    "audio files listed in a labels CSV and write them in the Kaggle layout. "
                    "CSV columns: file (relative to AUDIO_DIR), genre (any names), split "
                    "(train/test), group (kept on one side of every split), and any numeric "
                    "target columns (valence, arousal, tension ...; 0/1 columns are binary "
                    "targets). The classes and targets are written to OUT/labels.json. "
                    "Files that cannot be used are listed in OUT/errors.csv.",
    )
    p.add_argument("audio_dir", metavar="AUDIO_DIR", help="folder holding the audio files")
    p.add_argument("out", metavar="OUT", help="data root to write")
    p.add_argument("--labels", required=True, metavar="CSV", help="labels CSV")
    p.add_argument("--test-fraction", type=float, default=0.2,
                   help="share of clips put in the test split when the CSV has no split "
                        "(stratified by genre; default 0.2)")
    p.add_argument("--seed", type=int, default=0, help="seed of the split (default 0)")
    p.add_argument("--jobs", type=int, default=None,
                   help="worker processes (default: all cores)")
    p.add_argument("--clip-seconds", type=float, default=30.0,
                   help="clip length of the length rule (default 30)")
    p.add_argument("--length-rule", choices=LENGTH_RULES, default="crop",
                   help="crop: cut longer clips to their central part, keep shorter ones; "
                        "pad: also zero-pad shorter ones; keep: full length (default crop)")
    p.add_argument("--genre-map", default="auto", metavar="lab|none|FILE",
                   help="lab: the 20 FMA genre names mapped to the lab's 10 classes; none: "
                        "your genre names are the classes; FILE: a JSON or two-column CSV "
                        "(genre,class) mapping; auto (default): lab when every name is an "
                        "FMA name, else none")
    p.add_argument("--segment", type=float, default=None, metavar="SECONDS",
                   help="cut every file into consecutive clips of SECONDS (each clip keeps "
                        "its file as group, so a song never crosses a split)")
    p.add_argument("--no-resume", dest="resume", action="store_false",
                   help="recompute every clip instead of skipping those already built")
    p.set_defaults(func=_build_dataset)


def _build_dataset(args: argparse.Namespace) -> int:
    from musicaffect.features.build import CLIPS_FILE, ERRORS_FILE, PARAMS_FILE, build_dataset
    from musicaffect.outputs import claiming

    with claiming(args.out, "build-dataset",
                  writes=(CLIPS_FILE, ERRORS_FILE, PARAMS_FILE, "labels.json"),
                  legacy=lambda p: (p / PARAMS_FILE).is_file() and (p / CLIPS_FILE).is_file()):
        report = build_dataset(args.audio_dir, args.out, labels_csv=args.labels,
                               test_fraction=args.test_fraction, seed=args.seed,
                               jobs=args.jobs, clip_seconds=args.clip_seconds,
                               length_rule=args.length_rule, resume=args.resume,
                               progress=None, genre_map=args.genre_map, segment=args.segment)
    print(report.summary())
    if report.failed:
        print(f"{report.failed} files could not be used: see {report.errors_file}")
    print(f"parameters: {report.params_file}; clip ids: {report.clips_file}; "
          f"labels: {report.labels_file}")
    if report.built == 0:
        print("nothing could be built")
        return 2
    return 0
