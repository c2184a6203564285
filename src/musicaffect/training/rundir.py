"""Run folders: what may be replaced, when a folder is claimed, and safe resumption.

Rules (issue 9, "nothing lost"):

- A run folder is recognised by its marker file (:data:`MARKER`) or, for runs written before
  the marker existed, by ``config.yaml`` (a run config) next to a ``checkpoints/`` folder.
  Nothing else is ever replaced or emptied.
- ``--overwrite`` refuses the data root, any folder holding the data root, the current
  directory and its parents. It only replaces a run folder or an empty folder.
- :func:`plan_run_dir` only inspects; nothing is created before the data and the model are
  ready. :class:`RunClaim` then claims the folder when training starts. A replaced run is
  written beside the old one (``.<name>.new-<pid>-<tag>``) and swapped in after its first
  checkpoint exists; until then the old run is untouched.
- A failure before the first checkpoint removes what the claim created; a run folder without
  a checkpoint (for example after SIGKILL during epoch 1) is reused by a plain rerun, and
  ``--resume`` on it starts from scratch and says so.
- ``--resume`` refuses a config that differs from the one in ``last.pt`` beyond
  :data:`RESUME_FREE_KEYS`, and lists the differing keys.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
import uuid
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from musicaffect.config import RESUME_FREE, keys_with
from musicaffect.errors import RunError
from musicaffect.outputs import (
    LOCK_FILE,
    MARKER,
    check_not_held,
    hold_folder,
    is_empty_folder,
    is_run_dir,
    pid_alive,
    release_folder,
)
from musicaffect.paths import check_output_dir

log = logging.getLogger(__name__)

#: file that marks a folder as a musicaffect run folder (written when training starts)

#: config keys that may change when a run is resumed (the fields marked
#: :data:`~musicaffect.config.RESUME_FREE`: they change how long, where or how fast, not what)
RESUME_FREE_KEYS = keys_with(RESUME_FREE)


def last_checkpoint(run_dir: Path) -> Path:
    return run_dir / "checkpoints" / "last.pt"


def has_checkpoint(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds a checkpoint or a finished model, of any family (deep:
    ``last.pt``, written with every checkpoint; classical: its JSON; ensemble:
    ``ensemble.json``: each family's ``checkpoint_files``)."""
    from musicaffect.families.registry import checkpoint_files

    return any((Path(run_dir) / f).is_file() for f in checkpoint_files())


