"""A memory-mapped float32 store of every clip of one (folder, split).

The first read of a split folder loads (and decompresses) every clip once and writes them,
time-major, into one float32 file of shape (sum_T, 140) plus an index (ids, offsets,
lengths) and a fingerprint of the source files (names, sizes, mtimes). Later reads
memory-map that file, so an epoch never touches gzip again. The store is rebuilt when the
fingerprint no longer matches the folder.

Corruption is detected: the build stores a BLAKE2b digest of every clip's bytes. Opening a
store checks the file size and the digests of a sample of clips (all of them for stores up
to :data:`VERIFY_ALL_BYTES`); :meth:`ClipStore.verify` (``musicaffect cache --verify``)
checks every clip. A store that fails is rebuilt, with a warning that names the clip.

A build writes into a temporary folder next to the cache, writes the completion marker
last and then renames the folder into place, so an interrupted build never looks valid.
Clips that fail to load are recorded in the index (``bad``) instead of aborting the build;
asking for one raises the :class:`DataError` it raised.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import mmap
import os
import shutil
import uuid
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from musicaffect.data.arrays import N_ROWS, load_array
from musicaffect.data.layout import list_clip_files
from musicaffect.errors import DataError
from musicaffect.outputs import pid_alive

log = logging.getLogger(__name__)

#: bump when the on-disk format changes (older caches are then rebuilt)
FORMAT_VERSION = 2
DATA_FILE = "clips.f32"
INDEX_FILE = "index.json"
COMPLETE_MARKER = "COMPLETE"
_PAGE = mmap.PAGESIZE
#: stores up to this size are checked whole at every open; larger ones by a sample
VERIFY_ALL_BYTES = 64 * 2**20
#: bytes of clips checked at the open of a larger store (first, last and random clips)
VERIFY_SAMPLE_BYTES = 16 * 2**20


def clip_digest(data) -> str:
    """BLAKE2b (128-bit) hex digest of one clip's stored bytes."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def default_cache_dir() -> Path:
    """``$MUSICAFFECT_CACHE`` if set, else ``~/.cache/musicaffect``."""
    env = os.environ.get("MUSICAFFECT_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "musicaffect"


def fingerprint(files: dict[str, Path]) -> str:
    """Hash of the names, sizes and modification times of a folder's clip files."""
    h = hashlib.sha256()
    for cid in sorted(files):
        st = files[cid].stat()
        h.update(f"{files[cid].name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def store_dir(source: str | os.PathLike, *, cache_dir: str | os.PathLike | None = None) -> Path:
    """Cache folder of one source split folder (e.g. ``.../fma_genre_spectrograms/train``)."""
    source = Path(source).resolve()
    key = hashlib.sha256(str(source).encode()).hexdigest()[:16]
    base = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    return base / f"{source.parent.name}-{source.name}-{key}"


def _remove_stale_temps(final: Path) -> None:
    """Remove temporary build folders of ``final`` left by builders that no longer run."""
    for tmp in final.parent.glob(f".{final.name}.tmp-*"):
        try:
            pid = int(tmp.name.rsplit("-", 2)[-2])
        except ValueError:
            pid = -1
        if pid == os.getpid() or not pid_alive(pid):
            shutil.rmtree(tmp, ignore_errors=True)


def prune_orphans(cache_dir: str | os.PathLike | None = None) -> list[Path]:
    """Remove caches whose source folder no longer exists (e.g. deleted temporary data).

    Returns the removed cache folders.
    """
    removed = []
    for entry, source in list_caches(cache_dir):
        if source is not None and not source.is_dir():
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    if removed:
        log.info("removed %d caches of folders that no longer exist", len(removed))
    return removed


class ClipStore:
    """Memory-mapped float32 clips of one split folder, stored time-major.

    Parameters
    ----------
    source : str or os.PathLike
        A split folder holding ``<id>*.npy`` / ``<id>*.npy.gz`` files.
    cache_dir : str or os.PathLike, optional
        Where caches live (default :func:`default_cache_dir`).
    progress : bool
        Show a progress bar while building.

    Attributes
    ----------
    ids : list of str
        Clip ids in store order.
    lengths : np.ndarray [shape=(n_clips,), dtype=int64]
        Frames T of each clip.
    bad : dict[str, str]
        Clip id -> error message of clips that failed to load (not stored).
    path : Path
        The cache folder.
    built : bool
        True when this instance (re)built the cache.
    repaired : list of str
        Clips whose stored bytes did not match their checksum at open (the store was then
        rebuilt); empty normally.
    verify : {"sample", "full", "none"}
        How much of an existing store is checked against its checksums when opened.

    Examples
    --------
    >>> store = ClipStore("data/fma_genre_spectrograms/train")  # doctest: +SKIP
    >>> store.get("1042").shape  # (T, 140) float32
    """

    def __init__(self, source: str | os.PathLike, *, cache_dir: str | os.PathLike | None = None,
                 progress: bool = True, verify: str = "sample"):
        self.source = Path(source)
        if not self.source.is_dir():
            raise DataError("split folder is missing: restore it from the dataset download",
                            path=self.source)
        self.path = store_dir(self.source, cache_dir=cache_dir)
        files = list_clip_files(self.source)
        fp = fingerprint(files)
        self._fh = self._mm = None
        self._direct: dict[str, Path] | None = None
        self.repaired: list[str] = []
        index = self._read_valid_index(fp)
        self.built = index is None
        if index is not None:
            self._load(index)
            if verify != "none":
                self.repaired = self.verify(full=verify == "full")
            if self.repaired:
                log.warning("%s: the clip cache is corrupt (clip %s%s does not match its "
                            "checksum): rebuilding it from %s", self.path, self.repaired[0],
                            f" and {len(self.repaired) - 1} more" * (len(self.repaired) > 1),
                            self.source)
                self.close()
                index = None
        if index is None:
            self.built = True
            try:
                self._build(files, fp, progress=progress)
            except OSError as err:
                if err.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
                    raise
                log.warning("%s: the clip cache cannot be written there (%s): reading the "
                            "clips from their files without a cache (slower); give a "
                            "writable cache folder (MUSICAFFECT_CACHE or data.cache_dir) to "
                            "speed this up", self.path.parent, err.strerror)
                self._load_direct(files)
                return
            index = self._read_valid_index(fp)
            if index is None:
                raise DataError("the cache just built does not read back: check free disk "
                                "space and permissions, or pass another cache_dir",
                                path=self.path)
            self._load(index)

    def _load(self, index: dict) -> None:
        self.ids: list[str] = list(index["ids"])
        self.offsets = np.asarray(index["offsets"], dtype=np.int64)
        self.lengths = np.asarray(index["lengths"], dtype=np.int64)
        self.bad: dict[str, str] = dict(index["bad"])
        self.sources: dict[str, str] = dict(index["sources"])
        self.digests: list[str] = list(index["digests"])
        self._row = {cid: k for k, cid in enumerate(self.ids)}
        self._open()

    def _load_direct(self, files: dict[str, Path]) -> None:
        """No cache: clips are read from their files by :meth:`get` (lengths known here)."""
        ids, lengths, bad, sources = [], [], {}, {}
        for cid in sorted(files):
            sources[cid] = files[cid].name
            try:
                a = load_array(files[cid])  # (140, T) float32
            except DataError as err:
                bad[cid] = str(err)
                continue
            ids.append(cid)
            lengths.append(a.shape[1])
        self._direct = dict(files)
        self._load({"ids": ids, "offsets": [0] * len(ids), "lengths": lengths, "bad": bad,
                    "sources": sources, "digests": []})

    # -- checking ---------------------------------------------------------------------------
    def verify(self, *, full: bool = True) -> list[str]:
        """Ids of the clips whose stored bytes do not match their build-time checksum.

        ``full=False`` checks every clip of a store up to :data:`VERIFY_ALL_BYTES`, else the
        first, the last and random clips up to :data:`VERIFY_SAMPLE_BYTES`.
        """
        n = len(self.ids)
        if n == 0:
            return []
        row_bytes = 4 * N_ROWS
        order = list(range(n))
        if not full and int(self.lengths.sum()) * row_bytes > VERIFY_ALL_BYTES:
            rest = np.random.default_rng().permutation(np.arange(1, n - 1)).tolist()
            order, budget = [], VERIFY_SAMPLE_BYTES
            for k in [0, n - 1, *rest]:
                if budget <= 0:
                    break
                order.append(k)
                budget -= int(self.lengths[k]) * row_bytes
        view = memoryview(self._mm)
        bad = []
        try:
            for k in order:
                start, stop = int(self.offsets[k]), int(self.offsets[k] + self.lengths[k])
                if clip_digest(view[start * row_bytes:stop * row_bytes]) != self.digests[k]:
                    bad.append(self.ids[k])
                self._release(start, stop)
        finally:
            view.release()
        return bad

    # -- building ---------------------------------------------------------------------------
    def _read_valid_index(self, fp: str) -> dict | None:
        """The index of an existing, complete cache matching ``fp``, else None."""
        if not (self.path / COMPLETE_MARKER).is_file():
            return None
        try:
            index = json.loads((self.path / INDEX_FILE).read_text())
            size = (self.path / DATA_FILE).stat().st_size
        except (OSError, ValueError):
            return None
        if index.get("version") != FORMAT_VERSION or index.get("fingerprint") != fp:
            return None
        if size != 4 * N_ROWS * int(sum(index["lengths"])):
            return None
        if len(index.get("digests", ())) != len(index["ids"]):
            return None
        return index

    def _build(self, files: dict[str, Path], fp: str, *, progress: bool) -> None:
        final = self.path
        final.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_temps(final)
        prune_orphans(final.parent)
        tmp = final.parent / f".{final.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        log.info("building the clip cache of %s in %s (once; later reads are memory-mapped)",
                 self.source, final)
        ids: list[str] = []
        offsets: list[int] = []
        lengths: list[int] = []
        bad: dict[str, str] = {}
        sources: dict[str, str] = {}
        digests: list[str] = []
        offset = 0
        try:
            with open(tmp / DATA_FILE, "wb") as fh:
                order = sorted(files)
                for cid in tqdm(order, desc=f"caching {self.source.parent.name}/"
                                f"{self.source.name}", unit="clip", disable=not progress or None):
                    try:
                        a = load_array(files[cid])  # (140, T) float32
                    except DataError as err:
                        bad[cid] = str(err)
                        sources[cid] = files[cid].name
                        log.warning("not cached: %s", err)
                        continue
                    data = np.ascontiguousarray(a.T).tobytes()  # (T, 140) time-major
                    fh.write(data)
                    digests.append(clip_digest(data))
                    ids.append(cid)
                    offsets.append(offset)
                    lengths.append(a.shape[1])
                    sources[cid] = files[cid].name
                    offset += a.shape[1]
                fh.flush()
                os.fsync(fh.fileno())
            index = {"version": FORMAT_VERSION, "fingerprint": fp,
                     "source": str(self.source.resolve()), "n_rows": N_ROWS, "ids": ids,
                     "offsets": offsets, "lengths": lengths, "bad": bad, "sources": sources,
                     "digests": digests}
            (tmp / INDEX_FILE).write_text(json.dumps(index))
            (tmp / COMPLETE_MARKER).write_text("ok\n")  # last: the build is complete
            self._replace(tmp, final)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    @staticmethod
    def _replace(tmp: Path, final: Path) -> None:
        """Move the finished build into place (atomically; an old cache is removed first)."""
        if final.exists():
            trash = final.parent / f".{final.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            try:
                os.rename(final, trash)
            except FileNotFoundError:
                trash = None
            if trash is not None:
                shutil.rmtree(trash, ignore_errors=True)
        try:
            os.rename(tmp, final)
        except OSError:
            # another process finished the same build first: keep its copy
            log.debug("cache %s was built concurrently; using that one", final)

    # -- reading ----------------------------------------------------------------------------
    def _open(self) -> None:
        total = int(self.lengths.sum())
        self._fh = None
        self._mm = None
        if total == 0 or getattr(self, "_direct", None) is not None:
            self._data = np.zeros((0, N_ROWS), dtype=np.float32)
            return
        self._fh = open(self.path / DATA_FILE, "rb")
        self._mm = mmap.mmap(self._fh.fileno(), 0, access=mmap.ACCESS_READ)
        self._data = np.frombuffer(self._mm, dtype=np.float32).reshape(total, N_ROWS)

    def close(self) -> None:
        """Release the memory map (the store cannot be read afterwards)."""
        self._data = np.zeros((0, N_ROWS), dtype=np.float32)
        if self._mm is not None:
            self._mm.close()
            self._mm = None
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, cid: object) -> bool:
        return cid in self._row

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        for key in ("_fh", "_mm", "_data"):
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._open()

    def _locate(self, cid: str) -> int:
        if cid not in self._row:
            if cid in self.bad:
                path = str(self.source / self.sources.get(cid, cid))
                message = self.bad[cid].removeprefix(f"{path}: ")
                raise DataError(message, path=path)
            raise KeyError(f"clip {cid!r} is not in the cache of {self.source}")
        return self._row[cid]

    def length(self, cid: str) -> int:
        """Frames T of a clip (raises the clip's DataError if it failed to load)."""
        return int(self.lengths[self._locate(cid)])

    def get(self, cid: str, *, rows: slice | None = None) -> np.ndarray:
        """One clip, time-major, as an in-memory copy.

        Parameters
        ----------
        cid : str
            Clip id.
        rows : slice, optional
            Feature rows to keep (e.g. ``arrays.VIEW_ROWS["mel"]``); default all 140.

        Returns
        -------
        np.ndarray [shape=(T, F), dtype=float32]
        """
        k = self._locate(cid)
        if self._direct is not None:   # no cache (read-only cache folder)
            a = load_array(self._direct[cid]).T  # (T, 140)
            return np.array(a if rows is None else a[:, rows], dtype=np.float32)
        start, stop = int(self.offsets[k]), int(self.offsets[k] + self.lengths[k])
        block = self._data[start:stop]  # (T, 140) view of the map
        out = np.array(block if rows is None else block[:, rows], dtype=np.float32)
        self._release(start, stop)
        return out

    def _release(self, start: int, stop: int) -> None:
        """Drop the mapped pages of a clip from this process (the OS page cache keeps them),
        so reading an epoch does not grow the resident memory by the whole store."""
        if self._mm is None or not hasattr(mmap, "MADV_DONTNEED"):
            return
        row_bytes = 4 * N_ROWS
        first = (start * row_bytes + _PAGE - 1) // _PAGE * _PAGE
        last = stop * row_bytes // _PAGE * _PAGE
        if last > first:
            self._mm.madvise(mmap.MADV_DONTNEED, first, last - first)


