"""Export a trained network to ONNX or TorchScript, for use outside PyTorch.

The exported graph is the whole :class:`~musicaffect.models.MusicModel`: input normalisation,
padding mask, backbone and task heads. The audio feature front-end (mel / chroma extraction)
stays in Python (:mod:`musicaffect.features`). Inputs and outputs:

- ``x``: (B, T, F) float32 time-major features (not normalised; the graph normalises);
- ``lengths``: (B,) int64 true lengths;
- outputs ``embedding`` (B, D) and one per task: (B, C) logits or (B,) regression values
  (no softmax or sigmoid).

The batch and time axes are dynamic. After writing, the file is reloaded and checked against
the PyTorch model on an input of another batch size and length.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from musicaffect.errors import ConfigError, MusicAffectError

log = logging.getLogger(__name__)

#: export formats and their default file suffixes
FORMATS = {"onnx": ".onnx", "torchscript": ".torchscript.pt"}

#: name of the JSON metadata (ONNX metadata_props key, TorchScript extra file)
METADATA_KEY = "musicaffect.json"

#: maximum absolute difference tolerated between the exported and the PyTorch outputs
PARITY_ATOL = 1e-4


class ExportError(MusicAffectError):
    """The exported file does not reproduce the PyTorch model's outputs."""


class _TupleOutputs(nn.Module):
    """Wraps a MusicModel so it returns its outputs as a tuple in a fixed order (for ONNX)."""

    def __init__(self, model: nn.Module, names: list[str]):
        super().__init__()
        self.model = model
        self.names = names

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model(x, lengths)
        return tuple(out[name] for name in self.names)


def output_names(model: nn.Module) -> list[str]:
    """Output order of an exported model: ``["embedding", *tasks]``."""
    return ["embedding", *model.tasks]


