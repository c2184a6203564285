"""The classical model family: scikit-learn models on per-clip statistics of the spectrogram.

Each clip (F, T) becomes one vector: the mean, standard deviation and percentiles of every
row (mel band or chroma bin) over time, and the same statistics of its first-order time
differences (deltas). The vectors are standardised (``StandardScaler`` fitted on the
training part only) and fed to one estimator per task:

============  ==============================  =============================
estimator     genre (classifier)              each affect target (regressor)
============  ==============================  =============================
``linear``    logistic regression             ridge regression
``svm``       RBF support vector classifier   RBF support vector regression
``hgb``       histogram gradient boosting     histogram gradient boosting
============  ==============================  =============================

(``logreg`` and ``ridge`` are accepted as names of ``linear``.) A target with 0/1 labels is
fitted by the regressor too (:func:`classical_specs`) and scored as a detector.
Hyperparameters (C, alpha, learning rate ...) are chosen by a small internal
cross-validation on the training part of the run's split only; the validation part is held
out exactly as for the deep models, so ``evaluate`` on affect runs scores clips the model
never saw.

A run is configured like any other (``model.name: classical``, ``model.params: {estimator:
svm, ...}``) and trained by ``musicaffect train`` (the family registry dispatches to
:func:`musicaffect.families.classical.fit_classical`). Its run folder
holds ``config.yaml``, ``metrics.csv``, ``summary.json`` and ``checkpoints/`` with
``best.classical.json`` (config, feature recipe, per-task model files and their SHA-256) and
per-task model files, written without pickle: linear models as their coefficients in
``.npz`` (loaded with ``allow_pickle=False``), SVM / boosting models with ``skops`` (loaded
only when every type in the file is one this module expects). A file whose checksum differs
from the one recorded at training time is refused.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from musicaffect.errors import CheckpointError, ConfigError

log = logging.getLogger(__name__)

CLASSICAL_FILE = "best.classical.json"
FORMAT = "musicaffect-classical/1"
ESTIMATORS = ("linear", "svm", "hgb")
ALIASES = {"logreg": "linear", "ridge": "linear", "svc": "svm", "svr": "svm",
           "boosting": "hgb"}

#: default hyperparameter grids (searched by internal cross-validation): (genre, regression)
GRIDS: dict[str, tuple[dict, dict]] = {
    "linear": ({"C": [0.01, 0.1, 1.0, 10.0]}, {"alpha": [0.1, 1.0, 10.0, 100.0, 1000.0]}),
    "svm": ({"C": [0.1, 1.0, 10.0, 100.0]}, {"C": [0.1, 1.0, 10.0]}),
    "hgb": ({"learning_rate": [0.05, 0.1]}, {"learning_rate": [0.05, 0.1]}),
}

#: types inside a skops file that skops does not trust by default but this module writes
_SKOPS_TRUSTED_EXTRA = frozenset({
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
    "sklearn._loss.link.Interval", "sklearn._loss.link.IdentityLink",
    "sklearn._loss.link.LogitLink", "sklearn._loss.link.MultinomialLogit",
    "sklearn._loss.loss.HalfMultinomialLoss", "sklearn._loss.loss.HalfSquaredError",
    "sklearn._loss.loss.HalfBinomialLoss",
})


@dataclass
class ClassicalParams:
    """``model.params`` of a classical run."""

    estimator: str = "linear"          # linear (logreg / ridge) | svm | hgb
    percentiles: list[float] = field(default_factory=lambda: [10.0, 50.0, 90.0])
    deltas: bool = True                # also the statistics of the frame-to-frame differences
    cv_folds: int = 5                  # internal CV (training part only) for hyperparameters
    grid: dict[str, list[Any]] | None = None   # override the default grid, e.g. {C: [0.1, 1]}
    class_weight: str | None = None    # None | balanced (classifiers)
    max_iter: int = 2000               # logistic regression iterations / boosting rounds (hgb: 200 cap)
    threads: int | None = 1            # BLAS/OpenMP threads while fitting (None: library default)


def classical_params(params: dict) -> ClassicalParams:
    """Validate ``model.params`` of a classical run (unknown keys and wrong types raise
    :class:`ConfigError`)."""
    from musicaffect.typecheck import from_mapping

    p = from_mapping(ClassicalParams, dict(params or {}), where="model.params.")
    p.estimator = ALIASES.get(p.estimator, p.estimator)
    if p.estimator not in ESTIMATORS:
        raise ConfigError(f"model.params.estimator={p.estimator!r} is not valid: choose one of "
                          f"{', '.join(ESTIMATORS)} (or logreg, ridge)")
    if any(not 0 <= q <= 100 for q in p.percentiles):
        raise ConfigError(f"model.params.percentiles must be in [0, 100], got {p.percentiles}")
    if p.cv_folds < 2:
        raise ConfigError(f"model.params.cv_folds must be >= 2, got {p.cv_folds}")
    if p.class_weight not in (None, "balanced"):
        raise ConfigError("model.params.class_weight must be null or balanced")
    return p


# --------------------------------------------------------------------------- features

def clip_features(x: np.ndarray, *, percentiles=(10.0, 50.0, 90.0),
                  deltas: bool = True) -> np.ndarray:
    """Per-row statistics of one clip.

    Parameters
    ----------
    x : np.ndarray [shape=(F, T)]
        A clip's view (mel bands / chroma bins by frames).
    percentiles : sequence of float
    deltas : bool
        Append the same statistics of ``np.diff(x, axis=1)`` (zeros for a one-frame clip).

    Returns
    -------
    v : np.ndarray [shape=(F * (2 + P) * (2 if deltas else 1),)], float64
        Mean, std, then each percentile, each block of F values in row order; then the
        deltas' blocks.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] < 1:
        raise ValueError(f"x must have shape (F, T) with T >= 1, got {x.shape}")

    def stats(a: np.ndarray) -> list[np.ndarray]:
        out = [a.mean(axis=1), a.std(axis=1)]
        if len(percentiles):
            out += list(np.percentile(a, list(percentiles), axis=1))   # (P, F) -> P rows
        return out

    blocks = stats(x)
    if deltas:
        d = np.diff(x, axis=1) if x.shape[1] > 1 else np.zeros((x.shape[0], 1))
        blocks += stats(d)
    return np.concatenate(blocks)


