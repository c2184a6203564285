"""The pretrained family (``model.name: pretrained``): a head on a data root's stored musicnn
embeddings (:mod:`musicaffect.features.embed`, made by ``musicaffect embed ROOT``).

Each clip is one vector: the embedding layer(s) chosen by ``layer`` (``penultimate``: 200-d,
``pool``: 1506-d, ``both``) summarised over the clip's 3-s patches by ``stats`` (``mean``
and/or ``std``). One head per task, following the task's spec:

=========  ================================  ==============================
head       multiclass / binary task          regression task
=========  ================================  ==============================
``linear`` logistic regression (the          ridge regression
           classical family's linear model)
``mlp``    scikit-learn ``MLPClassifier``    ``MLPRegressor``
=========  ================================  ==============================

The features are standardised with a scaler fitted on the training part, and the head's
hyperparameters (C, alpha, the MLP's weight decay) are chosen by internal cross-validation on
the training part only (:func:`musicaffect.models.classical.fit_task` for ``linear``).

*The adapter gain.* Embeddings made from a Kaggle-layout root's mel rows (``way:
adapter``) are stored at several gains; the gain is chosen by the same internal CV on the
training part (each stored gain, the best mean CV score over the tasks wins). The chosen gain
and the score of every gain (the sensitivity) go into ``summary.json`` and the checkpoint,
and are logged. Embeddings made from audio have one "gain", ``none``.

The run folder holds ``config.yaml``, ``metrics.csv``, ``summary.json`` and
``checkpoints/best.pretrained.json`` (config, musicnn parameters, the embedding recipe and
gain, vocabulary and task specs, per-task model files and their SHA-256), with each head as
``.npz`` arrays (loaded with ``allow_pickle=False``): no pickle anywhere.

The member (:class:`PretrainedMember`) predicts a data root's clips from their stored
embeddings, and a song from its audio with the checkpoint's own musicnn parameters
(:meth:`PretrainedMember.song_windows`, the hook ``predict`` asks for); mel windows given to
:meth:`~PretrainedMember.predict_arrays` go through the adapter with the run's gain (the
per-clip level normalisation ``clip`` for a run trained on embeddings from audio).
"""

from __future__ import annotations

import csv
import json
import logging
import os
import time
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from musicaffect.errors import CheckpointError, ConfigError, DataError
from musicaffect.families.base import Family, json_model_file
from musicaffect.families.registry import register
from musicaffect.io import atomic_write

log = logging.getLogger(__name__)

NAME = "pretrained"
PRETRAINED_FILE = "best.pretrained.json"
FORMAT = "musicaffect-pretrained/1"
MODELS = {"msd": "MSD_musicnn", "mtt": "MTT_musicnn"}
LAYERS = {"penultimate": ("penultimate",), "pool": ("pool",), "both": ("penultimate", "pool")}
STATS = ("mean", "std")
HEADS = ("linear", "mlp")
#: the gain of embeddings made from audio
NO_GAIN = "none"
#: the adapter gain used on mel windows by a run trained on embeddings from audio
#: (per-clip level normalisation, see docs/PRETRAINED.md)
UNLABELLED_GAIN = "clip"
#: default grids of the MLP head (weight decay), searched by internal CV
MLP_GRID = {"alpha": [1e-3, 1e-1, 1.0, 10.0]}


@dataclass
class PretrainedParams:
    """``model.params`` of a pretrained run."""

    embedding: str = "msd"             # msd (MSD_musicnn) | mtt (MTT_musicnn)
    layer: str = "penultimate"         # penultimate | pool | both
    stats: list[str] = field(default_factory=lambda: ["mean"])   # mean and/or std
    head: str = "linear"               # linear (logistic / ridge) | mlp
    hidden: list[int] = field(default_factory=lambda: [128])     # MLP hidden layer sizes
    cv_folds: int = 5                  # internal CV (training part only)
    grid: dict[str, list[Any]] | None = None   # override the head's grid, e.g. {C: [0.1, 1]}
    gains: list[str] | None = None     # adapter gains to choose among (default: all stored)
    max_iter: int = 2000               # logistic regression / MLP iterations
    threads: int | None = 1            # BLAS threads while fitting


