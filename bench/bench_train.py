"""Benchmark: one training epoch, the project's engine vs a lab-style reference.

Cases (the lab's genre models, sizes of the project presets):

- ``lstm-beat-mel``: bidirectional LSTM (64 units) on the beat-synchronous mel spectrogram;
- ``lstm-full-mel``: the same on the full-rate mel spectrogram (~1293 frames);
- ``cnn-full-mel``: the lab CNN (4 x Conv-BN-ReLU-MaxPool, 16/32/64/128 channels) on full mel;
- ``chunk-cnn-genre``, ``crnn-genre`` (issue 12, project mode only): the short-chunk
  residual CNN / the CRNN trained on one random 128- / 256-frame window per clip and epoch of
  the same full-rate clips, with their presets' recipe (mixup, SpecAugment, EMA update,
  gradient clipping). Their ``speedup_vs_cnn_full_mel`` is the lab CNN's project epoch time
  over theirs (same clips, same run), and ``--val-batches N`` also times N validation batches
  (whole clips for the lab CNN, evenly spaced overlapping windows for the chunked models) so
  ``epoch_with_val_s`` includes validation.

Modes, each measured in its own subprocess (peak memory = that process's ``ru_maxrss``):

- ``ref``: :mod:`lab_reference` (eager gzip load into float64, every clip padded to the
  folder's longest, ``DataLoader(shuffle=True)``, packed LSTM or the lab CNN, fp32, Adam);
- ``project``: the engine's pieces as ``musicaffect.training.engine.fit`` uses them (Fabric,
  ``prepare_data`` over the clip cache, ``build_run_model`` with normalisation,
  ``EpochBatchSampler`` + ``make_loader`` with per-batch padding, ``build_loss``, the preset's
  gradient clipping) and the same loop body as ``fit``, without validation or checkpoints;
- ``project-packed``: the same with ``model.params.impl=packed`` (LSTM cases only), to show
  how much of the gain is the LSTM's padded CPU path.

Both sides train on the same 80% of the mapped train clips (the lab's split), batch 32. The
one-time setup (reference: reading every file; project: opening or building the cache and
fitting the normalisation) is reported apart from the epoch. With ``--max-batches N`` only N
batches are timed (after ``--warmup`` untimed ones) and the epoch time is extrapolated from
the measured clips/s; the output says so.

Usage::

    python bench/bench_train.py --max-batches 5,lstm-beat-mel=0 --slow-batches 1 --repeats 2
    python bench/bench_train.py --cases cnn-full-mel --modes ref,project --max-batches 5 \
        --env MALLOC_MMAP_THRESHOLD_=17179869184 --variant big-mmap-threshold
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

CASES = {
    "lstm-beat-mel": {"preset": "lstm-beat-mel", "folder": "fma_genre_spectrograms_beat",
                      "model": "lstm", "view": "mel"},
    "lstm-full-mel": {"preset": "lstm-full-mel", "folder": "fma_genre_spectrograms",
                      "model": "lstm", "view": "mel"},
    "cnn-full-mel": {"preset": "cnn-full-mel", "folder": "fma_genre_spectrograms",
                     "model": "cnn", "view": "mel"},
    "chunk-cnn-genre": {"preset": "chunk-cnn-genre", "folder": "fma_genre_spectrograms",
                        "model": "cnn_short", "view": "mel", "project_only": True},
    "crnn-genre": {"preset": "crnn-genre", "folder": "fma_genre_spectrograms",
                   "model": "crnn", "view": "mel", "project_only": True},
}
#: the lab CNN case the chunked cases are compared with
LAB_CNN = "cnn-full-mel"
MODES = ("ref", "project", "project-packed")
#: the environment both sides run with (the CLI sets the same OpenMP policy)
CHILD_ENV = {"OMP_WAIT_POLICY": "PASSIVE"}


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def _cpu_s() -> float:
    """User + system CPU seconds of this process so far (all its threads)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


# --------------------------------------------------------------------------- children

