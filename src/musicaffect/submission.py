"""Lab step 11: the Kaggle submission for the unlabelled multitask test split.

The CSV has the header ``Id.fused.full.npy.gz,valence,energy,danceability`` and one row per
test clip, ``<id>.fused.full.npy.gz,<v>,<e>,<d>`` (the competition's id form, whatever the
file name on disk). The score is the mean over the three axes of Spearman's rho over the
whole test set, so only the order of the predictions matters.

The file is checked against the data, not against itself: every clip file in the test
folder must have exactly one row. A clip that cannot be read stops the submission with an
error that names it, whatever the run's ``skip_bad`` was (a Kaggle file with a missing row
is rejected).
"""

from __future__ import annotations

import csv
import logging
import math
from pathlib import Path

import numpy as np

from musicaffect.data.labels import TARGETS
from musicaffect.errors import CheckpointError, DataError
from musicaffect.tasks import scalar_tasks

log = logging.getLogger(__name__)

HEADER = ["Id.fused.full.npy.gz", *TARGETS]


def predict_test(runs, data_root: str | Path, *, batch_size: int = 32,
                 device: str | None = None) -> tuple[list[str], dict[str, np.ndarray]]:
    """Predict every multitask test clip with one multitask model, single-target models, or
    an ensemble of them (the runs that predict a target are averaged).

    ``runs`` is a list of run folders / checkpoints, or a loaded
    :class:`~musicaffect.evaluation.predictor.Predictor`. Returns ``(ids, {target: (N,)})``
    sorted by clip id; every target must be covered by at least one run.
    """
    from musicaffect.evaluation.predictor import Predictor

    pred = runs if isinstance(runs, Predictor) else Predictor.load(runs, device=device)
    # every target covered? (checked on the models, before predicting anything)
    given: list[str] = []
    for m in pred.members:
        given += [t for t in scalar_tasks(m.specs) if t not in given]
    missing = [t for t in TARGETS if t not in given]
    if missing and given:
        raise CheckpointError(f"no run predicts {', '.join(missing)} (the runs predict "
                              f"{', '.join(given)}): the Kaggle submission needs "
                              f"{', '.join(TARGETS)}; give a multitask run or one run per "
                              "target, trained on the Kaggle multitask data")
    members = [m for m in pred.members if any(t in TARGETS for t in m.tasks)]
    for m in pred.members:
        if m not in members:
            others = scalar_tasks(m.specs)
            if others:
                raise CheckpointError(
                    f"{m.path}: the Kaggle submission needs {', '.join(TARGETS)}, but "
                    f"this model predicts {', '.join(others)} (its data root's targets); "
                    "train on the Kaggle multitask data for a submission")
            raise CheckpointError(f"{m.path}: a genre model cannot make an affect "
                                  "submission; give a multitask or regression run")
    res = pred.predict_split(data_root, dataset="multitask", split="test",
                             batch_size=batch_size, members=members,
                             skip_bad=False)   # every test clip needs a row
    missing = [t for t in TARGETS if t not in res.values]
    if missing:
        raise CheckpointError(f"no run predicts {', '.join(missing)}; give a multitask run or "
                              "one run per target")
    order = np.argsort(res.ids, kind="stable")
    ids = [res.ids[i] for i in order]
    return ids, {t: np.asarray(res.values[t])[order] for t in TARGETS}


def write_submission(ids: list[str], preds: dict[str, np.ndarray], path: str | Path) -> Path:
    """Write the CSV atomically (temp file + rename)."""
    from musicaffect.io import atomic_open

    path = Path(path)
    with atomic_open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(HEADER)
        for i, clip in enumerate(ids):
            w.writerow([f"{clip}.fused.full.npy.gz",
                        *(f"{float(preds[t][i]):.6f}" for t in TARGETS)])
    return path


def check_submission(path: str | Path, expected_ids: list[str]) -> None:
    """Raise :class:`DataError` unless the file has the exact header, every expected clip
    exactly once and finite values."""
    path = Path(path)
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows or rows[0] != HEADER:
        raise DataError(f"header must be {','.join(HEADER)}", path=path, line=1)
    seen: set[str] = set()
    for n, row in enumerate(rows[1:], start=2):
        if len(row) != 4:
            raise DataError(f"expected 4 columns, got {len(row)}", path=path, line=n)
        clip = row[0].split(".", 1)[0]
        if not row[0].endswith(".fused.full.npy.gz"):
            raise DataError(f"id {row[0]!r} must end with .fused.full.npy.gz", path=path, line=n)
        if clip in seen:
            raise DataError(f"clip {clip} appears twice", path=path, line=n)
        seen.add(clip)
        for v in row[1:]:
            if not math.isfinite(float(v)):
                raise DataError(f"value {v!r} is not finite", path=path, line=n)
    missing = set(expected_ids) - seen
    extra = seen - set(expected_ids)
    if missing or extra:
        raise DataError(f"{len(missing)} test clip(s) missing and {len(extra)} unknown "
                        f"(e.g. {sorted(missing or extra)[:3]})", path=path)


def test_clip_ids(members, data_root: str | Path) -> list[str]:
    """Ids of every clip file in the multitask test folder(s) that the models (a
    Predictor's ``members``) read: from the folder listing, not from what could be loaded."""
    from musicaffect.data.layout import list_clip_files, split_dir

    rates = []
    for member in members:
        if member.cfg.data.rate not in rates:
            rates.append(member.cfg.data.rate)
    ids: set[str] = set()
    for rate in rates:
        ids |= set(list_clip_files(split_dir(data_root, dataset="multitask", rate=rate,
                                             split="test")))
    return sorted(ids)


def submit(runs: list[str | Path], data_root: str | Path, out: str | Path, *,
           batch_size: int = 32, device: str | None = None) -> Path:
    """Predict, write and check the submission against the test folder; returns its path."""
    from musicaffect.evaluation.predictor import Predictor
    from musicaffect.paths import check_output_file

    check_output_file(out, what="submission CSV")
    pred = Predictor.load(runs, device=device)      # loaded once, for the folders and the rows
    expected = test_clip_ids(pred.members, data_root)
    if not expected:
        raise DataError("the multitask test split has no clips", path=data_root)
    ids, preds = predict_test(pred, data_root, batch_size=batch_size)
    missing = sorted(set(expected) - set(ids))
    if missing:
        raise DataError(f"{len(missing)} test clip(s) got no prediction (e.g. {missing[:3]}); "
                        "every clip of the test folder needs a row: fix or restore them",
                        path=data_root)
    path = write_submission(ids, preds, out)
    check_submission(path, expected)
    log.info("wrote %s (%d clips)", path, len(ids))
    return path
