"""Command ``cache``: list the clip caches, or check them fully (``--verify``)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "cache", help="list the clip caches or verify their checksums (--verify)",
        description="The clip cache ($MUSICAFFECT_CACHE, else ~/.cache/musicaffect) holds "
                    "every split folder read for training as one memory-mapped file, with a "
                    "checksum per clip. Opening a cache checks a sample; --verify checks "
                    "every clip and rebuilds a corrupt or out-of-date cache.")
    p.add_argument("data_root", nargs="?", metavar="DATA_ROOT",
                   help="only the caches of this data root (default: every cache)")
    p.add_argument("--verify", action="store_true",
                   help="check every clip against its checksum; rebuild what does not match")
    p.add_argument("--cache-dir", help="cache folder (default $MUSICAFFECT_CACHE or "
                   "~/.cache/musicaffect)")
    p.set_defaults(func=cmd_cache)


def _sources(args) -> list[Path]:
    from musicaffect.data.cache import list_caches
    from musicaffect.data.layout import FOLDERS, SPLITS
    from musicaffect.errors import DataError

    if args.data_root:
        root = Path(args.data_root)
        if not root.is_dir():
            raise DataError("data root does not exist", path=root)
        return [root / folder / split for folder in FOLDERS.values() for split in SPLITS
                if (root / folder / split).is_dir()]
    return [src for _, src in list_caches(args.cache_dir) if src is not None]


def cmd_cache(args) -> int:
    from musicaffect.data.cache import list_caches, store_dir, verify_cache

    if not args.verify:
        caches = list_caches(args.cache_dir)
        if args.data_root:
            wanted = {store_dir(s, cache_dir=args.cache_dir) for s in _sources(args)}
            caches = [(c, s) for c, s in caches if c in wanted]
        for cache, src in caches:
            size = sum(f.stat().st_size for f in cache.iterdir() if f.is_file())
            state = "" if src is not None and src.is_dir() else "  (source folder is gone)"
            print(f"{cache}  {size / 2**20:.1f} MiB  <- {src}{state}")
        if not caches:
            print("no clip caches")
        return 0
    statuses = []
    for src in _sources(args):
        if not src.is_dir():
            print(f"{src}: source folder is gone; delete its cache")
            continue
        status, message = verify_cache(src, cache_dir=args.cache_dir, progress=True)
        statuses.append(status)
        print(message)
    if not statuses:
        print("no clip caches to verify")
    n_rebuilt = statuses.count("rebuilt")
    if n_rebuilt:
        print(f"{n_rebuilt} cache(s) rebuilt")
    return 0