def child_ref(case: dict, data: Path, cache: Path, max_batches: int | None, warmup: int,
              preset_params: dict) -> dict:
    import lab_reference as lab
    import torch

    base = _maxrss_mb()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    ds, loader, net, opt = lab.build_reference(
        data / case["folder"], model=case["model"], view=case["view"], **preset_params)
    net = net.to(device)
    n_train = len(loader.dataset)
    load = os.getloadavg()
    cpu0 = _cpu_s()
    res = lab.train_batches(net, loader, opt, device=device, max_batches=max_batches,
                            skip=warmup)
    return {**res, "cpu_s": _cpu_s() - cpu0, "setup_s": ds.load_seconds, "n_train": n_train,
            "max_length": ds.max_length, "data_mb": ds.feats.nbytes / 2**20,
            "loadavg_before": load, "baseline_rss_mb": base, "maxrss_mb": _maxrss_mb(),
            "device": device, "threads": torch.get_num_threads()}


def child_project(case: dict, data: Path, cache: Path, max_batches: int | None, warmup: int,
                  overrides: list[str], val_batches: int = 0) -> dict:
    import torch

    from musicaffect.config import load_config
    from musicaffect.data.loading import EpochBatchSampler, make_loader, prepare_data
    from musicaffect.evaluation.inference import predict_outputs, window_options
    from musicaffect.runtime import tune_process
    from musicaffect.training.engine import (
        build_optimizer,
        build_run_model,
        make_fabric,
        train_step,
    )
    from musicaffect.training.losses import build_loss
    from musicaffect.training.recipe import WeightEMA, mixup_batch

    base = _maxrss_mb()
    cfg = load_config(case["preset"], [f"data.cache_dir={cache}", *overrides])
    t0 = time.perf_counter()
    tune_process()  # as the CLI does (OMP_WAIT_POLICY is also in CHILD_ENV)
    fabric = make_fabric(cfg)  # imports lightning.fabric (seconds, once per process)
    fabric.launch()
    fabric.seed_everything(cfg.seed)
    fabric_s = time.perf_counter() - t0
    data_ = prepare_data(cfg, data)
    model = build_run_model(cfg, data_)
    lc = cfg.loss
    loss_fn = build_loss(data_.tasks, regression=lc.regression, bounded=lc.bounded,
                         rank_weight=lc.rank_weight, weights=lc.weights,
                         learn_weights=lc.learn_weights, label_smoothing=lc.label_smoothing)
    optimizer = build_optimizer(cfg, list(model.parameters()) + list(loss_fn.parameters()))
    model, optimizer = fabric.setup(model, optimizer)
    loss_fn = loss_fn.to(fabric.device)
    limit = None if max_batches is None else warmup + max_batches
    sampler = EpochBatchSampler(data_.train_idx, batch_size=cfg.train.batch_size,
                                seed=cfg.seed, max_batches=limit)
    train_set = data_.dataset
    if cfg.data.chunk_frames is not None:   # excerpt training, as engine.fit does
        from musicaffect.data.dataset import RandomWindows

        train_set = RandomWindows(data_.dataset, cfg.data.chunk_frames, seed=cfg.seed)
    loader = make_loader(train_set, sampler, num_workers=cfg.data.num_workers,
                         max_length=cfg.data.max_length)
    raw_model = model.module if hasattr(model, "module") else model
    ema = WeightEMA(raw_model, cfg.train.ema) if cfg.train.ema > 0 else None
    setup_s = time.perf_counter() - t0
    load = os.getloadavg()
    # engine.fit's training loop: train_step per batch (no progress bar, validation or checkpoints)
    model.train()
    n_clips, n_batches, total = 0, 0, 0.0
    t1, cpu0 = time.perf_counter(), _cpu_s()
    for b, batch in enumerate(loader):
        if b == warmup:
            t1, cpu0 = time.perf_counter(), _cpu_s()
            n_clips, n_batches, total = 0, 0, 0.0
        augment = None
        if cfg.train.mixup > 0:
            def augment(x, lengths, y, b=b):
                return mixup_batch(x, lengths, y, alpha=cfg.train.mixup,
                                   n_classes=raw_model.tasks, seed=cfg.seed, epoch=0,
                                   batch=b)[:3]
        loss = train_step(model, optimizer, loss_fn, batch, fabric,
                          grad_clip=cfg.train.grad_clip, augment=augment)
        if ema is not None:
            ema.update(raw_model)
        total += float(loss) * len(batch["ids"])
        n_clips += len(batch["ids"])
        n_batches += 1
    seconds, cpu_s = time.perf_counter() - t1, _cpu_s() - cpu0
    val = {}
    if val_batches:
        # validation as engine.fit runs it (windows over whole clips for chunked models)
        vsampler = EpochBatchSampler(data_.val_idx, batch_size=cfg.train.batch_size,
                                     seed=cfg.seed, shuffle=False, max_batches=val_batches)
        vloader = make_loader(data_.dataset, vsampler, max_length=cfg.data.max_length)
        eval_model = ema.module if ema is not None else model
        tv = time.perf_counter()
        res = predict_outputs(eval_model, vloader, fabric=fabric, **window_options(cfg))
        val = {"val_seconds": time.perf_counter() - tv, "val_clips": len(res["ids"]),
               "n_val": len(data_.val_idx),
               "val_windows_per_clip": (float(res["windows"].mean()) if "windows" in res
                                        else 1.0)}
    return {**val, "seconds": seconds, "cpu_s": cpu_s, "clips": n_clips, "batches": n_batches,
            "train_loss": total / max(n_clips, 1), "setup_s": setup_s,
            "setup_fabric_s": fabric_s,
            "n_train": len(data_.train_idx), "loadavg_before": load, "baseline_rss_mb": base,
            "maxrss_mb": _maxrss_mb(), "device": str(fabric.device),
            "threads": torch.get_num_threads(), "model_params": dict(cfg.model.params),
            "grad_clip": cfg.train.grad_clip, "chunk_frames": cfg.data.chunk_frames,
            "chunk_hop": cfg.data.chunk_hop, "mixup": cfg.train.mixup, "ema": cfg.train.ema}


