"""The ``musicaffect`` command-line program: a thin layer that parses and calls the library.

Each command group lives in its own module with a ``register(subparsers)`` function that adds
its sub-commands; every sub-command sets ``func(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from pathlib import Path

from musicaffect import __version__
from musicaffect.errors import MusicAffectError

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
    "musicaffect.cli.cache_cmds",    # cache
    "musicaffect.cli.embed_cmds",    # embed, tags
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
    import warnings

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        # a warning is a message to the user: one log line, without source paths
        logging.getLogger("musicaffect").warning("%s", message)

    warnings.showwarning = show


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the process exit code (0 ok, 1 failed check, 2 bad input).

    Known errors (:class:`MusicAffectError`) print their message. Any other exception prints
    one line (the exception, where its full log was written, "please report"); the
    traceback itself is shown only with ``-v``.
    """
    # process-wide tuning belongs to the program, not the library: idle OpenMP threads sleep
    # (set before any command imports torch) and glibc keeps freed memory for reuse
    from musicaffect.runtime import tune_process

    tune_process()
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
        if args.command == "train":
            log.error("interrupted; finished epochs are kept (rerun with --resume to continue)")
        else:
            log.error("interrupted; finished work is kept (rerun the command to continue)")
        return 130
    except Exception as err:  # noqa: BLE001 - the one crash-free exit of the program
        from musicaffect.outputs import disk_error_message

        disk = disk_error_message(err, where=getattr(args, "out", None))
        if disk:   # a full or read-only disk is not a bug: name it and what to do
            log.error("%s", disk)
            return 2
        return _report_crash(err, args, sys.argv[1:] if argv is None else argv)


def crash_log_dir() -> Path:
    """Where crash logs go: ``<clip cache folder>/logs``."""
    from musicaffect.data.cache import default_cache_dir

    return default_cache_dir() / "logs"


def _report_crash(err: Exception, args, argv: list[str]) -> int:
    import platform
    import tempfile
    import time
    import traceback

    text = "".join(traceback.format_exception(type(err), err, err.__traceback__))
    head = (f"musicaffect {__version__}, Python {platform.python_version()}, "
            f"{platform.platform()}\ncommand: musicaffect {' '.join(map(str, argv))}\n"
            f"time: {time.strftime('%Y-%m-%d %H:%M:%S')}\n\n")
    name = f"crash-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    where = None
    for folder in (crash_log_dir(), Path(tempfile.gettempdir())):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / name).write_text(head + text)
            where = folder / name
            break
        except OSError:
            continue
    summary = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}".rstrip(": ")
    log_note = f"full log in {where}" if where else "no log could be written"
    log.error("unexpected error in `%s`: %s (%s). This is a bug in musicaffect: please "
              "report it with the log%s", args.command, summary, log_note,
              "" if args.verbose else "; -v shows the traceback")
    if args.verbose:
        sys.stderr.write(text)
    return 3


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
