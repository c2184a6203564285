"""Pretrained musicnn embeddings: of a waveform, an audio file, Kaggle mel rows, a data root.

Per clip, the network runs on the clip's 3-s patches (:mod:`musicaffect.features.musicnn_input`)
in one batch, and the patch outputs are summarised over the clip:

- ``penultimate_mean`` / ``penultimate_std`` (200): the penultimate layer;
- ``pool_mean`` / ``pool_std`` (1506): the back-end's max+mean pooling layer;
- ``taggram_mean`` (50): the tag probabilities.

Each is stored with a leading gain axis ``(G, D)``: one row per adapter gain (``G = 1`` from
audio).

The embedding view of a data root (:func:`embed_root`) lies beside the clips::

    ROOT/embeddings/<model>/
        embed_params.json                 how it was made (see below); resume key
        errors.csv                        clips that could not be embedded, with the reason
        fma_genre_spectrograms/{train,test}/<id>.npz
        multitask_dataset/{train,test}/<id>.npz

mirroring the root's full-rate folders, one ``.npz`` per clip id (written atomically; an
interrupted run resumes). ``embed_params.json`` records the musicnn parameters, the weights
(model, package, SHA-256), the way (``"audio"``: from the audio files listed in the root's
``clips.csv``, with the root's length rule; ``"adapter"``: from the mel rows) and the gains.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import shutil
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from musicaffect.errors import ConfigError, DataError
from musicaffect.features.musicnn_input import (
    adapt_power,
    log_compress,
    log_mel,
    patches,
    resolve_gain,
)
from musicaffect.features.params import (
    EMBED_PARAMS_FILE,
    FeatureParams,
    MusicnnParams,
    root_feature_params,
)

log = logging.getLogger(__name__)

#: folder under a data root that holds the embedding views
EMBED_DIR = "embeddings"
#: the summaries stored per clip, with their sizes (musicnn's)
SUMMARY_KEYS: tuple[str, ...] = ("penultimate_mean", "penultimate_std", "pool_mean",
                                 "pool_std", "taggram_mean")
#: the adapter gains stored by default: per-clip level normalisation, then a log grid
DEFAULT_GAINS: tuple[float | str, ...] = ("clip", 1.0, 10.0, 100.0, 1000.0)
#: the root's folders the view mirrors (full rate: the beat-synchronous folders hold the
#: same clips, averaged per beat, which the adapter cannot invert)
EMBED_FOLDERS: tuple[str, ...] = ("fma_genre_spectrograms", "multitask_dataset")
SPLITS: tuple[str, ...] = ("train", "test")
ERRORS_FILE = "errors.csv"


# ---------------------------------------------------------------------------------------
# one clip


class Embedder:
    """A pretrained musicnn with its input parameters: inputs -> per-clip summaries.

    Parameters
    ----------
    params : MusicnnParams, optional
        Input parameters and the model (``params.model``).
    device : str or torch.device, optional
        Default: CUDA when available, else the CPU.
    max_patches : int
        Largest batch of patches run at once.
    """

    def __init__(self, params: MusicnnParams | None = None, *, device=None,
                 max_patches: int = 64):
        import torch

        from musicaffect.models.musicnn import load_musicnn

        self.params = params or MusicnnParams()
        if device in (None, "auto"):   # as evaluation.predictor.select_device (a lower layer)
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.net = load_musicnn(self.params.model, device=self.device)
        self.max_patches = int(max_patches)

    def run_patches(self, X: np.ndarray) -> dict[str, np.ndarray]:
        """The network on a stack of patches.

        Parameters
        ----------
        X : np.ndarray [shape=(P, L, 96)]

        Returns
        -------
        dict[str, np.ndarray]
            ``"penultimate"`` (P, 200), ``"pool"`` (P, 1506), ``"taggram"`` (P, 50)
            probabilities.
        """
        import torch

        outs: dict[str, list[np.ndarray]] = {"penultimate": [], "pool": [], "taggram": []}
        with torch.inference_mode():
            for i in range(0, X.shape[0], self.max_patches):
                xb = torch.from_numpy(np.ascontiguousarray(X[i:i + self.max_patches],
                                                           dtype=np.float32)).to(self.device)
                o = self.net(xb)
                outs["penultimate"].append(o["penultimate"].float().cpu().numpy())
                outs["pool"].append(o["pool"].float().cpu().numpy())
                outs["taggram"].append(torch.sigmoid(o["logits"]).float().cpu().numpy())
        return {k: np.concatenate(v) for k, v in outs.items()}

    def embed_inputs(self, inputs: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        """Summaries of several inputs of one clip (e.g. one per gain), batched together.

        Parameters
        ----------
        inputs : sequence of np.ndarray [shape=(T, 96)]

        Returns
        -------
        dict[str, np.ndarray]
            Each of :data:`SUMMARY_KEYS` as ``(len(inputs), D)``, and ``n_patches``.
        """
        stacks = [patches(M, params=self.params) for M in inputs]
        if len({s.shape[1] for s in stacks}) > 1:
            out = [self.run_patches(s) for s in stacks]
        else:
            flat = self.run_patches(np.concatenate(stacks))
            bounds = np.cumsum([0] + [s.shape[0] for s in stacks])
            out = [{k: v[a:b] for k, v in flat.items()} for a, b in zip(bounds[:-1], bounds[1:])]
        summary = {k: np.stack([_summary(o)[k] for o in out]).astype(np.float32)
                   for k in SUMMARY_KEYS}
        summary["n_patches"] = np.int64(stacks[0].shape[0])
        return summary

    def embed_waveform(self, y: np.ndarray, sr: int) -> dict[str, np.ndarray]:
        """Summaries ``(1, D)`` of a mono signal (resampled to 16 kHz when needed)."""
        if sr != self.params.sr:
            import librosa

            y = librosa.resample(np.asarray(y, dtype=np.float32), orig_sr=sr,
                                 target_sr=self.params.sr)
        return self.embed_inputs([log_mel(y, params=self.params)])

    def embed_file(self, path: str | os.PathLike, *, offset: float = 0.0,
                   duration: float | None = None) -> dict[str, np.ndarray]:
        """Summaries ``(1, D)`` of an audio file (or a segment of it)."""
        from musicaffect.features.audio import load_audio

        y, sr = load_audio(path, sr=self.params.sr, offset=offset, duration=duration)
        return self.embed_waveform(y, sr)

    def embed_mel_db(self, mel_db: np.ndarray, *, gains: Sequence[float | str] = (1.0,),
                     source: FeatureParams | None = None) -> dict[str, np.ndarray]:
        """Summaries ``(len(gains), D)`` of Kaggle-layout mel rows, through the adapter.

        Parameters
        ----------
        mel_db : np.ndarray [shape=(128, T)]
        gains : sequence of float or "clip"
        source : FeatureParams, optional
            How the mel rows were made (default: the dataset's recipe).
        """
        power = adapt_power(mel_db, source=source, params=self.params)
        inputs = [log_compress(power * resolve_gain(g, power, params=self.params),
                               params=self.params) for g in gains]
        return self.embed_inputs(inputs)

    def top_tags(self, path: str | os.PathLike, *, k: int = 5) -> list[tuple[str, float]]:
        """The ``k`` most likely tags of a song (taggram averaged over its patches)."""
        from musicaffect.models.musicnn import tag_names

        names = tag_names(self.params.model)
        probs = self.embed_file(path)["taggram_mean"][0]
        order = np.argsort(-probs, kind="stable")[:k]
        return [(names[i], float(probs[i])) for i in order]


def _summary(o: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {"penultimate_mean": o["penultimate"].mean(0), "penultimate_std": o["penultimate"].std(0),
            "pool_mean": o["pool"].mean(0), "pool_std": o["pool"].std(0),
            "taggram_mean": o["taggram"].mean(0)}


def top_tags(songs: Sequence[str | os.PathLike], *, k: int = 5, model: str = "MSD_musicnn",
             device=None) -> list[list[tuple[str, float]]]:
    """The ``k`` most likely musicnn tags of each song (one model load for all)."""
    if k < 1:
        raise ConfigError(f"--top must be >= 1, got {k}")
    emb = Embedder(replace(MusicnnParams(), model=model), device=device)
    return [emb.top_tags(s, k=k) for s in songs]


# ---------------------------------------------------------------------------------------
# a data root


@dataclass
class EmbedReport:
    """What :func:`embed_root` did: ``done`` clips embedded now, ``skipped`` already there
    (resume), ``failed`` listed in ``errors_file``."""

    out: Path
    way: str
    gains: list[float | str] = field(default_factory=list)
    done: int = 0
    skipped: int = 0
    failed: int = 0
    seconds: float = 0.0
    errors: list[tuple[str, str]] = field(default_factory=list)
    errors_file: Path | None = None

    def summary(self) -> str:
        return (f"{self.out}: {self.done} clips embedded from {self.way}, {self.skipped} "
                f"already there, {self.failed} failed ({self.seconds:.1f} s)")


@dataclass(frozen=True)
class _Task:
    id: str
    source: str
    dests: tuple[str, ...]
    start: float | None = None
    seconds: float | None = None


def embed_dir(root: str | os.PathLike, model: str = "MSD_musicnn") -> Path:
    """The embedding view of a root: ``ROOT/embeddings/<model>``."""
    from musicaffect.models.musicnn import check_model_name

    return Path(root) / EMBED_DIR / check_model_name(model)


def _gain_name(g: float | str) -> str:
    return g if isinstance(g, str) else f"{float(g):g}"


def parse_gains(gains: Iterable[float | str]) -> list[float | str]:
    """Check a gain list (positive numbers and/or ``"clip"``); numbers become floats."""
    out: list[float | str] = []
    for g in gains:
        if isinstance(g, str) and g.strip() != "clip":
            try:
                g = float(g)
            except ValueError:
                raise ConfigError(f"unknown gain {g!r}: give positive numbers or 'clip'") \
                    from None
        g = g.strip() if isinstance(g, str) else float(g)
        if not isinstance(g, str) and not g > 0:
            raise ConfigError(f"gains must be > 0, got {g}")
        if g in out:
            raise ConfigError(f"gain {_gain_name(g)} is given twice")
        out.append(g)
    if not out:
        raise ConfigError("give at least one gain")
    return out


def embed_root(root: str | os.PathLike, *, model: str = "MSD_musicnn",
               audio_dir: str | os.PathLike | None = None,
               gains: Iterable[float | str] = DEFAULT_GAINS, jobs: int | None = 1,
               resume: bool = True, progress: bool | None = None, device=None,
               params: MusicnnParams | None = None) -> EmbedReport:
    """Add the musicnn embedding view to a data root (see the module docstring).

    Parameters
    ----------
    root : path-like
        A data root in the Kaggle layout (made by ``build-dataset`` or downloaded).
    model : {"MSD_musicnn", "MTT_musicnn"}
    audio_dir : path-like, optional
        The audio folder the root's ``clips.csv`` paths are relative to (what
        ``build-dataset`` was given). With it, clips are embedded from their audio, cut as
        the root's ``feature_params.json`` says; without it (or without ``clips.csv``), from
        the mel rows through the adapter, at every gain of ``gains``.
    gains : iterable of float or "clip"
        Adapter gains to store (ignored from audio).
    jobs : int or None
        Worker processes (None: ``os.cpu_count()``; 1: in this process).
    resume : bool
        Keep the clips already embedded with the same settings.

    Returns
    -------
    EmbedReport

    Raises
    ------
    DataError
        The root has none of the clip folders, or ``audio_dir`` is given but is not a
        folder or the root has no ``clips.csv``.
    """
    from musicaffect.data.layout import list_clip_files
    from musicaffect.models.musicnn import info

    t0 = time.perf_counter()
    root = Path(root)
    p = replace(params or MusicnnParams(), model=model)
    out = embed_dir(root, model)
    folders = [(f, s) for f in EMBED_FOLDERS for s in SPLITS if (root / f / s).is_dir()]
    if not root.is_dir() or not folders:
        raise DataError("no clip folders to embed (fma_genre_spectrograms/ or "
                        "multitask_dataset/ with train/ or test/): point at a data root made "
                        "by build-dataset or in the Kaggle layout", path=root)
    source_params = root_feature_params(root)
    clips_csv = root / "clips.csv"
    if audio_dir is not None:
        audio_dir = Path(audio_dir)
        if not audio_dir.is_dir():
            raise DataError("audio folder does not exist: give the folder build-dataset "
                            "read (the clips.csv paths are relative to it)", path=audio_dir)
        if not clips_csv.is_file():
            raise DataError("the root has no clips.csv, so its clips cannot be matched to "
                            "audio files: leave out the audio folder to embed the mel rows "
                            "through the adapter", path=clips_csv)
        way, gain_list = "audio", []
    else:
        if clips_csv.is_file():
            log.warning("%s lists the audio files, but no audio folder was given: embedding "
                        "the mel rows through the adapter (give the audio folder to embed "
                        "from audio)", clips_csv)
        way, gain_list = "adapter", parse_gains(gains)
    doc = {"musicnn": p.to_dict(), "weights": info(model), "way": way,
           "gains": [_gain_name(g) for g in gain_list],
           "source_params": source_params.to_dict(), "keys": list(SUMMARY_KEYS),
           "audio_dir": None if audio_dir is None else os.path.abspath(audio_dir)}
    params_file = out / EMBED_PARAMS_FILE
    same = resume and _same_doc(params_file, doc)
    if out.exists() and not same:
        if params_file.is_file():
            log.info("%s: made with other settings; re-embedding every clip", params_file)
        for f in EMBED_FOLDERS:
            shutil.rmtree(out / f, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    from musicaffect.io import atomic_write

    atomic_write(params_file, json.dumps({**doc, "musicaffect": _version()}, indent=2) + "\n")

    report = EmbedReport(out=out, way=way, gains=gain_list)
    # one task per input: from audio, a clip id is one clip across folders (build-dataset
    # writes a clip with genre and targets to both); from mel rows, one task per file (the
    # Kaggle folders are separate corpora whose ids may coincide)
    files: dict[str, tuple[str, Path, list[Path]]] = {}   # key -> (id, a clip file, dests)
    for f, s in folders:
        for cid, path in sorted(list_clip_files(root / f / s).items()):
            dest = out / f / s / f"{cid}.npz"
            key = cid if way == "audio" else os.fspath(path)
            files.setdefault(key, (cid, path, []))[2].append(dest)
    audio = _audio_sources(clips_csv, audio_dir, source_params) if way == "audio" else {}
    tasks: list[_Task] = []
    for cid, path, dests in files.values():
        for d in dests:
            d.parent.mkdir(parents=True, exist_ok=True)
            for tmp in d.parent.glob(".*.tmp"):
                tmp.unlink(missing_ok=True)
        if same and all(d.is_file() for d in dests):
            report.skipped += 1
            continue
        if way == "audio":
            if cid not in audio:
                report.errors.append((str(path), f"clip {cid} is not listed in clips.csv "
                                                 "with a file: rebuild the root"))
                continue
            src, start, seconds = audio[cid]
            tasks.append(_Task(cid, src, tuple(map(os.fspath, dests)), start, seconds))
        else:
            tasks.append(_Task(cid, os.fspath(path), tuple(map(os.fspath, dests))))
    setup = {"params": p.to_dict(), "way": way, "gains": gain_list,
             "source": source_params.to_dict(), "device": None if device is None else str(device)}
    for source, err in _run_all(tasks, setup, jobs=jobs, progress=progress):
        if err is None:
            report.done += 1
        else:
            report.errors.append((source, err))
    report.failed = len(report.errors)
    lines = ["file,reason"] + [_csv_line([a, b]) for a, b in sorted(report.errors)]
    report.errors_file = atomic_write(out / ERRORS_FILE, "\n".join(lines) + "\n")
    report.seconds = time.perf_counter() - t0
    log.info("%s", report.summary())
    return report


def _version() -> str:
    from musicaffect import __version__

    return __version__


def _same_doc(path: Path, doc: dict[str, Any]) -> bool:
    if not path.is_file():
        return False
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(old, dict) and {k: old.get(k) for k in doc} == json.loads(json.dumps(doc))


def _audio_sources(clips_csv: Path, audio_dir: Path, fp: FeatureParams
                   ) -> dict[str, tuple[str, float | None, float | None]]:
    """Clip id -> (audio file, segment start, segment length) from ``clips.csv``."""
    out = {}
    try:
        with open(clips_csv, newline="", encoding="utf-8") as f:
            for rec in csv.DictReader(f):
                cid, name = (rec.get("id") or "").strip(), (rec.get("file") or "").strip()
                if not cid or not name:
                    continue
                start = rec.get("start") or ""
                out[cid] = (os.fspath(audio_dir / name), float(start) if start else None,
                            fp.clip_seconds if start else None)
    except (OSError, ValueError, csv.Error) as err:
        raise DataError(f"cannot read clips.csv ({err}): rebuild the root with "
                        "build-dataset", path=clips_csv) from err
    return out


_WORKER: dict[str, Any] = {}


def _init_worker(setup: dict[str, Any], threads: int | None) -> None:
    import torch

    if threads is not None:
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(threads)
        torch.set_num_threads(threads)
    _WORKER.clear()
    _WORKER.update(setup)
    _WORKER["embedder"] = Embedder(MusicnnParams.from_dict(setup["params"]),
                                   device=setup["device"])


def _run_task(task: _Task) -> tuple[str, str | None]:
    """Embed one clip and write it to its destinations. Returns (source, error or None)."""
    from musicaffect.data.arrays import load_array, select_view
    from musicaffect.features.audio import apply_length_rule, load_audio
    from musicaffect.io import atomic_open

    emb: Embedder = _WORKER["embedder"]
    fp = FeatureParams.from_dict(_WORKER["source"])
    try:
        if _WORKER["way"] == "audio":
            y, sr = load_audio(task.source, sr=emb.params.sr, offset=task.start or 0.0,
                               duration=task.seconds)
            y = apply_length_rule(y, sr=sr, clip_seconds=fp.clip_seconds, rule=fp.length_rule)
            out = emb.embed_waveform(y, sr)
        else:
            mel = select_view(load_array(task.source), "mel")
            out = emb.embed_mel_db(mel, gains=_WORKER["gains"], source=fp)
    except DataError as err:
        return task.source, str(err).removeprefix(f"{task.source}: ")
    except Exception as err:  # one clip must never stop the batch: report it and go on
        log.debug("embedding failed for %s", task.source, exc_info=True)
        return task.source, f"embedding failed ({type(err).__name__}: {err})"
    for d in task.dests:
        with atomic_open(d) as f:
            np.savez(f, **out)
    return task.source, None


def _run_all(tasks: list[_Task], setup: dict[str, Any], *, jobs: int | None,
             progress: bool | None) -> Iterable[tuple[str, str | None]]:
    from tqdm.auto import tqdm

    if not tasks:
        return
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(tasks)))
    bar = tqdm(total=len(tasks), desc="embed", unit="clip",
               disable=None if progress is None else not progress)
    with bar:
        if jobs == 1:
            _init_worker(setup, None)
            try:
                for task in tasks:
                    yield _run_task(task)
                    bar.update()
            finally:
                _WORKER.clear()
            return
        import multiprocessing as mp

        ctx = mp.get_context("spawn")   # torch is not fork-safe once its threads started
        with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, initializer=_init_worker,
                                 initargs=(setup, 1)) as pool:
            futures = {pool.submit(_run_task, t): t for t in tasks}
            for fut in as_completed(futures):
                task = futures[fut]
                try:
                    result = fut.result()
                except BrokenProcessPool as err:
                    result = (task.source, f"worker process died ({err}): retry with --jobs 1")
                bar.update()
                yield result


def _csv_line(fields_: Sequence[str]) -> str:
    return ",".join(f'"{f.replace(chr(34), chr(34) * 2)}"' if any(c in f for c in ',"\n')
                    else f for f in fields_)


# ---------------------------------------------------------------------------------------
# reading the view back


def read_embed_params(root: str | os.PathLike, model: str = "MSD_musicnn") -> dict[str, Any]:
    """The ``embed_params.json`` of a root's embedding view.

    Raises
    ------
    DataError
        The root has no such view (run ``musicaffect embed ROOT``) or the file is unreadable.
    """
    path = embed_dir(root, model) / EMBED_PARAMS_FILE
    if not path.is_file():
        raise DataError(f"the root has no {model} embeddings: run `musicaffect embed "
                        f"{root}` first", path=path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise DataError(f"cannot read the embedding parameters ({err}): rerun `musicaffect "
                        f"embed {root}`", path=path) from err
    return doc


def has_embeddings(root: str | os.PathLike, model: str = "MSD_musicnn") -> bool:
    """True when the root has an embedding view of ``model``."""
    return (embed_dir(root, model) / EMBED_PARAMS_FILE).is_file()


def load_embeddings(root: str | os.PathLike, ids: Sequence[str], *, folder: str, split: str,
                    key: str = "penultimate_mean", gain: float | str | None = None,
                    model: str = "MSD_musicnn") -> np.ndarray:
    """Stack the stored embeddings of some clips.

    Parameters
    ----------
    ids : sequence of str
        Clip ids (as in the root's label files).
    folder, split : str
        Where the clips lie (``"fma_genre_spectrograms"``, ``"train"``).
    key : str
        One of :data:`SUMMARY_KEYS`; several joined by ``+`` are concatenated
        (``"penultimate_mean+penultimate_std"``).
    gain : float or "clip", optional
        The adapter gain (required when the view holds several; ignored from audio).

    Returns
    -------
    np.ndarray [shape=(len(ids), D), dtype=float32]
    """
    doc = read_embed_params(root, model)
    gains = doc.get("gains") or []
    row = 0
    if doc.get("way") == "adapter":
        if gain is None and len(gains) != 1:
            raise ConfigError(f"the embeddings hold gains {', '.join(gains)}: choose one")
        name = gains[0] if gain is None else _gain_name(gain)
        if name not in gains:
            raise ConfigError(f"gain {name} is not stored (stored: {', '.join(gains)}); "
                              "rerun `musicaffect embed` with --gains")
        row = gains.index(name)
    keys = key.split("+")
    unknown = [k for k in keys if k not in SUMMARY_KEYS]
    if unknown:
        raise ConfigError(f"unknown embedding {unknown[0]!r}: use {', '.join(SUMMARY_KEYS)}")
    base = embed_dir(root, model) / folder / split
    rows = []
    for cid in ids:
        path = base / f"{cid}.npz"
        try:
            with np.load(path) as z:
                rows.append(np.concatenate([z[k][row] for k in keys]))
        except (OSError, KeyError, ValueError) as err:
            raise DataError(f"missing or unreadable embedding ({err}): rerun `musicaffect "
                            f"embed {root}` (errors.csv lists clips that failed)",
                            path=path) from err
    return np.stack(rows).astype(np.float32) if rows else np.zeros((0, 0), np.float32)