def dataset_features(dataset, p: ClassicalParams, *, max_length: int | None = None
                     ) -> tuple[np.ndarray, list[str], dict[str, np.ndarray]]:
    """Feature matrix of every item of a dataset (a SpectrogramDataset or Subset).

    Returns ``(X (N, D), ids, labels)``; ``labels`` maps each task every item is labelled
    with to an (N,) array. Clips are cut to their first ``max_length`` frames, as the deep
    models' loader does.
    """
    rows, ids, ys = [], [], []
    for i in range(len(dataset)):
        item = dataset[i]
        x = item["x"].numpy()                                    # (T, F)
        if max_length is not None:
            x = x[:max_length]
        rows.append(clip_features(x.T, percentiles=p.percentiles, deltas=p.deltas))
        ids.append(item["id"])
        ys.append({k: v.item() for k, v in item["y"].items()})
    tasks = set(ys[0]) if ys else set()
    for y in ys[1:]:
        tasks &= set(y)
    labels = {t: np.array([y[t] for y in ys]) for t in sorted(tasks)}
    return np.stack(rows) if rows else np.zeros((0, 0)), ids, labels


# --------------------------------------------------------------------------- estimators

def _pipeline(p: ClassicalParams, *, classify: bool, seed: int):
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    if p.estimator == "linear":
        if classify:
            from sklearn.linear_model import LogisticRegression
            model = LogisticRegression(max_iter=p.max_iter, class_weight=p.class_weight)
        else:
            from sklearn.linear_model import Ridge
            model = Ridge()
    elif p.estimator == "svm":
        if classify:
            from sklearn.svm import SVC
            model = SVC(kernel="rbf", probability=True, class_weight=p.class_weight,
                        random_state=seed)
        else:
            from sklearn.svm import SVR
            model = SVR(kernel="rbf", epsilon=0.05)
    else:
        if classify:
            from sklearn.ensemble import HistGradientBoostingClassifier
            model = HistGradientBoostingClassifier(max_iter=min(p.max_iter, 200), max_depth=3,
                                                   early_stopping=False, random_state=seed,
                                                   class_weight=p.class_weight)
        else:
            from sklearn.ensemble import HistGradientBoostingRegressor
            model = HistGradientBoostingRegressor(max_iter=min(p.max_iter, 200), max_depth=3,
                                                  early_stopping=False, random_state=seed)
    return Pipeline([("scale", StandardScaler()), ("model", model)])


def _spearman_score(y_true, y_pred) -> float:
    from scipy import stats

    if np.ptp(y_true) == 0 or np.ptp(y_pred) == 0:
        return 0.0
    rho = stats.spearmanr(y_true, y_pred)[0]
    return float(rho) if np.isfinite(rho) else 0.0