def _inside(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


def _owner_pid(p: Path) -> int:
    # .<name>.new-<pid>-<tag> / .<name>.old-<pid>-<tag>
    try:
        return int(p.name.rsplit("-", 2)[-2])
    except (ValueError, IndexError):
        return -1


def _tidy_leftovers(run_dir: Path) -> None:
    """Finish or remove what a killed replacement left beside ``run_dir``.

    A swap is ``old -> .old-*``, ``.new-* -> run_dir``, remove ``.old-*``. When a process
    died between the two renames, ``run_dir`` is missing and the new run (which has its first
    checkpoint) is moved into place; staging folders without a checkpoint are removed.
    """
    parent = run_dir.parent
    if not parent.is_dir():
        return
    stale = [p for p in parent.glob(f".{run_dir.name}.new-*")
             if p.is_dir() and not pid_alive(_owner_pid(p))]
    for p in stale:
        if not run_dir.exists() and has_checkpoint(p):
            os.rename(p, run_dir)
            log.warning("%s: completed the replacement of the run that was interrupted "
                        "(moved %s into place)", run_dir, p.name)
        else:
            shutil.rmtree(p, ignore_errors=True)
    for p in parent.glob(f".{run_dir.name}.old-*"):
        if p.is_dir() and not pid_alive(_owner_pid(p)):
            if not run_dir.exists():
                os.rename(p, run_dir)   # the new run never arrived: keep the old one
            else:
                shutil.rmtree(p, ignore_errors=True)


def check_replaceable(run_dir: Path, data_root: str | os.PathLike | None) -> None:
    """Raise :class:`RunError` when ``run_dir`` must never be emptied or replaced."""
    here = Path.cwd().resolve()
    target = run_dir.resolve()
    if _inside(here, target):
        raise RunError(f"{run_dir}: is the current directory (or holds it); a run folder "
                       "is never replaced there: give a new --out folder")
    if data_root is not None and Path(data_root).exists():
        root = Path(data_root).resolve()
        if _inside(root, target):
            raise RunError(f"{run_dir}: is the data root or holds it ({data_root}); it is "
                           "never replaced: give another --out folder")
    if target == Path(target.anchor) or target == Path.home().resolve():
        raise RunError(f"{run_dir}: refusing to replace this folder; give a new --out folder")


@dataclass
class RunPlan:
    """What :func:`fit` will do with its run folder (decided before anything is written)."""

    run_dir: Path
    mode: str                    # fresh | reuse | resume | replace
    notes: list[str] = field(default_factory=list)
    data_root: str | os.PathLike | None = None

    @property
    def resumes(self) -> bool:
        return self.mode == "resume"


def plan_run_dir(run_dir: str | os.PathLike, *, data_root=None, resume: bool = False,
                 overwrite: bool = False) -> RunPlan:
    """Decide, without writing anything, how a run may use ``run_dir``.

    - missing or empty folder: ``fresh`` (``--resume`` then starts from scratch and says so);
    - a run folder without a checkpoint (a run that failed or was killed before its first
      checkpoint): ``reuse`` (the same with ``--resume``);
    - a run folder with ``checkpoints/last.pt``: ``resume`` with ``--resume``, ``replace``
      with ``--overwrite``, else :class:`RunError`;
    - anything else (a file, a folder that is not a run): :class:`RunError`.
    """
    run_dir = Path(run_dir)
    if resume and overwrite:
        raise RunError(f"{run_dir}: give --resume or --overwrite, not both")
    if run_dir.exists() and not run_dir.is_dir():
        raise RunError(f"{run_dir}: is a file, not a run folder; give another --out")
    check_output_dir(run_dir, what="run folder")
    if run_dir.is_dir():   # a run still training there: refuse (--overwrite too)
        check_not_held(run_dir)
    _tidy_leftovers(run_dir)
    if data_root is not None and run_dir.exists() and Path(data_root).exists() and _inside(
            Path(data_root).resolve(), run_dir.resolve()):
        raise RunError(f"{run_dir}: is the data root or holds it ({data_root}); give "
                       "another --out folder")
    if not run_dir.exists() or is_empty_folder(run_dir):
        plan = RunPlan(run_dir, "fresh", data_root=data_root)
        if resume:
            plan.notes.append(f"{run_dir}: nothing to resume (no checkpoint yet): starting "
                              "from scratch")
        return plan
    if not is_run_dir(run_dir):
        raise RunError(f"{run_dir}: folder exists and is not a musicaffect run folder (no "
                       f"{MARKER} or config.yaml + checkpoints/); nothing was changed: "
                       "give a new or empty --out folder")
    if not has_checkpoint(run_dir):
        plan = RunPlan(run_dir, "reuse", data_root=data_root)
        plan.notes.append(f"{run_dir}: the run there stopped before its first checkpoint"
                          + ("; nothing to resume: starting from scratch" if resume
                             else "; starting it again"))
        return plan
    if resume:
        check_same_data(run_dir, data_root)
        return RunPlan(run_dir, "resume", data_root=data_root)
    if overwrite:
        check_replaceable(run_dir, data_root)
        return RunPlan(run_dir, "replace", data_root=data_root)
    raise RunError(f"{run_dir}: run folder exists already; pass --resume to continue it or "
                   "--overwrite to replace it (the old run is kept until the new one has "
                   "its first checkpoint)")


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
            if not v:
                out[key] = {}
        else:
            out[key] = v
    return out


def config_differences(saved: dict, current: dict, *, free=RESUME_FREE_KEYS) -> list[str]:
    """``key: saved -> current`` lines for every key that differs, except ``free`` keys."""
    a, b = _flatten(saved), _flatten(current)
    lines = []
    for key in sorted(set(a) | set(b)):
        if key in free:
            continue
        va, vb = a.get(key, "<unset>"), b.get(key, "<unset>")
        if va != vb:
            lines.append(f"{key}: {va!r} -> {vb!r}")
    return lines


def check_resume(run_dir: Path, cfg, model, last: dict) -> None:
    """Refuse to resume ``last`` with a config or model that differs from the saved one."""
    from musicaffect.config import config_from_dict
    from musicaffect.errors import MusicAffectError
    from musicaffect.models.registry import speed_only_params

    saved = last.get("config") or {}
    try:
        saved = config_from_dict(saved).to_dict()   # fills keys added since
    except MusicAffectError:
        pass
    diff = config_differences(saved, cfg.to_dict())
    if not diff:
        # same config, other model (defaults changed between versions, other data view ...)
        theirs = dict(last.get("model") or {})
        mine = model.model_args()
        for d in (theirs, mine):   # speed-only parameters (the LSTM's impl) may differ
            free = speed_only_params(d.get("name"))
            d["params"] = {k: v for k, v in dict(d.get("params") or {}).items() if k not in free}
        diff = [f"model (checkpoint) {d}" for d in config_differences(theirs, mine, free=())]
    if diff:
        shown = "\n  ".join(diff)
        raise RunError(f"{run_dir}: the config differs from the one the run was started "
                       f"with, so --resume would not continue the same run:\n  {shown}\n"
                       "resume with the saved config (drop these --set overrides), or "
                       "start a new run (--overwrite or another --out). Keys that may "
                       f"change on resume: {', '.join(sorted(RESUME_FREE_KEYS))}")


class RunClaim:
    """Claims the run folder when training starts; see the module docstring.

    ``path`` is where the run is written now (a staging folder beside the old run until the
    first checkpoint of a replacement exists). Call :meth:`commit` after each checkpoint
    (only the first does anything) and :meth:`abort` when the run fails before it.
    """

    def __init__(self, plan: RunPlan):
        self.plan = plan
        self.final = plan.run_dir
        self.committed = plan.mode == "resume"
        self.created = False
        #: called before / after a replacement moves into place (e.g. to reopen log files)
        self.before_swap: list[Callable[[], None]] = []
        self.after_swap: list[Callable[[Path], None]] = []
        #: folders this claim holds (given back when the claim is dropped: end of training)
        self._taken: list[Path] = []
        weakref.finalize(self, _release_all, self._taken)
        if plan.mode == "replace":
            tag = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
            self.path = self.final.parent / f".{self.final.name}.new-{tag}"
        else:
            self.path = self.final

    def _hold(self, path: Path) -> None:
        from musicaffect import outputs

        if str(path.resolve()) not in outputs._HELD:   # not already this process's
            hold_folder(path)
            self._taken.append(path)

    def claim(self, cfg) -> Path:
        """Create (or clear a checkpoint-less run in) the folder; write marker and config."""
        from musicaffect.config import save_config

        if self.final.is_dir():   # hold the folder before anything in it changes
            try:
                self._hold(self.final)
            except RunError:
                self.committed = True   # nothing here is this claim's: abort leaves it
                raise
        for note in self.plan.notes:
            log.warning("%s", note)
        if self.plan.mode == "reuse":
            for child in self.path.iterdir():   # a run without checkpoint: nothing to lose
                if child.name == LOCK_FILE:
                    continue
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child)
                else:
                    child.unlink()
        elif self.plan.mode in ("fresh", "replace"):
            self.created = not self.path.exists()
        (self.path / "checkpoints").mkdir(parents=True, exist_ok=True)
        try:
            self._hold(self.path)
        except RunError:
            self.created = False
            self.committed = True
            raise
        marker = {"format": "musicaffect-run/1", "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                  "pid": os.getpid()}
        if self.plan.data_root is not None:
            marker["data"] = data_identity(self.plan.data_root)
        if self.plan.mode != "resume":
            (self.path / MARKER).write_text(json.dumps(marker) + "\n")
        else:
            (self.path / MARKER).touch()
        save_config(cfg, self.path / "config.yaml")
        return self.path

    def commit(self) -> Path:
        """After a checkpoint: swap a replacement into place (once). Returns the run folder."""
        if self.committed:
            return self.final
        if self.plan.mode == "replace" and self.path != self.final:
            trash = self.final.parent / (f".{self.final.name}.old-{os.getpid()}-"
                                         f"{uuid.uuid4().hex[:8]}")
            for hook in self.before_swap:
                hook()
            if self.final.exists():
                release_folder(self.final)
                if self.final in self._taken:
                    self._taken.remove(self.final)
                os.rename(self.final, trash)
            os.rename(self.path, self.final)
            _rekey(self.path, self.final)
            self._taken[:] = [self.final if p == self.path else p for p in self._taken]
            for hook in self.after_swap:
                hook(self.final)
            shutil.rmtree(trash, ignore_errors=True)
            log.info("%s: replaced the old run (the new one has its first checkpoint)",
                     self.final)
            self.path = self.final
        self.committed = True
        return self.final

    def abort(self) -> None:
        """The run failed before its first checkpoint: remove what this claim wrote."""
        if self.committed:
            return
        _release_all(self._taken)
        if self.plan.mode == "replace" or self.created:
            shutil.rmtree(self.path, ignore_errors=True)
        elif self.path.is_dir():
            for child in self.path.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)


