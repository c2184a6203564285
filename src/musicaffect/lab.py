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
import platform
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
    """Lab steps 5b and 7b: a few batches, trained until the loss is near zero."""
    import matplotlib.pyplot as plt

    from musicaffect.config import load_config
    from musicaffect.evaluation.plots import plot_overfit_curve
    from musicaffect.training.engine import overfit

    out.mkdir(parents=True, exist_ok=True)
    results = {}
    for preset, extra in (("lstm-beat-mel", ["train.lr=0.005"]),
                          ("cnn-full-mel", ["data.rate=beat", "train.lr=0.003"])):
        cfg = load_config(preset, [*overrides, *extra, "train.batch_size=8",
                                   "train.overfit_batches=1", "train.overfit_epochs=300"])
        res = overfit(cfg, data_root, progress=False)
        fig = plot_overfit_curve(res.losses, threshold=res.target)
        path = out / f"{preset}.png"
        fig.savefig(path, dpi=110, bbox_inches="tight")
        plt.close(fig)
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

def _fig(path) -> str | None:
    return str(path) if path and Path(path).is_file() else None


def build_report(out_dir: str | Path) -> Path:
    """Write ``report.html`` and ``report.md`` from a lab folder's ``lab_state.json``."""
    from musicaffect.evaluation.report import Report, device_description, software_versions

    out = Path(out_dir)
    state = LabState(out / "lab_state.json")
    if not state.path.is_file():
        raise MusicAffectError(f"{out}: no lab_state.json; run `musicaffect lab` first")
    d = state.data
    rep = Report("musicaffect: genre recognition and emotion extraction from music",
                 subtitle=f"NTUA Pattern Recognition Lab 3, run by musicaffect on "
                          f"`{d.get('data_root')}` ({d.get('started', '')})")
    if d.get("synthetic"):
        rep.add_note("**The data is SYNTHETIC** (generated by `musicaffect sample-data`): every "
                     "number below was measured on generated spectrograms, not on real music, "
                     "and is not comparable with the public results shown beside it. Point "
                     "`musicaffect lab` at the real Kaggle data for real results.",
                     kind="warning")
    rep.add_section("Overview", "Status of each step of the lab.")
    rows = []
    for step in STEPS:
        s = state.step(step)
        rows.append({"step": step, "status": s.get("status", "not run"),
                     "seconds": s.get("seconds"),
                     "note": s.get("reason") or s.get("error") or ""})
    rep.add_table(rows, header=["step", "status", "seconds", "note"], digits=1)

    refs = d.get("references", True)
    if not refs:
        rep.add_note(f"This data root has its own labels (labels.json): classes "
                     f"{', '.join(d.get('classes') or []) or 'none'}; targets "
                     f"{', '.join(d.get('targets') or []) or 'none'}. LAB.md's public numbers "
                     "are for the Kaggle dataset and are not shown beside these tables.",
                     kind="info")
    _report_explore(rep, state.step("explore"))
    _report_overfit(rep, state.step("overfit"))
    _report_genre(rep, state.step("genre"), out, refs)
    _report_affect(rep, "Affect regression (lab step 8)", state.step("affect"),
                   "One model per target: the best LSTM recipe (beat-synchronous fused "
                   "features) and the lab CNN (full-rate fused); Spearman's rho on a held-out "
                   "20% of the multitask train split (the competition test split has no "
                   "labels).", ["LSTM (beat fused)", "CNN (full fused)"], refs)
    _report_affect(rep, "Transfer learning (lab step 9)", state.step("transfer"),
                   "A genre CNN on full-rate fused features is trained first; the checkpoint "
                   "of its best validation epoch (lowest validation loss) initialises the "
                   "backbone of each regressor, which gets a new head and is fine-tuned (whole "
                   "network trainable).", ["CNN (full fused)", "CNN transfer from genre"],
                   refs)
    _report_affect(rep, "Multitask learning (lab step 10)", state.step("multitask"),
                   "One shared backbone with three regression heads; the loss sums the "
                   "per-target losses with fixed weights (0.4/0.2/0.2, as the best public run) "
                   "or learns them (homoscedastic uncertainty); also combined with transfer, "
                   "and musicaffect's strongest recipe.", None, refs)
    _report_submission(rep, state.step("submission"))
    _report_activations(rep, state.step("genre"), out, d.get("data_root"))

    rep.add_section("Run information")
    rep.add_kv({"data root": d.get("data_root"), "synthetic data": d.get("synthetic"),
                "budget": d.get("budget"), "seed": d.get("seed"),
                "overrides": " ".join(d.get("overrides") or []) or "none",
                "started": d.get("started"), "finished": d.get("finished", "")},
               caption="This run")
    rep.add_kv({"device": device_description(), "platform": platform.platform()},
               caption="Machine")
    rep.add_kv(software_versions(), caption="Software versions")
    genre_runs = state.step("genre").get("runs", {})
    first = next(iter(genre_runs.values()), None)
    if first and (Path(first) / "config.yaml").is_file():
        rep.add_code((Path(first) / "config.yaml").read_text(),
                     caption=f"Configuration of {Path(first).name} (every run folder holds "
                             "its own config.yaml)")
    html, _ = rep.write(out)
    return html


