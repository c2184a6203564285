"""Where a result was measured: the software versions and the machine (CPU, GPUs), as the
report's "Run information" shows them."""

from __future__ import annotations

import os
import platform
from importlib import metadata

__all__ = ["device_description", "package_version", "software_versions"]


def package_version(dist: str) -> str:
    """The installed version of a distribution ("not installed" when it is missing)."""
    if dist == "musicaffect":
        from musicaffect import __version__

        return __version__
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def software_versions() -> dict[str, str]:
    """Versions of Python and of the libraries a result depends on.

    Returns
    -------
    versions : dict[str, str]
        Keys ``python``, ``musicaffect``, ``torch``, ``lightning``, ``numpy``, ``scipy``,
        ``sklearn``, ``librosa``, ``matplotlib`` and ``platform``; "not installed" when a
        library is missing. Reads package metadata only (imports nothing heavy).
    """
    dists = {"musicaffect": "musicaffect", "torch": "torch", "lightning": "lightning",
             "numpy": "numpy", "scipy": "scipy", "sklearn": "scikit-learn",
             "librosa": "librosa", "matplotlib": "matplotlib"}
    out = {"python": platform.python_version()}
    out.update({key: package_version(dist) for key, dist in dists.items()})
    out["platform"] = platform.platform()
    return out


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def device_description() -> str:
    """One line describing the CPU and the accelerators torch can use.

    Returns
    -------
    description : str
        E.g. ``"CPU: AMD EPYC 7B13 (2 cores available); GPU 0: NVIDIA H100 80GB HBM3
        (79.1 GiB), CUDA 12.1"`` or ``"...; no GPU"``.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    parts = [f"CPU: {_cpu_name()} ({cores} cores available)"]
    try:
        import torch
    except ImportError:
        return parts[0] + "; torch not installed"
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            prop = torch.cuda.get_device_properties(i)
            parts.append(f"GPU {i}: {prop.name} ({prop.total_memory / 2**30:.1f} GiB)")
        parts[-1] += f", CUDA {torch.version.cuda}"
    elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        parts.append("Apple MPS")
    else:
        parts.append("no GPU")
    return "; ".join(parts)