def pretrained_params(params: dict) -> PretrainedParams:
    """Validate ``model.params`` of a pretrained run (:class:`ConfigError` on bad values)."""
    from musicaffect.typecheck import from_mapping

    p = from_mapping(PretrainedParams, dict(params or {}), where="model.params.")
    for key, value, allowed in (("embedding", p.embedding, tuple(MODELS)),
                                ("layer", p.layer, tuple(LAYERS)),
                                ("head", p.head, HEADS)):
        if value not in allowed:
            raise ConfigError(f"model.params.{key}={value!r} is not valid: choose one of "
                              f"{', '.join(allowed)}")
    if not p.stats or any(s not in STATS for s in p.stats) or len(set(p.stats)) < len(p.stats):
        raise ConfigError(f"model.params.stats={p.stats} is not valid: give mean and/or std")
    if p.cv_folds < 2:
        raise ConfigError(f"model.params.cv_folds must be >= 2, got {p.cv_folds}")
    if not p.hidden or any(h < 1 for h in p.hidden):
        raise ConfigError(f"model.params.hidden must list positive layer sizes, got {p.hidden}")
    return p


def embedding_key(p: PretrainedParams) -> str:
    """The :func:`~musicaffect.features.embed.load_embeddings` key of the recipe, e.g.
    ``penultimate_mean+penultimate_std``."""
    return "+".join(f"{layer}_{s}" for layer in LAYERS[p.layer] for s in p.stats)


def _summary_features(summary: dict[str, np.ndarray], key: str) -> np.ndarray:
    """Feature rows ``(G, D)`` of one :meth:`Embedder.embed_inputs` result."""
    return np.concatenate([summary[k] for k in key.split("+")], axis=1)


# --------------------------------------------------------------------------- the data

def require_embeddings(data_root, model: str) -> dict:
    """The root's ``embed_params.json``; a :class:`DataError` that says how to make it when
    the root has no embeddings of ``model``."""
    from musicaffect.features.embed import has_embeddings, read_embed_params

    if not has_embeddings(data_root, model):
        raise DataError(f"the pretrained recipes read {model} embeddings, which this data root "
                        f"does not have: run `musicaffect embed {data_root}` (or build the "
                        "root with `build-dataset ... --embed musicnn`) first",
                        path=Path(data_root))
    return read_embed_params(data_root, model)


def stored_gains(doc: dict) -> list[str]:
    """The gains a view holds (``["none"]`` from audio)."""
    return list(doc.get("gains") or []) if doc.get("way") == "adapter" else [NO_GAIN]


def dataset_embeddings(dataset, *, key: str, gain: str, model: str
                       ) -> tuple[np.ndarray, list[str], dict[str, np.ndarray]]:
    """Stored embeddings of every item of a dataset (a SpectrogramDataset or a Subset).

    Returns ``(X (N, D), ids, labels)``; ``labels`` maps each task of the dataset to an (N,)
    array (genre -100 / NaN where a clip has no label).
    """
    from musicaffect.data.layout import folder_name
    from musicaffect.features.embed import load_embeddings

    base, idx = dataset, None
    while hasattr(base, "indices"):           # torch Subset (possibly nested)
        sub = np.asarray(base.indices)
        idx = sub if idx is None else sub[idx]
        base = base.dataset
    idx = np.arange(len(base)) if idx is None else np.asarray(idx)
    ids = [base.ids[i] for i in idx]
    X = load_embeddings(base.root, ids, folder=folder_name(base.dataset, "full"),
                        split=base.split, key=key,
                        gain=None if gain == NO_GAIN else gain, model=model)
    labels = {}
    for t in base.tasks:
        try:
            labels[t] = np.asarray(base.labels(t))[idx]
        except ConfigError:
            pass                              # an unlabelled split
    return X, ids, labels


# --------------------------------------------------------------------------- heads

