"""The whole lab (steps 1-11) as one resumable pipeline that ends in a report.

``run_lab`` runs, in order: exploration (steps 1-4), the overfit sanity checks (5b, 7b), the
genre experiments (5-7, evaluated on the test set of their own rate, and the CNN also on the
other rate), affect regression (8), transfer learning (9), multitask learning (10) and the
Kaggle submission (11). Every training run is reused when the lab is run again with the same
configuration, and an interrupted run continues from its last epoch. A step that cannot run
(its folders are missing) is skipped with the reason; a step that fails is recorded with its
error and the lab goes on with the steps that do not need it. The results of each step are
kept in ``OUT/lab_state.json``, from which :func:`build_report` writes ``report.html`` and
``report.md`` (``musicaffect report OUT`` rebuilds them).
"""

from __future__ import annotations

import json
import logging
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from musicaffect.data.labels import TARGETS
from musicaffect.data.layout import FOLDERS
from musicaffect.errors import MusicAffectError

log = logging.getLogger(__name__)

STEPS = ("explore", "overfit", "genre", "affect", "transfer", "multitask", "submission")

#: folders each step needs: (dataset, rate)
NEEDS: dict[str, list[tuple[str, str]]] = {
    "explore": [("genre", "full"), ("genre", "beat")],
    "overfit": [("genre", "beat")],
    "genre": [("genre", "full"), ("genre", "beat")],
    "affect": [("multitask", "full"), ("multitask", "beat")],
    "transfer": [("genre", "full"), ("multitask", "full")],
    "multitask": [("genre", "full"), ("multitask", "full")],
    "submission": [("multitask", "full")],
}


def missing_folders(data_root: str | Path, step: str) -> list[str]:
    """Names of the dataset folders ``step`` needs that ``data_root`` lacks."""
    root = Path(data_root)
    return [FOLDERS[key] for key in NEEDS[step] if not (root / FOLDERS[key]).is_dir()]


class LabState:
    """Per-step status and results, saved as JSON after every change (atomic write)."""

    def __init__(self, path: Path):
        self.path = path
        self.data: dict = json.loads(path.read_text()) if path.is_file() else {}
        self.data.setdefault("steps", {})

    def set(self, step: str, **values) -> None:
        self.data["steps"].setdefault(step, {}).update(values)
        self.save()

    def save(self) -> None:
        from musicaffect.io import atomic_write

        atomic_write(self.path, json.dumps(self.data, indent=2, default=str))

    def step(self, name: str) -> dict:
        return self.data["steps"].get(name, {})


