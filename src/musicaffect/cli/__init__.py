"""The ``musicaffect`` command-line program: a thin layer that parses and calls the library.

Each command group lives in its own module with a ``register(subparsers)`` function that adds
its sub-commands; every sub-command sets ``func(args) -> int``.
"""

from __future__ import annotations

import os

# Idle OpenMP threads sleep instead of spinning: on a busy CPU (or with several training
# processes on one machine) spinning threads make small RNN/CNN steps many times slower.
# Read once when torch starts, so it is set before anything imports torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse  # noqa: E402
import importlib  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402

from musicaffect import __version__  # noqa: E402
from musicaffect.errors import MusicAffectError  # noqa: E402

log = logging.getLogger("musicaffect")

#: command-group modules, in the order their commands appear in ``--help``
COMMAND_MODULES = (
    "musicaffect.cli.data_cmds",     # sample-data, explore
    "musicaffect.cli.train_cmds",    # train, evaluate, suite, submit
    "musicaffect.cli.cv_cmds",       # ensemble, cv
    "musicaffect.cli.audio_cmds",    # build-dataset
    "musicaffect.cli.predict_cmds",  # predict
    "musicaffect.cli.model_cmds",    # export
    "musicaffect.cli.lab_cmds",      # lab, report
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="musicaffect",
        description="Music genre recognition and emotion extraction from spectrograms "
                    "(NTUA Pattern Recognition Lab 3, as software).",
    )
    parser.add_argument("--version", action="version", version=f"musicaffect {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more log output (-vv for debug)")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def _setup_logging(verbose: int, quiet: bool) -> None:
    level = logging.WARNING if quiet else (logging.DEBUG if verbose > 1 else logging.INFO)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr, force=True)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the process exit code (0 ok, 1 failed check, 2 bad input)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _setup_logging(args.verbose, args.quiet)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except MusicAffectError as err:
        log.error("%s", err)
        return 2
    except KeyboardInterrupt:
        log.error("interrupted; finished work is kept (rerun with --resume to continue)")
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