def _fit_mlp(p: PretrainedParams, X: np.ndarray, y: np.ndarray, *, classify: bool,
             seed: int) -> tuple[object, dict]:
    """An MLP head (scaler + MLP), its weight decay chosen by internal CV on (X, y) only."""
    from sklearn.metrics import make_scorer
    from sklearn.model_selection import GridSearchCV
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from musicaffect.models.classical import _plain, _spearman_score, _splitter, _threads

    cls = MLPClassifier if classify else MLPRegressor
    model = cls(hidden_layer_sizes=tuple(p.hidden), max_iter=min(p.max_iter, 500),
                early_stopping=False, random_state=seed)
    pipe = Pipeline([("scale", StandardScaler()), ("model", model)])
    grid = dict(p.grid) if p.grid else dict(MLP_GRID)
    bad = [k for k in grid if k not in model.get_params()]
    if bad:
        raise ConfigError(f"model.params.grid: {bad[0]!r} is not a parameter of "
                          f"{cls.__name__}")
    cv = _splitter(y, classify=classify, folds=p.cv_folds, seed=seed)
    info: dict = {"grid": grid, "cv_folds": getattr(cv, "n_splits", 0), "best_params": {},
                  "cv_score": None}
    with warnings.catch_warnings(), _threads(p.threads):
        warnings.simplefilter("ignore")
        if cv is None:
            chosen = {k: v[len(v) // 2] for k, v in grid.items()}
            pipe.set_params(**{f"model__{k}": v for k, v in chosen.items()}).fit(X, y)
            info["best_params"] = chosen
            return pipe, info
        scoring = "accuracy" if classify else make_scorer(_spearman_score)
        search = GridSearchCV(pipe, {f"model__{k}": v for k, v in grid.items()},
                              scoring=scoring, cv=cv, n_jobs=1, refit=True,
                              error_score=np.nan)
        search.fit(X, y)
    info["best_params"] = {k.removeprefix("model__"): _plain(v)
                           for k, v in search.best_params_.items()}
    info["cv_score"] = float(search.best_score_)
    return search.best_estimator_, info


def fit_head(p: PretrainedParams, X: np.ndarray, y: np.ndarray, *, classify: bool,
             seed: int) -> tuple[object, dict]:
    """One task's head on features ``X`` (N, D): ``(fitted pipeline, search info)``."""
    if p.head == "linear":
        from musicaffect.models.classical import ClassicalParams, fit_task

        cp = ClassicalParams(estimator="linear", cv_folds=p.cv_folds, grid=p.grid,
                             max_iter=p.max_iter, threads=p.threads)
        return fit_task(cp, X, y, classify=classify, seed=seed)
    return _fit_mlp(p, X, y, classify=classify, seed=seed)


def save_head(model, folder: Path, task: str, head: str) -> dict:
    """Write one fitted head as ``.npz`` arrays; returns its entry (kind, file, SHA-256)."""
    from musicaffect.models.classical import _sha256, save_task_model

    if head == "linear":
        return save_task_model(model, folder, task, "linear")
    from musicaffect.io import atomic_open

    scaler, est = model.named_steps["scale"], model.named_steps["model"]
    arrays: dict[str, np.ndarray] = {"mean": scaler.mean_, "scale": scaler.scale_}
    for i, (W, b) in enumerate(zip(est.coefs_, est.intercepts_)):
        arrays[f"W{i}"], arrays[f"b{i}"] = W, b
    entry: dict = {"kind": "mlp", "layers": len(est.coefs_), "out": est.out_activation_}
    if hasattr(est, "classes_"):
        entry["classes_seen"] = [int(c) for c in est.classes_]
    path = folder / f"best.{task}.npz"
    with atomic_open(path) as f:
        np.savez(f, **{k: np.asarray(v, dtype=np.float64) for k, v in arrays.items()})
    return {**entry, "file": path.name, "sha256": _sha256(path)}


class _MLP:
    """Prediction of a saved MLP head (relu hidden layers) from its arrays."""

    def __init__(self, arrays: dict[str, np.ndarray], entry: dict):
        self.a, self.n, self.out = arrays, int(entry["layers"]), entry["out"]

    def _forward(self, X: np.ndarray) -> np.ndarray:
        h = (X - self.a["mean"]) / self.a["scale"]
        for i in range(self.n):
            h = h @ self.a[f"W{i}"] + self.a[f"b{i}"]
            if i < self.n - 1:
                h = np.maximum(h, 0.0)
        return h                                                     # (N, K)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        z = self._forward(X)
        if self.out == "logistic":
            from scipy.special import expit
            p1 = expit(z[:, 0])
            return np.stack([1.0 - p1, p1], axis=1)
        z = np.exp(z - z.max(axis=1, keepdims=True))
        return z / z.sum(axis=1, keepdims=True)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self._forward(X)[:, 0]


def load_head(folder: Path, entry: dict):
    """A head written by :func:`save_head`, its SHA-256 checked."""
    from musicaffect.models.classical import _sha256, load_task_model

    if entry.get("kind") != "mlp":
        return load_task_model(folder, entry)
    path = folder / entry["file"]
    if not path.is_file():
        raise CheckpointError(f"{path}: model file missing; retrain the run")
    if _sha256(path) != entry.get("sha256"):
        raise CheckpointError(f"{path}: the file differs from the one written at training time "
                              "(SHA-256 mismatch); retrain the run or restore the file")
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    return _MLP(arrays, entry)


# --------------------------------------------------------------------------- fitting

def fit_pretrained(cfg, data_root, run_dir, *, resume: bool = False, overwrite: bool = False,
                   progress: bool = True, train=None):
    """Train a pretrained run (``model.name: pretrained``) into ``run_dir``.

    Writes ``config.yaml``, ``checkpoints/best.pretrained.json`` and the heads,
    ``metrics.csv`` (one row) and ``summary.json`` (with ``pretrained.gain`` and
    ``pretrained.gain_scores``); returns a FitResult (``best_epoch`` 0).

    Raises
    ------
    DataError
        The root has no embeddings (run ``musicaffect embed DATA_ROOT``).
    """
    from musicaffect.config import save_config
    from musicaffect.data.loading import prepare_data
    from musicaffect.families.classical import _val_metrics
    from musicaffect.features.params import MusicnnParams
    from musicaffect.tasks import specs_to_dict
    from musicaffect.training.result import FitResult
    from musicaffect.training.rundir import plan_run_dir, write_run

    p = pretrained_params(cfg.model.params)
    if cfg.train.overfit_batches:
        raise ConfigError("the overfit check (train.overfit_batches) is for neural networks; "
                          "a pretrained head is fitted in one step")
    if cfg.transfer.checkpoint:
        raise ConfigError("transfer.checkpoint does not apply to a pretrained (musicnn) run")
    model = MODELS[p.embedding]
    doc = require_embeddings(data_root, model)
    gains = stored_gains(doc)
    if p.gains:
        unknown = [g for g in p.gains if g not in gains]
        if unknown:
            raise ConfigError(f"model.params.gains: {unknown[0]} is not stored in the root's "
                              f"embeddings ({', '.join(gains)}); rerun `musicaffect embed` "
                              "with --gains")
        gains = list(p.gains)
    run_dir = Path(run_dir)
    plan = plan_run_dir(run_dir, data_root=data_root, overwrite=overwrite or resume)
    t_start = time.perf_counter()
    data = prepare_data(cfg, data_root)
    key = embedding_key(p)
    tr, va = data.train_idx, data.val_idx
    # the gain: chosen by the heads' internal CV on the training part only
    tried: dict[str, tuple[dict, dict, np.ndarray, list[str], dict]] = {}
    gain_scores: dict[str, float | None] = {}
    for g in gains:
        X, ids, labels = dataset_embeddings(data.dataset, key=key, gain=g, model=model)
        fitted, search = {}, {}
        for task in data.tasks:
            spec = data.specs[task]
            y = labels[task]
            has = (y >= 0) if spec.is_multiclass else np.isfinite(y)
            t0 = time.perf_counter()
            fitted[task], search[task] = fit_head(p, X[tr][has[tr]], y[tr][has[tr]],
                                                  classify=spec.is_classification,
                                                  seed=cfg.seed)
            search[task]["seconds"] = time.perf_counter() - t0
        scores = [s["cv_score"] for s in search.values() if s["cv_score"] is not None]
        gain_scores[g] = float(np.mean(scores)) if scores else None
        tried[g] = (fitted, search, X, ids, labels)
        log.info("pretrained %s %s head, gain %s: internal CV score %s", model, p.head, g,
                 gain_scores[g])
    gain = max(gains, key=lambda g: -np.inf if gain_scores[g] is None else gain_scores[g])
    fitted, search, X, ids, labels = tried[gain]
    if len(gains) > 1:
        log.info("pretrained: adapter gain %s chosen by internal CV on the training part "
                 "(scores per gain: %s)", gain,
                 ", ".join(f"{g}: {s:.4f}" if s is not None else f"{g}: -"
                           for g, s in gain_scores.items()))
    mp = replace(MusicnnParams.from_dict(doc["musicnn"]), model=model)
    recipe = {"model": model, "key": key, "dim": int(X.shape[1]), "way": doc.get("way"),
              "gain": gain, "gains": gains, "gain_scores": gain_scores,
              "musicnn": mp.to_dict(), "weights": doc.get("weights"),
              "source_params": doc.get("source_params")}

    def write(folder: Path) -> FitResult:
        from musicaffect.features.params import root_feature_params

        ckpt_dir = folder / "checkpoints"
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        entries = {t: {**save_head(m, ckpt_dir, t, p.head), **search[t]}
                   for t, m in fitted.items()}
        meta = {"format": FORMAT, "config": cfg.to_dict(), "head": p.head,
                "embedding": recipe, "tasks": list(data.tasks),
                "classes": list(data.vocab.classes), "targets": list(data.vocab.targets),
                "kinds": {t: data.vocab.kind(t) for t in data.tasks
                          if not data.specs[t].is_multiclass},
                "task_specs": specs_to_dict(data.specs),
                "vocab": data.vocab.to_dict(), "models": entries, "data": data.info,
                "feature_params": root_feature_params(data_root).to_dict()}
        atomic_write(ckpt_dir / PRETRAINED_FILE, json.dumps(meta, indent=2, default=float))
        member = PretrainedMember(folder)        # the validation metrics: as saved
        val = member.predict_features(X[va], [ids[i] for i in va],
                                      {t: v[va] for t, v in labels.items()})
        seconds = time.perf_counter() - t_start
        metrics = {"epoch": 0, **_val_metrics(val, member.specs), "seconds": seconds}
        meta["metrics"] = metrics
        atomic_write(ckpt_dir / PRETRAINED_FILE, json.dumps(meta, indent=2, default=float))
        save_config(cfg, folder / "config.yaml")
        with open(folder / "metrics.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(metrics))
            w.writeheader()
            w.writerow(metrics)
        monitor = cfg.train.monitor
        score = float(metrics.get(monitor, float("nan")))
        summary = {"best_epoch": 0, "best_score": score, "monitor": monitor,
                   "stopped_early": False, "epochs": 1, "best_metrics": metrics,
                   "seconds": seconds,
                   "pretrained": {"model": model, "head": p.head, "key": key,
                                  "way": recipe["way"], "gain": gain,
                                  "gain_scores": gain_scores, "search": search,
                                  "params": asdict(p)}}
        (folder / "summary.json").write_text(json.dumps(summary, indent=2, default=float))
        return FitResult(run_dir, 0, score, monitor, [metrics], False, metrics, seconds)

    return write_run(plan, cfg, write)


# --------------------------------------------------------------------------- the member

class PretrainedMember:
    """A trained pretrained run, as a Predictor member."""

    kind = NAME

    def __init__(self, path: str | os.PathLike, *, which: str = "best"):
        from musicaffect.config import config_from_dict
        from musicaffect.data.vocab import vocabulary_of_checkpoint
        from musicaffect.features.params import MusicnnParams, checkpoint_feature_params
        from musicaffect.models.predictions import vocab_attributes
        from musicaffect.tasks import multiclass_task, specs_from_dict

        p = Path(path)
        file = p if p.is_file() else p / "checkpoints" / PRETRAINED_FILE
        try:
            meta = json.loads(file.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise CheckpointError(f"{file}: cannot read the pretrained model ({err}); "
                                  "retrain the run") from err
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise CheckpointError(f"{file}: not a musicaffect pretrained model ({FORMAT})")
        self.meta = meta
        self.cfg = config_from_dict(meta["config"])
        self.params = pretrained_params(self.cfg.model.params)
        self.name = self.cfg.name
        self.path = str(file)
        self.run_dir = file.parent.parent
        self.tasks = list(meta["tasks"])
        specs = specs_from_dict(meta["task_specs"])
        vocab_attributes(self, vocabulary_of_checkpoint(meta), meta.get("kinds"),
                         {t: specs[t] for t in self.tasks})
        self.epoch = None
        from musicaffect.data.arrays import n_features

        self.n_features = n_features(self.cfg.data.view)
        ct = multiclass_task(self.specs)
        self.n_classes = self.specs[ct].n_outputs if ct else 0
        self.feature_params = checkpoint_feature_params(meta)
        e = meta["embedding"]
        self.embedding = e
        self.musicnn = MusicnnParams.from_dict(e["musicnn"])
        self.gain = e["gain"]
        self.models = {t: load_head(file.parent, meta["models"][t]) for t in self.tasks}
        self.device = None
        self._embedder = None

    def to(self, device) -> PretrainedMember:
        self.device = device
        self._embedder = None
        return self

    # ------------------------------------------------------------------ features

    def embedder(self):
        """The musicnn of the checkpoint's parameters (loaded once)."""
        if self._embedder is None:
            from musicaffect.features.embed import Embedder

            self._embedder = Embedder(self.musicnn, device=self.device)
        return self._embedder

    def features(self, arrays) -> np.ndarray:
        """Embedding rows ``(N, D)`` of inputs: ``(96, t)`` musicnn log-mel inputs (what
        :meth:`song_windows` gives) or ``(F, t)`` mel-dB windows of the root's recipe
        (through the adapter, with the run's gain)."""
        emb = self.embedder()
        gain = UNLABELLED_GAIN if self.gain == NO_GAIN else self.gain
        from musicaffect.features.embed import parse_gains

        rows = []
        for a in arrays:
            a = np.asarray(a, dtype=np.float32)
            if a.shape[0] == self.musicnn.n_mels:
                out = emb.embed_inputs([a.T])
            else:
                out = emb.embed_mel_db(a[:128], gains=parse_gains([gain]),
                                       source=self.feature_params)
            rows.append(_summary_features(out, self.embedding["key"])[0])
        return np.stack(rows) if rows else np.zeros((0, int(self.embedding["dim"])))

    def song_windows(self, file: str | os.PathLike) -> list[np.ndarray] | None:
        """The inputs this member reads of a song (the hook ``predict`` asks for): the whole
        song's musicnn log-mel ``(96, T)``, computed from its audio with the checkpoint's own
        musicnn parameters, for a run trained on embeddings from audio; None (the usual mel
        windows) for a run trained through the adapter."""
        if self.gain != NO_GAIN:
            return None
        from musicaffect.features.audio import load_audio
        from musicaffect.features.musicnn_input import log_mel

        y, _ = load_audio(file, sr=self.musicnn.sr)
        return [log_mel(y, params=self.musicnn).T]                  # (T, 96) -> (96, T)

    # ------------------------------------------------------------------ prediction

    def predict_features(self, X: np.ndarray, ids: list[str], labels: dict | None = None):
        """Predictions for embedding rows ``X`` (N, D) of the clips ``ids``."""
        from musicaffect.models.classical import _threads
        from musicaffect.models.predictions import Predictions

        probs, values = None, {}
        with _threads(self.params.threads):
            for t in self.tasks:
                m, spec = self.models[t], self.specs[t]
                if spec.is_multiclass:
                    seen = self.meta["models"][t]["classes_seen"]
                    probs = np.zeros((len(X), len(self.classes)))
                    if len(X):
                        probs[:, seen] = m.predict_proba(X)
                elif not len(X):
                    values[t] = np.zeros(0)
                elif spec.is_classification:                         # binary: P(label 1)
                    seen = self.meta["models"][t]["classes_seen"]
                    pr = m.predict_proba(X)
                    values[t] = pr[:, seen.index(1)] if 1 in seen else np.zeros(len(X))
                else:
                    values[t] = np.asarray(m.predict(X), dtype=np.float64)
        return Predictions(list(ids), probs, values, dict(labels or {}), list(self.classes),
                           dict(self.specs))

    def predict_dataset(self, dataset, *, batch_size: int = 32):
        """Predictions of a dataset's clips from the root's stored embeddings."""
        require_embeddings(_root_of(dataset), self.embedding["model"])
        X, ids, labels = dataset_embeddings(dataset, key=self.embedding["key"],
                                            gain=self.gain, model=self.embedding["model"])
        return self.predict_features(X, ids, labels)

    def predict_arrays(self, arrays):
        """Predictions of inputs (see :meth:`features`), one row per array."""
        return self.predict_features(self.features(arrays), [str(i) for i in range(len(arrays))])


def _root_of(dataset):
    while hasattr(dataset, "indices"):
        dataset = dataset.dataset
    return dataset.root


FAMILY = register(Family(
    name=NAME, params=PretrainedParams, fit=fit_pretrained, model_file=json_model_file(PRETRAINED_FILE),
    checkpoint_files=(f"checkpoints/{PRETRAINED_FILE}",),
    load=lambda path, *, which="best": PretrainedMember(path),
    claims=lambda name: name == NAME,
    describe=lambda cfg, res, out: (
        f"run {out}: {res.monitor}={res.best_score:.4f} on the validation part (musicnn "
        f"{cfg.model.params.get('embedding', 'msd')} + {cfg.model.params.get('head', 'linear')}"
        f" head, {res.seconds:.1f}s)")))