def run_lab(data_root: str | Path, out_dir: str | Path, *, budget: str = "quick",
            device: str | None = None, seed: int = 0, overrides: list[str] | None = None,
            steps: list[str] | None = None, progress: bool = True) -> Path:
    """Run the lab's steps on ``data_root``; returns the path of ``report.html``."""
    from tqdm.auto import tqdm

    from musicaffect import suites
    from musicaffect.data import is_synthetic
    from musicaffect.outputs import claim_output_dir, hold_folder
    from musicaffect.suites import budget_overrides

    budget_overrides(budget)  # validate early
    out = claim_output_dir(out_dir, "lab", writes=("report.md", "report.html", "lab_state.json",
                                                   "explore", "runs"),
                           legacy=lambda p: (p / "lab_state.json").is_file())
    hold_folder(out)
    handler = logging.FileHandler(out / "lab.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    logging.getLogger("musicaffect").addHandler(handler)
    # the progress bar is the console display; the details go to lab.log
    quiet = [(h, h.level) for h in logging.getLogger().handlers
             if progress and type(h) is logging.StreamHandler]
    for h, _ in quiet:
        h.setLevel(logging.WARNING)
    overrides = list(overrides or [])
    if device:
        overrides.append(f"train.accelerator={device}")
    state = LabState(out / "lab_state.json")
    vocab = suites.data_vocabulary(data_root, overrides)
    state.data.update({"data_root": str(Path(data_root).resolve()), "budget": budget,
                       "seed": seed, "overrides": overrides,
                       "synthetic": bool(is_synthetic(data_root)),
                       "references": vocab.is_lab,
                       "classes": list(vocab.classes), "targets": list(vocab.targets),
                       "kinds": {t: vocab.kind(t) for t in vocab.targets},
                       "started": time.strftime("%Y-%m-%d %H:%M:%S")})
    state.save()
    runs = out / "runs"
    kw = dict(budget=budget, overrides=overrides, progress=False)
    todo = [s for s in STEPS if steps is None or s in steps]
    bar = tqdm(total=len(todo), desc="lab", unit="step", disable=not progress)

    def note(msg: str) -> None:
        bar.set_postfix_str(msg[:60])
        log.info("lab: %s", msg)

    def genre_source() -> str | None:
        return state.step("transfer").get("runs", {}).get("genre source")

    actions: dict[str, Callable[[], dict]] = {
        "explore": lambda: _explore(data_root, out / "explore", seed),
        "overfit": lambda: _overfit(data_root, out / "overfit", overrides),
        "genre": lambda: _suite_result(suites.genre_suite(data_root, runs / "genre",
                                                          on_step=note, **kw),
                                       extra=_cross_rate(data_root, runs / "genre")),
        "affect": lambda: _suite_result(suites.affect_suite(data_root, runs / "affect",
                                                            on_step=note, **kw)),
        "transfer": lambda: _suite_result(suites.transfer_suite(
            data_root, runs / "transfer", on_step=note,
            baseline=_rows_of(state, "affect"), **kw)),
        "multitask": lambda: _suite_result(suites.multitask_suite(
            data_root, runs / "multitask", on_step=note, genre_run=genre_source(),
            baseline_rows=_baseline_rows(state), **kw)),
        "submission": lambda: _submission(data_root, out, state),
    }
    try:
        for step in todo:
            bar.set_description(f"lab: {step}")
            missing = missing_folders(data_root, step)
            reason = None
            if missing:
                reason = f"missing folder(s) {', '.join(missing)} in {data_root}"
            elif step == "submission" and not set(TARGETS) <= set(vocab.targets):
                reason = (f"the Kaggle submission needs {', '.join(TARGETS)}; this data's "
                          f"targets are {', '.join(vocab.targets) or 'none'}")
            elif step in ("affect", "transfer", "multitask") and not vocab.targets:
                reason = "this data root has no regression targets"
            if reason:
                log.warning("lab: skipping %s: %s", step, reason)
                state.set(step, status="skipped", reason=reason)
                bar.update(1)
                continue
            t0 = time.perf_counter()
            state.set(step, status="running")
            try:
                result = actions[step]()
            except KeyboardInterrupt:
                state.set(step, status="interrupted", seconds=time.perf_counter() - t0)
                raise
            except (MusicAffectError, OSError, RuntimeError, ValueError, KeyError) as err:
                log.error("lab: step %s failed: %s", step, err)
                state.set(step, status="failed", error=f"{type(err).__name__}: {err}",
                          traceback=traceback.format_exc(limit=6),
                          seconds=time.perf_counter() - t0)
            else:
                state.set(step, status="done", seconds=time.perf_counter() - t0, **result)
            bar.update(1)
        state.data["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
        state.save()
    finally:
        bar.close()
        logging.getLogger("musicaffect").removeHandler(handler)
        handler.close()
        for h, level in quiet:
            h.setLevel(level)
    return build_report(out)


# --------------------------------------------------------------------------- the steps

def _explore(data_root, out: Path, seed: int) -> dict:
    from musicaffect.explore import run_explore

    res = run_explore(data_root, out, seed=seed)
    return {"explore": json.loads(json.dumps(res, default=str))}


def _overfit(data_root, out: Path, overrides: list[str]) -> dict:
    """Lab steps 5b and 7b: a few batches, trained until the loss is near zero (each
    model's ``<preset>_curve.png`` and ``<preset>.json`` in ``out``)."""
    from musicaffect.config import load_config
    from musicaffect.training.engine import overfit, save_overfit

    results = {}
    for preset, extra in (("lstm-beat-mel", ["train.lr=0.005"]),
                          ("cnn-full-mel", ["data.rate=beat", "train.lr=0.003"])):
        cfg = load_config(preset, [*overrides, *extra, "train.batch_size=8",
                                   "train.overfit_batches=1", "train.overfit_epochs=300"])
        res = overfit(cfg, data_root, progress=False)
        path = save_overfit(res, out, name=preset)
        results[preset] = {"reached": res.reached, "epochs": len(res.losses),
                           "first_loss": res.losses[0], "last_loss": res.losses[-1],
                           "target": res.target, "figure": str(path)}
    return {"overfit": results}


def _cross_rate(data_root, genre_dir: Path) -> Callable[[], dict]:
    """The CNN accepts any length: evaluate the full-rate CNN on the beat test set too."""
    def run() -> dict:
        from musicaffect.evaluation.evaluate import evaluate

        run_dir = genre_dir / "cnn-full-mel"
        if not (run_dir / "checkpoints" / "best.pt").is_file():
            return {}
        res = evaluate(run_dir, data_root, rate="beat")
        return {"cross_rate": [{"experiment": "cnn-full-mel", "test set": "beat",
                                "accuracy": res["genre"]["accuracy"],
                                "macro_f1": res["genre"]["macro_f1"]}]}
    return run


def _suite_result(result, extra: Callable[[], dict] | None = None) -> dict:
    out = {"table": result.to_dict(), "runs": result.runs}
    failed = [str(r.get("experiment") or r.get("model")) for r in result.rows if r.get("error")]
    if failed:   # the step went on; `lab` exits non-zero and the report names them
        out.update(failed_presets=failed,
                   error=f"failed preset(s): {', '.join(failed)} (see the table)")
    if extra is not None:
        out.update(extra())
    return out


def _rows_of(state: LabState, step: str):
    from musicaffect.suites import SuiteResult

    t = state.step(step).get("table")
    return SuiteResult(**t) if t else None


def _baseline_rows(state: LabState) -> list[dict]:
    from musicaffect.suites import multitask_baseline

    return multitask_baseline(_rows_of(state, "affect"), _rows_of(state, "transfer"))


def _submission(data_root, out: Path, state: LabState) -> dict:
    from musicaffect.submission import submit
    from musicaffect.suites import SuiteResult, best_run

    t = state.step("multitask").get("table")
    if not t:
        raise MusicAffectError("no multitask model: the multitask step did not finish")
    run = best_run(SuiteResult(**t))
    path = submit([run], data_root, out / "solution.csv")
    with open(path) as f:
        n = sum(1 for _ in f) - 1
    return {"run": run, "path": str(path), "rows": n}


# --------------------------------------------------------------------------- report

def build_report(out_dir: str | Path) -> Path:
    """Write ``report.html`` and ``report.md`` from a lab folder's ``lab_state.json``
    (the report's text: :mod:`musicaffect.lab_report`)."""
    from musicaffect.lab_report import write_report

    out = Path(out_dir)
    state = LabState(out / "lab_state.json")
    if not state.path.is_file():
        raise MusicAffectError(f"{out}: no lab_state.json; run `musicaffect lab` first")
    return write_report(out, state.data, STEPS)