def _status_note(rep, s: dict) -> bool:
    status = s.get("status")
    if status == "done":
        return True
    if status == "skipped":
        rep.add_note(f"Skipped: {s.get('reason')}", kind="warning")
    elif status == "failed":
        rep.add_note(f"Failed: {s.get('error')}", kind="warning")
    else:
        rep.add_note(f"Not run ({status or 'not reached'}).", kind="info")
    return False


def _report_explore(rep, s: dict) -> None:
    rep.add_section("Data exploration (lab steps 1-4)",
                    "Two random training clips of different genres; their mel spectrograms and "
                    "chromagrams at the full frame rate and beat-synchronous; the number of "
                    "clips per class before and after the 20 -> 10 class mapping.")
    if not _status_note(rep, s):
        return
    ex = s.get("explore", {})
    shapes = []
    for c in ex.get("clips", []):
        row = {"clip": c.get("id"), "genre": c.get("genre20") or c.get("genre")}
        for k, v in (c.get("shapes") or {}).items():
            row[k] = str(tuple(v)) if isinstance(v, (list, tuple)) else str(v)
        shapes.append(row)
    if shapes:
        rep.add_table(shapes, caption="Shapes (features, frames) of the two clips")
    figs = ex.get("figures", {})
    for key, caption in (("mel_full", "Step 1: mel spectrograms (full rate)"),
                         ("mel_beat", "Step 2: beat-synchronous mel spectrograms"),
                         ("chroma_full", "Step 3: chromagrams (full rate)"),
                         ("chroma_beat", "Step 3: beat-synchronous chromagrams"),
                         ("class_histograms", "Step 4: clips per class before and after "
                                              "the mapping")):
        if _fig(figs.get(key)):
            rep.add_figure(figs[key], caption=caption)


def _report_overfit(rep, s: dict) -> None:
    rep.add_section("Overfitting sanity check (lab steps 5b, 7b)",
                    "Each model is trained on a single batch until its training loss is near "
                    "zero: a model that cannot do this has a bug.")
    if not _status_note(rep, s):
        return
    rows = []
    for name, r in s.get("overfit", {}).items():
        rows.append({"model": name, "reached": r["reached"], "epochs": r["epochs"],
                     "first loss": r["first_loss"], "last loss": r["last_loss"],
                     "target": r["target"]})
    rep.add_table(rows)
    for name, r in s.get("overfit", {}).items():
        if _fig(r.get("figure")):
            rep.add_figure(r["figure"], caption=f"Training loss on one batch: {name}")