def _release_all(paths: list[Path]) -> None:
    while paths:
        release_folder(paths.pop())


def _rekey(old: Path, new: Path) -> None:
    """A held folder moved from ``old`` to ``new`` (the lock file moved with it)."""
    from musicaffect import outputs

    fd = outputs._HELD.pop(str(old.resolve()), None)
    if fd is not None:
        outputs._HELD[str(new.resolve())] = fd


# --------------------------------------------------------------------------- data identity

#: label and metadata files (hashed by content); clip files count by name and size
_SMALL = 4_000_000


def data_fingerprint(data_root: str | os.PathLike) -> str:
    """A hash of what a run trains on: every file's relative path and size under
    ``data_root`` (symbolic links followed) and the content of the small files (labels,
    clip lists, parameters). The same clips under other labels or another split differ."""
    import hashlib

    root = Path(data_root)
    h = hashlib.sha256()
    for folder, dirs, files in sorted(os.walk(root, followlinks=True)):
        dirs.sort()
        rel = os.path.relpath(folder, root)
        for name in sorted(files):
            if name.startswith(".musicaffect-"):
                continue
            path = Path(folder) / name
            try:
                size = path.stat().st_size
            except OSError:
                continue
            h.update(f"{rel}/{name}\0{size}\0".encode())
            if size < _SMALL and not name.endswith((".npy", ".npy.gz", ".npz")):
                try:
                    h.update(hashlib.sha256(path.read_bytes()).digest())
                except OSError:
                    pass
    return h.hexdigest()[:32]