def _splitter(y: np.ndarray, *, classify: bool, folds: int, seed: int):
    from sklearn.model_selection import KFold, StratifiedKFold

    n = len(y)
    if classify:
        counts = np.bincount(y.astype(np.int64))
        k = min(folds, int(counts[counts > 0].min()))
        if k >= 2:
            return StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    k = min(folds, n // 2)
    return KFold(n_splits=k, shuffle=True, random_state=seed) if k >= 2 else None


def classical_specs(vocab, tasks) -> dict:
    """The :class:`~musicaffect.tasks.TaskSpec` of each task a classical run fits (name ->
    spec): the vocabulary's, except that a target with 0/1 labels is fitted by the task's
    regressor (a regression spec with binary labels, scored as a detector), as before task
    specs."""
    return vocab.task_specs(tasks, binary_as_regression=True)


def fit_task(p: ClassicalParams, X: np.ndarray, y: np.ndarray, *, classify: bool,
             seed: int) -> tuple[object, dict]:
    """Fit one task's pipeline, its hyperparameters chosen by internal CV on (X, y) only.

    Returns ``(fitted pipeline, {"best_params", "cv_score", "cv_folds", "grid"})``.
    """
    from sklearn.base import clone
    from sklearn.metrics import make_scorer
    from sklearn.model_selection import GridSearchCV

    grid = dict(p.grid) if p.grid else dict(GRIDS[p.estimator][0 if classify else 1])
    pipe = _pipeline(p, classify=classify, seed=seed)
    names = pipe.named_steps["model"].get_params()
    bad = [k for k in grid if k not in names]
    if bad:
        raise ConfigError(f"model.params.grid: {bad[0]!r} is not a parameter of "
                          f"{type(pipe.named_steps['model']).__name__}")
    _check_grid_values(pipe.named_steps["model"], grid)
    if classify and len(np.unique(y)) < 2:
        raise ConfigError(f"the training part has a single class ({int(y[0])}); a classifier "
                          "needs at least two: add clips or change data.val_fraction")
    if p.estimator == "hgb":   # leaves of 20 clips (the default) cannot split small data
        pipe.set_params(model__min_samples_leaf=int(np.clip(len(y) // 10, 2, 20)))
    cv = _splitter(y, classify=classify, folds=p.cv_folds, seed=seed)
    info = {"grid": grid, "cv_folds": getattr(cv, "n_splits", 0), "best_params": {},
            "cv_score": None}
    n_candidates = int(np.prod([len(v) for v in grid.values()])) if grid else 1
    with warnings.catch_warnings(), _threads(p.threads):
        warnings.simplefilter("ignore")     # tiny classes / convergence notes on small data
        if cv is None or n_candidates == 1:
            chosen = {k: v[len(v) // 2] for k, v in grid.items()}
            model = clone(pipe).set_params(**{f"model__{k}": v for k, v in chosen.items()})
            model.fit(X, y)
            info["best_params"] = chosen
            return model, info
        scoring = "accuracy" if classify else make_scorer(_spearman_score)
        search = GridSearchCV(pipe, {f"model__{k}": v for k, v in grid.items()},
                              scoring=scoring, cv=cv, n_jobs=1, refit=True,
                              error_score=np.nan)
        search.fit(X, y)
    info["best_params"] = {k.removeprefix("model__"): _plain(v)
                           for k, v in search.best_params_.items()}
    info["cv_score"] = float(search.best_score_)
    return search.best_estimator_, info


def _check_grid_values(model, grid: dict) -> None:
    """Every value of ``model.params.grid`` is one the estimator accepts, else
    :class:`ConfigError` naming the key (scikit-learn's own parameter constraints)."""
    from sklearn.base import clone

    for key, values in grid.items():
        if not isinstance(values, (list, tuple)) or not values:
            raise ConfigError(f"model.params.grid.{key} must be a non-empty list of values, "
                              f"got {values!r}")
        for v in values:
            est = clone(model).set_params(**{key: v})
            try:
                est._validate_params()
            except (ValueError, TypeError) as err:   # InvalidParameterError is a ValueError
                raise ConfigError(f"model.params.grid.{key}: {v!r} is not accepted by "
                                  f"{type(model).__name__} ({err}); fix the value in the "
                                  "config or --set") from err


def _threads(n: int | None):
    """Limit BLAS/OpenMP threads: on small matrices, idle threads that spin-wait cost far
    more than they bring (100x on a busy 2-core machine)."""
    from contextlib import nullcontext

    from threadpoolctl import threadpool_limits

    return nullcontext() if n is None else threadpool_limits(limits=n)


def _plain(v):
    return v.item() if isinstance(v, np.generic) else v


# --------------------------------------------------------------------------- saving

def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _atomic(path: Path, write) -> None:
    """``write(file)`` into a temporary file beside ``path``, renamed over it on success."""
    from musicaffect.io import atomic_open

    with atomic_open(path) as f:
        write(f)


def save_task_model(model, folder: Path, task: str, estimator: str) -> dict:
    """Write one fitted pipeline without pickle; returns its entry for the JSON file."""
    scaler, est = model.named_steps["scale"], model.named_steps["model"]
    if estimator == "linear":
        arrays = {"mean": scaler.mean_, "scale": scaler.scale_,
                  "coef": np.atleast_2d(est.coef_), "intercept": np.atleast_1d(est.intercept_)}
        kind = "linear"
        if hasattr(est, "classes_"):
            arrays["classes"] = np.asarray(est.classes_, dtype=np.int64)
            kind = "logistic"
        path = folder / f"best.{task}.npz"

        def write(f) -> None:
            np.savez(f, **{k: np.asarray(v, dtype=np.int64 if k == "classes" else np.float64)
                           for k, v in arrays.items()})
    else:
        import skops.io as sio

        kind = "skops"
        path = folder / f"best.{task}.skops"

        def write(f) -> None:
            sio.dump(model, f)
    _atomic(path, write)
    entry = {"kind": kind, "file": path.name, "sha256": _sha256(path)}
    if hasattr(est, "classes_"):
        entry["classes_seen"] = [int(c) for c in est.classes_]
    return entry


class _LinearModel:
    """Prediction from the saved coefficients (no scikit-learn object)."""

    def __init__(self, arrays: dict[str, np.ndarray], logistic: bool):
        self.a = arrays
        self.logistic = logistic

    def _z(self, X: np.ndarray) -> np.ndarray:
        Z = (X - self.a["mean"]) / self.a["scale"]
        return Z @ self.a["coef"].T + self.a["intercept"]            # (N, K)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        z = self._z(X)
        if z.shape[1] == 1:                                           # binary: sigmoid
            from scipy.special import expit
            p1 = expit(z[:, 0])
            return np.stack([1.0 - p1, p1], axis=1)
        z = np.exp(z - z.max(axis=1, keepdims=True))
        return z / z.sum(axis=1, keepdims=True)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self._z(X)[:, 0]


def load_task_model(folder: Path, entry: dict):
    """Load one task model written by :func:`save_task_model`, checking its SHA-256."""
    path = folder / entry["file"]
    if not path.is_file():
        raise CheckpointError(f"{path}: model file missing; retrain the run")
    if _sha256(path) != entry.get("sha256"):
        raise CheckpointError(f"{path}: the file differs from the one written at training time "
                              "(SHA-256 mismatch); retrain the run or restore the file")
    if entry["kind"] in ("linear", "logistic"):
        return _LinearModel(_read_linear(path), logistic=entry["kind"] == "logistic")
    if entry["kind"] == "skops":
        try:
            import skops.io as sio
        except ImportError as err:
            raise CheckpointError(f"{path}: reading SVM / boosting models needs skops "
                                  "(pip install skops)") from err
        untrusted = set(_skops_call(path, lambda: sio.get_untrusted_types(file=path)))
        unexpected = sorted(untrusted - _SKOPS_TRUSTED_EXTRA)
        if unexpected:
            raise CheckpointError(f"{path}: the file holds types a musicaffect model does not "
                                  f"use ({', '.join(unexpected[:3])}); refusing to load it")
        return _read_skops(path, sio, sorted(untrusted))
    raise CheckpointError(f"{path}: unknown model kind {entry['kind']!r}")


_LINEAR_KEYS = ("mean", "scale", "coef", "intercept")


def _unreadable(path: Path, why: str) -> CheckpointError:
    return CheckpointError(f"{path}: not a model file written by musicaffect ({why}); "
                           "retrain the run")


def _read_linear(path: Path) -> dict[str, np.ndarray]:
    """The arrays of a linear model file: numeric, with the keys that :func:`save_task_model`
    writes (anything else raises :class:`CheckpointError`)."""
    import zipfile

    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile) as err:
        raise _unreadable(path, f"{type(err).__name__}: {err}") from err
    if not isinstance(arrays, dict):          # np.load of a plain .npy gives an array
        raise _unreadable(path, "one array, not an npz archive")
    missing = [k for k in _LINEAR_KEYS if k not in arrays]
    if missing:
        raise _unreadable(path, f"no {missing[0]!r} array")
    odd = [k for k, a in arrays.items() if not np.issubdtype(a.dtype, np.number)]
    if odd:
        raise _unreadable(path, f"array {odd[0]!r} is {arrays[odd[0]].dtype}, not numeric")
    return arrays


def _skops_call(path: Path, call):
    """Run a skops reader; a file that is no skops archive raises :class:`CheckpointError`."""
    import zipfile

    try:
        return call()
    except (ValueError, OSError, EOFError, KeyError, TypeError, AttributeError,
            zipfile.BadZipFile) as err:
        raise _unreadable(path, f"{type(err).__name__}: {err}") from err


def _read_skops(path: Path, sio, trusted: list[str]):
    """The fitted pipeline in a skops file (an unfitted or foreign object raises
    :class:`CheckpointError`)."""
    from sklearn.exceptions import NotFittedError
    from sklearn.pipeline import Pipeline
    from sklearn.utils.validation import check_is_fitted

    model = _skops_call(path, lambda: sio.load(path, trusted=trusted))
    if not isinstance(model, Pipeline) or "model" not in model.named_steps:
        raise _unreadable(path, f"it holds a {type(model).__name__}, not a pipeline")
    try:
        check_is_fitted(model.named_steps["model"])
    except NotFittedError as err:
        raise CheckpointError(f"{path}: the model in the file was never fitted; "
                              "retrain the run") from err
    return model


# --------------------------------------------------------------------------- the member

class ClassicalMember:
    """A trained classical run, as a Predictor member (see
    :mod:`musicaffect.evaluation.predictor`)."""

    kind = "classical"

    def __init__(self, path: str | os.PathLike):
        from musicaffect.config import config_from_dict

        p = Path(path)
        file = p if p.is_file() else p / "checkpoints" / CLASSICAL_FILE
        try:
            meta = json.loads(file.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise CheckpointError(f"{file}: cannot read the classical model ({err}); "
                                  "retrain the run") from err
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise CheckpointError(f"{file}: not a musicaffect classical model ({FORMAT})")
        self.meta = meta
        self.cfg = config_from_dict(meta["config"])
        self.params = classical_params(self.cfg.model.params)
        self.name = self.cfg.name
        self.path = str(file)
        self.run_dir = file.parent.parent
        self.tasks = list(meta["tasks"])
        from musicaffect.data.vocab import vocabulary_of_checkpoint
        from musicaffect.models.predictions import vocab_attributes
        from musicaffect.tasks import multiclass_task, specs_from_dict

        # runs written before task specs store none: the vocabulary's (binary as regression)
        specs = specs_from_dict(meta["task_specs"]) if meta.get("task_specs") else None
        vocab_attributes(self, vocabulary_of_checkpoint(meta), meta.get("kinds"), specs)
        self.epoch = None
        self.n_features = int(meta["features"]["n_features"])
        ct = multiclass_task(self.specs)
        self.n_classes = self.specs[ct].n_outputs if ct is not None else 0
        from musicaffect.features.params import checkpoint_feature_params

        self.feature_params = checkpoint_feature_params(meta)
        self.models = {t: load_task_model(file.parent, meta["models"][t]) for t in self.tasks}

    def to(self, device) -> ClassicalMember:   # scikit-learn runs on the CPU
        return self

    def predict_features(self, X: np.ndarray, ids: list[str], labels: dict | None = None):
        """Predictions for feature rows ``X`` (N, D) of the clips ``ids``."""
        with _threads(self.params.threads):
            return self._predict_features(X, ids, labels)

    def _predict_features(self, X, ids, labels):
        from musicaffect.models.predictions import Predictions

        probs, values = None, {}
        for t in self.tasks:
            m = self.models[t]
            if self.specs[t].is_multiclass:
                seen = self.meta["models"][t]["classes_seen"]
                probs = np.zeros((len(X), len(self.classes)))
                if len(X):
                    probs[:, seen] = m.predict_proba(X)
            else:
                values[t] = np.asarray(m.predict(X), dtype=np.float64) if len(X) \
                    else np.zeros(0)
        return Predictions(list(ids), probs, values, dict(labels or {}), list(self.classes),
                           dict(self.specs))

    def predict_dataset(self, dataset, *, batch_size: int = 32):
        X, ids, labels = dataset_features(dataset, self.params,
                                          max_length=self.cfg.data.max_length)
        return self.predict_features(X, ids, labels)

    def predict_arrays(self, arrays):
        X = np.stack([clip_features(a, percentiles=self.params.percentiles,
                                    deltas=self.params.deltas) for a in arrays])
        return self.predict_features(X, [str(i) for i in range(len(arrays))])