def example_inputs(n_features: int, *, batch: int = 2, length: int = 64,
                   seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A padded example batch: ``x`` (B, T, F) float32 and distinct ``lengths`` (B,) int64."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, length, n_features, generator=gen)
    lengths = torch.linspace(length, max(1, length // 3), batch).round().long()
    return x, lengths


def export_metadata(model: nn.Module, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """JSON-serialisable description stored in the exported file."""
    meta = {
        "format": "musicaffect-export/1",
        "model": model.model_args(),
        "inputs": {"x": ["B", "T", model.n_features], "lengths": ["B"]},
        "outputs": output_names(model),
    }
    meta.update(extra or {})
    return meta


def export_model(model: nn.Module, path: str | os.PathLike, *, fmt: str = "onnx",
                 example_length: int = 64, metadata: dict[str, Any] | None = None,
                 verify: bool = True, opset: int = 17) -> Path:
    """Write ``model`` as an ONNX or TorchScript file.

    Parameters
    ----------
    model : MusicModel
        The network; it is copied to the CPU in eval mode (the caller's model is untouched).
    path : str or os.PathLike
        Output file; parent folders are created.
    fmt : {"onnx", "torchscript"}
        ``"onnx"`` (``torch.onnx.export`` with the TorchScript-based exporter, opset ``opset``)
        or ``"torchscript"`` (``torch.jit.trace``; the module returns a dict like the model).
    example_length : int
        Time length of the example batch used for tracing (any length works afterwards).
    metadata : dict, optional
        Extra JSON-serialisable entries (class names, view, rate ...) stored in the file.
    verify : bool
        Reload the file and compare its outputs with PyTorch's on a batch of another size and
        length (ONNX: only when ``onnxruntime`` is installed).
    opset : int
        ONNX opset version.

    Returns
    -------
    Path
        The written file.

    Raises
    ------
    ConfigError
        Unknown format.
    ExportError
        The exported file does not match the PyTorch outputs within :data:`PARITY_ATOL`.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if example_length < 2:
        raise ConfigError(f"example_length must be at least 2, got {example_length}")
    from musicaffect.paths import check_output_file

    path = Path(check_output_file(path, what="exported model"))
    if fmt == "onnx":
        require_export_extra()
    path.parent.mkdir(parents=True, exist_ok=True)
    net = copy.deepcopy(model).cpu().eval()
    for p in net.parameters():
        p.requires_grad_(False)
    meta = json.dumps(export_metadata(net, metadata), default=str)
    x, lengths = example_inputs(net.n_features, length=example_length)
    if fmt == "onnx":
        _export_onnx(net, x, lengths, path, meta=meta, opset=opset)
    else:
        _export_torchscript(net, x, lengths, path, meta=meta)
    log.info("exported %s model to %s", fmt, path)
    if verify:
        check = example_inputs(net.n_features, batch=3, length=example_length + 37, seed=1)
        diff = compare_outputs(net, path, *check, fmt=fmt)
        if diff is not None and diff > PARITY_ATOL:
            raise ExportError(f"{path}: exported outputs differ from PyTorch by {diff:.3g} "
                              f"(> {PARITY_ATOL}); the model may use an operation that does "
                              "not export; try the other format")
    return path


def require_export_extra() -> None:
    """Raise a named error unless the ``export`` extra (onnx, onnxscript) is installed."""
    missing = []
    for name in ("onnx",):
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise ConfigError(f"ONNX export needs {', '.join(missing)}, which is not installed: "
                          "pip install 'musicaffect[export]' (or use --format torchscript)")


def _export_onnx(net: nn.Module, x: torch.Tensor, lengths: torch.Tensor, path: Path, *,
                 meta: str, opset: int) -> None:
    names = output_names(net)
    dynamic = {"x": {0: "batch", 1: "time"}, "lengths": {0: "batch"}}
    dynamic.update({name: {0: "batch"} for name in names})
    with warnings.catch_warnings():
        # the TorchScript-based exporter is deprecated in favour of torch.export, which
        # specialises the time axis of the pooled CNNs; its warnings are not the user's concern
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(_TupleOutputs(net, names), (x, lengths), str(path),
                              input_names=["x", "lengths"], output_names=names,
                              dynamic_axes=dynamic, opset_version=opset, dynamo=False)
        except Exception as err:
            if isinstance(err, ImportError) or "not installed" in str(err):
                raise ConfigError(f"ONNX export needs the export extra ({err}): pip install "
                                  "'musicaffect[export]' (or use --format torchscript)") from None
            raise
    try:
        import onnx
    except ImportError:
        log.warning("onnx is not installed: metadata not written into %s", path)
        return
    proto = onnx.load(str(path))
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, meta
    onnx.save(proto, str(path))


def _export_torchscript(net: nn.Module, x: torch.Tensor, lengths: torch.Tensor, path: Path,
                        *, meta: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
        warnings.simplefilter("ignore", category=DeprecationWarning)
        traced = torch.jit.trace(net, (x, lengths), strict=False, check_trace=False)
        torch.jit.save(traced, str(path), _extra_files={METADATA_KEY: meta})


def load_exported(path: str | os.PathLike, *, fmt: str | None = None):
    """Load an exported file: a TorchScript module or an ``onnxruntime.InferenceSession``."""
    path = Path(path)
    fmt = fmt or ("onnx" if path.suffix == ".onnx" else "torchscript")
    if fmt == "onnx":
        import onnxruntime

        return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=DeprecationWarning)
        return torch.jit.load(str(path), map_location="cpu")


def run_exported(exported, x: torch.Tensor, lengths: torch.Tensor, *,
                 names: list[str], optimized: bool = True) -> dict[str, torch.Tensor]:
    """Run a loaded export (see :func:`load_exported`) and return ``{output name: tensor}``.

    ``optimized=False`` skips TorchScript's profiling optimisation passes, which make the first
    calls slow (useful for one-off checks).
    """
    if isinstance(exported, torch.jit.ScriptModule):
        with torch.no_grad(), torch.jit.optimized_execution(optimized):
            out = exported(x, lengths)
        return {name: out[name] for name in names}
    res = exported.run(names, {"x": x.numpy(), "lengths": lengths.numpy()})
    return {name: torch.as_tensor(r) for name, r in zip(names, res)}


def compare_outputs(model: nn.Module, path: str | os.PathLike, x: torch.Tensor,
                    lengths: torch.Tensor, *, fmt: str) -> float | None:
    """Largest absolute difference between the exported file's and the model's outputs.

    Returns None when the runtime for ``fmt`` is not installed (ONNX without onnxruntime).
    """
    try:
        exported = load_exported(path, fmt=fmt)
    except ImportError:
        log.warning("onnxruntime is not installed: %s was written but not verified", path)
        return None
    names = output_names(model)
    with torch.no_grad():
        ref = model.eval()(x, lengths)
    got = run_exported(exported, x, lengths, names=names, optimized=False)
    return max(float((got[n] - ref[n]).abs().max()) for n in names)


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The metadata dict stored in an exported file (ONNX needs the ``onnx`` package)."""
    path = Path(path)
    if path.suffix == ".onnx":
        import onnx

        props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
        return json.loads(props.get(METADATA_KEY, "{}"))
    files = {METADATA_KEY: ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=DeprecationWarning)
        torch.jit.load(str(path), map_location="cpu", _extra_files=files)
    return json.loads(files[METADATA_KEY] or "{}")