def data_identity(data_root: str | os.PathLike) -> dict:
    """``{"root": absolute path, "fingerprint": ...}`` of ``data_root`` (stored in a run)."""
    return {"root": str(Path(data_root).resolve()), "fingerprint": data_fingerprint(data_root)}


def stored_data(run_dir: str | os.PathLike) -> dict | None:
    """The data identity a run was trained on (its marker), or None for older runs."""
    try:
        info = json.loads((Path(run_dir) / MARKER).read_text() or "{}")
    except (OSError, ValueError):
        return None
    data = info.get("data") if isinstance(info, dict) else None
    return data if isinstance(data, dict) and data.get("fingerprint") else None


def data_difference(run_dir: str | os.PathLike, data_root) -> str | None:
    """Why ``run_dir`` was not trained on ``data_root`` as it is now (None: same data, or
    a run that recorded no data identity)."""
    saved = stored_data(run_dir)
    if saved is None or data_root is None:
        return None
    now = data_identity(data_root)
    if saved["fingerprint"] == now["fingerprint"]:
        return None
    if saved.get("root") != now["root"]:
        return f"it was trained on {saved.get('root')}, not on {now['root']}"
    return (f"the data in {now['root']} changed since it was trained (other clips, labels "
            "or split)")


def check_same_data(run_dir: Path, data_root) -> None:
    """Refuse ``--resume`` of a run on other data than it started with."""
    why = data_difference(run_dir, data_root)
    if why:
        raise RunError(f"{run_dir}: cannot resume: {why}. Resume with the data the run "
                       "started with, or start a new run (--overwrite or another --out)")


def write_run(plan: RunPlan, cfg, write: Callable[[Path], Any]) -> Any:
    """Claim the folder of ``plan``, call ``write(folder)`` and commit (a replacement is
    swapped into place only now); on any failure, remove what the claim wrote. For runs
    without epochs (classical models, ensembles), whose whole training is one step."""
    claim = RunClaim(plan)
    try:
        out = write(claim.claim(cfg))
        claim.commit()
        return out
    except BaseException:
        claim.abort()
        raise