def _preset_lstm_params(preset: str) -> dict:
    """Hidden size / layers / direction of a project preset, for the reference LSTM."""
    from musicaffect.config import load_config

    cfg = load_config(preset)
    if cfg.model.name != "lstm":
        return {}
    p = cfg.model.params
    return {"hidden_size": int(p.get("hidden_size", 128)),
            "num_layers": int(p.get("num_layers", 2)),
            "bidirectional": bool(p.get("bidirectional", False))}


def run_child(args: argparse.Namespace) -> dict:
    case = CASES[args.case]
    mb = int(args.max_batches) or None
    if args.child == "ref":
        return child_ref(case, args.data, args.cache_dir, mb, args.warmup,
                         _preset_lstm_params(case["preset"]))
    overrides = ["model.params.impl=packed"] if args.child == "project-packed" else []
    return child_project(case, args.data, args.cache_dir, mb, args.warmup, overrides,
                         val_batches=args.val_batches)


# --------------------------------------------------------------------------- parent

def parse_batches(spec: str) -> dict[str, int]:
    """``"6"`` or ``"6,lstm-beat-mel=0"`` -> batches per case (key ``"*"`` = the default)."""
    out = {"*": 0}
    for item in filter(None, (p.strip() for p in str(spec).split(","))):
        key, _, value = item.rpartition("=")
        if key and key not in CASES:
            raise ValueError(f"--max-batches: unknown case {key!r}; choose from "
                             f"{', '.join(CASES)}")
        out[key or "*"] = int(value)
    return out


def is_slow(case: str, mode: str) -> bool:
    """Packed-sequence LSTM on full-rate clips: a minute or more per batch on a CPU."""
    return (CASES[case]["model"] == "lstm" and CASES[case]["folder"].endswith("spectrograms")
            and mode in ("ref", "project-packed"))


def plan(case: str, mode: str, args: argparse.Namespace) -> tuple[int, int]:
    """``(timed batches (0 = the rest of the epoch), warm-up batches)`` of one run."""
    batches = parse_batches(args.max_batches)
    n = batches.get(case, batches["*"])
    if args.slow_batches and is_slow(case, mode):
        return args.slow_batches, 0
    return n, args.warmup


