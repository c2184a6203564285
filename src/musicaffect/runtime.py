"""Process-wide tuning, opt-in: the ``musicaffect`` command calls :func:`tune_process` at
start-up; a library user (a notebook, a script) calls it once, before importing torch.

Nothing in the library changes the process on its own: :func:`musicaffect.training.engine.fit`
runs the same with or without it, only slower on a busy CPU.
"""

from __future__ import annotations

import os

__all__ = ["keep_heap", "tune_process"]


def tune_process(*, omp_passive: bool = True, heap: bool = True) -> dict[str, bool]:
    """Tune this process for training and inference on CPUs.

    - ``omp_passive``: ``OMP_WAIT_POLICY=PASSIVE`` unless already set: idle OpenMP threads
      sleep instead of spinning (on a busy CPU, or with several training processes on one
      machine, spinning threads make small RNN/CNN steps many times slower). OpenMP reads it
      once, when torch starts: call this before anything imports torch.
    - ``heap``: :func:`keep_heap` (glibc keeps freed memory for reuse).

    Returns which of the two took effect (``omp_passive`` is False when torch was already
    imported or the variable was already set to something else).
    """
    import sys

    omp = False
    if omp_passive:
        before = "torch" in sys.modules
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        omp = not before and os.environ["OMP_WAIT_POLICY"].upper() == "PASSIVE"
    return {"omp_passive": omp, "heap": keep_heap() if heap else False}


def keep_heap() -> bool:
    """Ask glibc's allocator to keep freed memory instead of returning it to the OS.

    A full-rate batch's activations are hundreds of MB; by default glibc maps them fresh at
    every step (the kernel zeroes every page) and unmaps them after, which costs about half of
    a CPU training step of the lab CNN (bench/README.md). Raising the mmap and trim
    thresholds keeps the pages for reuse, at the price of a higher resident peak. Linux/glibc
    only; returns False where it does not apply.
    """
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):   # not glibc (e.g. musl): nothing to tune
        return False
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
    big = 2**31 - 1
    return bool(mallopt(M_MMAP_THRESHOLD, big)) and bool(mallopt(M_TRIM_THRESHOLD, big))