def _report_genre(rep, s: dict, out: Path, refs: bool = True) -> None:
    from musicaffect.suites import GENRE_SUITE

    rep.add_section("Genre classification (lab steps 5-7)",
                    "LSTM (packed sequences, bidirectional) on four feature sets, the lab's "
                    "2D CNN (4 x Conv-BN-ReLU-MaxPool) and musicaffect's residual CNN; Adam, "
                    "20% validation split (seed 420), early stopping, best-epoch checkpoint; "
                    "evaluated on the official test set of their rate.")
    if not _status_note(rep, s):
        return
    t = s["table"]
    ours = [{k: r[k] for k in ("experiment", "model", "features", "accuracy", "macro_f1")}
            for r in t["rows"]]
    if refs:
        ref = [{"experiment": n, "model": m, "features": f, "accuracy": a, "macro_f1": f1}
               for n, (m, f, a, f1) in GENRE_SUITE.items()
               if a is not None and any(r["experiment"] == n for r in t["rows"])]
        rep.add_table(ours, reference=ref, reference_label="public (LAB.md)",
                      caption="Accuracy and macro-F1 on the test set; public rows: origin "
                              "report and best public student CNN, real data")
    else:
        rep.add_table(ours, caption="Accuracy and macro-F1 on the test set (this data's own "
                                    "classes; no public reference applies)")
    if s.get("cross_rate"):
        rep.add_table(s["cross_rate"], caption="The full-rate CNN evaluated on the "
                                               "beat-synchronous test set")
    for name, run in s.get("runs", {}).items():
        run = Path(run)
        rep.add_section(name, level=3)
        ev = run / "eval" / f"genre-{_rate_of(run)}-test"
        report_txt = ev / "classification_report.txt"
        if report_txt.is_file():
            rep.add_code(report_txt.read_text(), caption=f"Classification report: {name}")
        if _fig(ev / "confusion.png"):
            rep.add_figure(ev / "confusion.png", caption=f"Confusion matrix: {name}")
        if _fig(run / "learning_curves.png"):
            rep.add_figure(run / "learning_curves.png", caption=f"Learning curves: {name}")


def _rate_of(run: Path) -> str:
    import yaml

    cfg = yaml.safe_load((run / "config.yaml").read_text())
    return cfg["data"]["rate"]


def _report_affect(rep, title: str, s: dict, text: str, ref_labels: list[str] | None,
                   refs: bool = True) -> None:
    from musicaffect.suites import AFFECT_REFERENCE

    rep.add_section(title, text)
    if not _status_note(rep, s):
        return
    t = s["table"]
    cols = [c for c in t["columns"] if c != "ref_mean"]
    ours = [{c: r.get(c) for c in cols} for r in t["rows"]]
    if refs and cols == ["model", *TARGETS, "mean"]:
        ref = [dict(zip(cols, (label, *AFFECT_REFERENCE[label])))
               for label in (ref_labels or list(AFFECT_REFERENCE))
               if label in AFFECT_REFERENCE]
        rep.add_table(ours, header=cols, reference=ref, reference_label="public (LAB.md)",
                      caption="Spearman's rho per target and mean; public rows: best public "
                              "student results, real data")
    else:
        rep.add_table(ours, header=cols,
                      caption="Spearman's rho per target and mean (auc_<target>: ROC-AUC of "
                              "a binary target); no public reference applies to this data")
    for name, run in s.get("runs", {}).items():
        run = Path(run)
        scatter = run / "eval" / f"multitask-{_rate_of(run)}-heldout" / "scatter.png" \
            if (run / "config.yaml").is_file() else None
        if scatter is not None and _fig(scatter) and name != "genre source":
            rep.add_figure(scatter, caption=f"Predicted vs true (held-out): {name}")


def _report_submission(rep, s: dict) -> None:
    rep.add_section("Kaggle submission (lab step 11)",
                    "The best multitask model (by mean held-out Spearman) predicts every clip "
                    "of the unlabelled multitask test split; the file is checked (exact "
                    "header, every test clip once, finite values).")
    if not _status_note(rep, s):
        return
    rep.add_kv({"file": s["path"], "rows": s["rows"], "model": s["run"]})
    lines = Path(s["path"]).read_text().splitlines()[:6]
    rep.add_code("\n".join(lines), caption="First lines of the submission")


def _report_activations(rep, s: dict, out: Path, data_root) -> None:
    rep.add_section("What the CNN sees (lab step 7a)",
                    "Activation maps of each convolutional block of the trained lab CNN "
                    "(cnn-full-mel) for one test clip: the first channels of each block, "
                    "time on x, frequency on y; each block halves the resolution.")
    run = s.get("runs", {}).get("cnn-full-mel")
    if not run or not data_root:
        rep.add_note("The genre CNN was not trained in this run.", kind="info")
        return
    from musicaffect.evaluation.activations import activation_figure

    try:
        path = activation_figure(run, data_root, out / "figures_extra" / "activations.png")
    except (MusicAffectError, OSError, RuntimeError) as err:
        rep.add_note(f"Could not compute the activation maps: {err}", kind="warning")
        return
    rep.add_figure(path, caption="Activation maps of the lab CNN's four blocks")