def _spawn(mode: str, case: str, args: argparse.Namespace) -> dict:
    n, warmup = plan(case, mode, args)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", mode, "--case", case,
           "--data", str(args.data), "--cache-dir", str(args.cache_dir),
           "--max-batches", str(n), "--warmup", str(warmup),
           "--val-batches", str(args.val_batches)]
    env = {**os.environ, **CHILD_ENV, **dict(e.split("=", 1) for e in args.env)}
    load = os.getloadavg()
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise SystemExit(f"child {mode}/{case} failed:\n{out.stderr[-4000:]}")
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res.update(process_wall_s=time.perf_counter() - t0, loadavg_at_spawn=load,
               max_batches=n or None, warmup_batches=warmup)
    res["clips_per_s"] = res["clips"] / res["seconds"]
    res["epoch_s"] = res["n_train"] / res["clips_per_s"]
    res["cpu_s_per_clip"] = res["cpu_s"] / res["clips"]
    res["epoch_extrapolated"] = res["clips"] != res["n_train"]
    if res.get("val_clips"):
        res["val_s"] = res["n_val"] * res["val_seconds"] / res["val_clips"]
        res["epoch_with_val_s"] = res["epoch_s"] + res["val_s"]
    return res


def _r(values, nd=2) -> list[float]:
    return [round(v, nd) for v in values]


def _summary(runs: list[dict]) -> dict:
    """Per-case figures of the repeated runs (lists, one value per run, in run order).

    ``speedup_<mode>`` = reference epoch time / project epoch time of the same repeat
    (wall clock); ``cpu_speedup_<mode>`` the same with CPU seconds per clip.
    """
    grouped: dict = {}
    for r in runs:
        grouped.setdefault(r["case"], {}).setdefault(r["mode"], []).append(r)
    table = {}
    for case, modes in grouped.items():
        row: dict = {}
        for mode, rs in modes.items():
            row[mode] = {
                "timed_batches": [r["batches"] for r in rs],
                "timed_clips": [r["clips"] for r in rs],
                "epoch_s": _r(r["epoch_s"] for r in rs),
                "clips_per_s": _r(r["clips_per_s"] for r in rs),
                "cpu_s_per_clip": _r((r["cpu_s_per_clip"] for r in rs), 4),
                "maxrss_mb": _r((r["maxrss_mb"] for r in rs), 1),
                "setup_s": _r(r["setup_s"] for r in rs),
                "loadavg_1min": _r(r["loadavg_before"][0] for r in rs),
            }
            if all("epoch_with_val_s" in r for r in rs):
                row[mode]["val_s"] = _r(r["val_s"] for r in rs)
                row[mode]["epoch_with_val_s"] = _r(r["epoch_with_val_s"] for r in rs)
        for mode in ("project", "project-packed"):
            if "ref" not in modes or mode not in modes:
                continue
            pairs = list(zip(modes["ref"], modes[mode], strict=False))
            row[f"speedup_{mode}"] = _r(a["epoch_s"] / b["epoch_s"] for a, b in pairs)
            row[f"time_ratio_{mode}_over_ref"] = _r((b["epoch_s"] / a["epoch_s"]
                                                     for a, b in pairs), 3)
            row[f"cpu_speedup_{mode}"] = _r(a["cpu_s_per_clip"] / b["cpu_s_per_clip"]
                                            for a, b in pairs)
        table[case] = row
    # the chunked models against the lab CNN of the same repeats (same clips)
    lab = grouped.get(LAB_CNN, {}).get("project", [])
    for case, modes in grouped.items():
        if not CASES[case].get("project_only") or not lab or "project" not in modes:
            continue
        pairs = list(zip(lab, modes["project"], strict=False))
        table[case]["speedup_vs_cnn_full_mel"] = _r(a["epoch_s"] / b["epoch_s"]
                                                    for a, b in pairs)
        table[case]["cpu_speedup_vs_cnn_full_mel"] = _r(
            a["cpu_s_per_clip"] / b["cpu_s_per_clip"] for a, b in pairs)
        if all("epoch_with_val_s" in r for p in pairs for r in p):
            table[case]["speedup_with_val_vs_cnn_full_mel"] = _r(
                a["epoch_with_val_s"] / b["epoch_with_val_s"] for a, b in pairs)
    return table