def list_caches(cache_dir: str | os.PathLike | None = None) -> list[tuple[Path, Path | None]]:
    """``(cache folder, source split folder or None)`` of every complete cache in a cache dir."""
    base = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    out: list[tuple[Path, Path | None]] = []
    if not base.is_dir():
        return out
    for entry in sorted(base.iterdir()):
        index_file = entry / INDEX_FILE
        if entry.name.startswith(".") or not index_file.is_file():
            continue
        try:
            source = json.loads(index_file.read_text()).get("source")
        except (OSError, ValueError):
            source = None
        out.append((entry, Path(source) if source else None))
    return out


def verify_cache(source: str | os.PathLike, *, cache_dir: str | os.PathLike | None = None,
                 progress: bool = False) -> tuple[str, str]:
    """Check every clip of the cache of one split folder against its checksums; rebuild it
    when it is corrupt or stale. Returns ``(status, message)`` with status ``"ok"``,
    ``"rebuilt"`` or ``"not cached"`` (nothing is built then)."""
    path = store_dir(source, cache_dir=cache_dir)
    if not (path / COMPLETE_MARKER).is_file():
        return "not cached", f"{source}: no cache yet (built at first use)"
    store = ClipStore(source, cache_dir=cache_dir, progress=progress, verify="full")
    try:
        if store.repaired:
            return "rebuilt", (f"{store.path}: CORRUPT ({len(store.repaired)} clip(s) did not "
                               f"match their checksum, e.g. {store.repaired[0]}): rebuilt "
                               f"from {source}")
        if store.built:
            return "rebuilt", (f"{store.path}: out of date or unreadable (the source files "
                               f"changed): rebuilt from {source}")
        return "ok", f"{store.path}: ok ({len(store)} clips match their checksums)"
    finally:
        store.close()