def _targets(table: dict, device: str) -> dict:
    """Issue 3's targets, judged on the smaller wall-clock speedup of the repeated runs."""
    gpu = device.startswith("cuda")
    need = {"lstm-beat-mel": 2.0, "lstm-full-mel": 2.0, "cnn-full-mel": 4.0 if gpu else 1.0}
    res = {}
    for case, row in table.items():
        if "speedup_project" in row:
            s = min(row["speedup_project"])
            res[case] = {"required_speedup": need[case], "measured_min": s,
                         "met": bool(s >= need[case])}
        if "speedup_vs_cnn_full_mel" in row:     # issue 12: chunked CNN >= 4x the lab CNN
            s = min(row["speedup_vs_cnn_full_mel"])
            res[case] = {"required_speedup_vs_cnn_full_mel": 4.0, "measured_min": s,
                         "met": bool(s >= 4.0)}
    return res


def _fmt(values) -> str:
    return " / ".join(f"{x:g}" for x in values)


def _print_table(table: dict) -> None:
    print("\nepoch s (extrapolated from the timed batches where fewer than an epoch), "
          "runs separated by '/'")
    print(f"{'case':14} {'mode':15} {'batches':>8} {'epoch s':>17} {'clips/s':>13} "
          f"{'CPU s/clip':>15} {'peak MB':>15} {'setup s':>13}")
    for case, row in table.items():
        for mode in MODES:
            if mode not in row:
                continue
            m = row[mode]
            print(f"{case:14} {mode:15} {_fmt(m['timed_batches']):>8} {_fmt(m['epoch_s']):>17} "
                  f"{_fmt(m['clips_per_s']):>13} {_fmt(m['cpu_s_per_clip']):>15} "
                  f"{_fmt(m['maxrss_mb']):>15} {_fmt(m['setup_s']):>13}")
        for mode in ("project", "project-packed"):
            if f"speedup_{mode}" in row:
                print(f"{'':14} {mode} vs ref: speedup {_fmt(row[f'speedup_{mode}'])} "
                      f"(CPU time: {_fmt(row[f'cpu_speedup_{mode}'])})")
        if "speedup_vs_cnn_full_mel" in row:
            extra = ""
            if "speedup_with_val_vs_cnn_full_mel" in row:
                extra = (", with validation: "
                         f"{_fmt(row['speedup_with_val_vs_cnn_full_mel'])}")
            print(f"{'':14} project vs {LAB_CNN} project: epoch speedup "
                  f"{_fmt(row['speedup_vs_cnn_full_mel'])} (CPU time: "
                  f"{_fmt(row['cpu_speedup_vs_cnn_full_mel'])}){extra}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=HERE / "data" / "full",
                        help="full-size sample dataset (bench_read.py writes it)")
    parser.add_argument("--cache-dir", type=Path, default=HERE / "data" / "cache",
                        help="the project's clip cache (built on first use)")
    parser.add_argument("--cases", default=",".join(CASES),
                        help=f"comma-separated, from {', '.join(CASES)}")
    parser.add_argument("--modes", default=",".join(MODES),
                        help="comma-separated, from " + ", ".join(MODES))
    parser.add_argument("--max-batches", default="0",
                        help="batches to time per run, 0 = the whole epoch; a default and/or "
                             "CASE=N items, e.g. '6,lstm-beat-mel=0'; the epoch time is then "
                             "extrapolated from the measured clips/s")
    parser.add_argument("--slow-batches", type=int, default=0,
                        help="batches to time, without warm-up, in the packed-sequence LSTM "
                             "runs on full-rate clips (reference and project-packed; a minute "
                             "or more per batch on a CPU); 0 = as --max-batches")
    parser.add_argument("--val-batches", type=int, default=0,
                        help="also time this many validation batches per project run (0 = "
                             "none); epoch_with_val_s then includes validation")
    parser.add_argument("--warmup", type=int, default=1,
                        help="untimed batches before timing starts")
    parser.add_argument("--repeats", type=int, default=2,
                        help="runs of every case and mode (interleaved)")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                        help="extra environment of every child process, both sides "
                             "(repeatable), e.g. MALLOC_MMAP_THRESHOLD_=17179869184")
    parser.add_argument("--variant", default=None,
                        help="store the result under variants[NAME] of an existing --out file "
                             "instead of replacing it")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "train.json")
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--case", choices=sorted(CASES), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(run_child(args)))
        return 0

    if not (args.data / "fma_genre_spectrograms").is_dir():
        parser.error(f"{args.data}: no dataset there; write one with "
                     "`musicaffect sample-data --size full --gz DIR` or bench/bench_read.py")
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    for c in cases:
        if c not in CASES:
            parser.error(f"unknown case {c!r}: choose from {', '.join(CASES)}")
    for m in modes:
        if m not in MODES:
            parser.error(f"unknown mode {m!r}: choose from {', '.join(MODES)}")
    try:
        parse_batches(args.max_batches)
    except ValueError as err:
        parser.error(str(err))
    if any("=" not in e for e in args.env):
        parser.error("--env takes KEY=VALUE")

    t_all = time.perf_counter()
    runs = []
    for rep in range(args.repeats):
        for case in cases:
            # alternate the order of the modes between repeats (drifting load hits both)
            for mode in (modes if rep % 2 == 0 else modes[::-1]):
                if mode == "project-packed" and CASES[case]["model"] != "lstm":
                    continue
                if mode != "project" and CASES[case].get("project_only"):
                    continue
                r = _spawn(mode, case, args)
                r.update(case=case, mode=mode, repeat=rep + 1)
                runs.append(r)
                print(f"run {rep + 1} {case:14} {mode:15} {r['batches']:4d} batches "
                      f"{r['seconds']:8.2f} s  {r['clips_per_s']:7.2f} clips/s  "
                      f"epoch ~{r['epoch_s']:8.1f} s  CPU {r['cpu_s_per_clip']:.3f} s/clip  "
                      f"peak {r['maxrss_mb']:6.0f} MB  load {r['loadavg_before'][0]:.1f}",
                      file=sys.stderr, flush=True)
    table = _summary(runs)
    device = runs[0]["device"] if runs else "cpu"
    result = {
        "benchmark": "one training epoch (the train part of the lab split, batch 32): the "
                     "project engine vs a lab-style reference (bench/lab_reference.py), on "
                     "synthetic full-size data",
        "command": " ".join(["python", "bench/bench_train.py", *(argv or sys.argv[1:])]),
        "data": str(args.data),
        "timing": "epoch_s = n_train / clips_per_s, clips_per_s over the timed batches of "
                  "each run (after its warm-up batches); where fewer batches than an epoch "
                  "were timed (epoch_extrapolated) the epoch time is an extrapolation. "
                  "cpu_s_per_clip = user + system CPU seconds of the process over the timed "
                  "batches, less sensitive than wall time to other jobs on a shared machine. "
                  "Setup (reference: reading and padding every file; project: importing "
                  "Lightning Fabric, opening the clip cache, fitting the normalisation) is "
                  "not in the epoch.",
        "max_batches": args.max_batches, "slow_batches": args.slow_batches or None,
        "warmup_batches": args.warmup,
        "epoch_extrapolated": any(r["epoch_extrapolated"] for r in runs),
        "project_loop": "engine pieces (make_fabric, prepare_data, build_run_model, build_loss, "
                        "build_optimizer, EpochBatchSampler, make_loader) and the body of "
                        "engine.fit's training loop; no validation, checkpoints or progress bar",
        "summary": table,
        "targets": _targets(table, device),
        "runs": runs,
        "env": {**CHILD_ENV, **dict(e.split("=", 1) for e in args.env), "threads": runs[0]["threads"] if runs else None,
                "device": device, "cpu_model": _cpu_model(), "cpu_count": os.cpu_count(),
                "cpu_affinity": len(os.sched_getaffinity(0)),
                "python": platform.python_version(), "torch": _torch_version(),
                "machine": platform.machine()},
        "total_wall_s": round(time.perf_counter() - t_all, 1),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.variant:
        doc = json.loads(args.out.read_text()) if args.out.is_file() else {}
        doc.setdefault("variants", {})[args.variant] = result
        args.out.write_text(json.dumps(doc, indent=2) + "\n")
    else:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    _print_table(table)
    print(json.dumps(result["targets"], indent=2))
    return 0


def _torch_version() -> str:
    import torch

    return torch.__version__


if __name__ == "__main__":
    sys.exit(main())
