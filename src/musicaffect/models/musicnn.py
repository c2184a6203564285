"""musicnn (Pons & Serra, 2019) in PyTorch, with its pretrained weights read without TensorFlow.

The network, as in the paper and the layer shapes of the ``musicnn`` 0.1.0 wheel's TF-1
checkpoints (``MSD_musicnn`` and ``MTT_musicnn`` share one architecture)::

    x (B, T, 96) log-mel -> BatchNorm (one channel)
    front-end   timbral:  Conv2d 7x38 and 7x67 (204 filters each, time padded 3+3, valid
                          in frequency) -> ReLU -> BN -> max over frequency
                temporal: Conv2d 128x1, 64x1, 32x1 (51 filters each, "same" in time)
                          -> ReLU -> BN -> max over frequency
                concat                                            -> (B, T, 561)
    mid-end     three Conv1d k=7 (64 filters) -> ReLU -> BN, the 2nd and 3rd residual;
                dense connection: concat(front-end, the three)    -> (B, T, 753)
    back-end    max and mean over time, interleaved per channel   -> (B, 1506) "pool"
                BN -> (dropout) -> Dense 200 -> ReLU -> BN        -> (B, 200) "penultimate"
                (dropout) -> Dense 50                             -> (B, 50) tag logits

Every BatchNorm has TensorFlow's epsilon (1e-3); the two dropouts (rate 0.5) act only in
training. The weights come from the installed ``musicnn`` package (``pip install --no-deps
musicnn==0.1.0``), located with :func:`importlib.util.find_spec` and never imported (it
imports TensorFlow): :func:`read_tensor_bundle` reads the checkpoint's ``.index`` (an
SSTable of ``BundleEntryProto`` records) and ``.data-00000-of-00001`` with numpy, after
both files' SHA-256 are checked. The weights are licensed ISC (see ``NOTICE-musicnn.txt``
beside this module).
"""

from __future__ import annotations

import ast
import dataclasses
import hashlib
import importlib.util
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

from musicaffect.errors import CheckpointError, ConfigError
from musicaffect.features.params import MUSICNN_MODELS
from musicaffect.models.registry import register_backbone

#: the pretrained models of the wheel this port reads (the VGG models are not ported)
PRETRAINED: tuple[str, ...] = MUSICNN_MODELS
#: the default pretrained model
DEFAULT_MODEL = "MSD_musicnn"
#: pip requirement that provides the weights
PACKAGE_SPEC = "musicnn==0.1.0"
#: SHA-256 of the checkpoint files of musicnn 0.1.0, per model
WEIGHT_SHA256: dict[str, dict[str, str]] = {
    "MSD_musicnn": {
        ".index": "87f3e0f3550c8d3bafc840374003e5c8af5eeb5ecf6add61af09a7822d3282c8",
        ".data-00000-of-00001":
            "8579734ee6388f799ed0def4bbd0d1fdcbeaf213ef2a9dc860917bd76a303de6",
    },
    "MTT_musicnn": {
        ".index": "da2d7bb670b2b31e9bc441bb1bd75eca31b5b061f963cc1f9630c1aff3238f57",
        ".data-00000-of-00001":
            "041f3935e981a65cea739842d30c188d3a7d2adf4410955c8668eb3de4a5acab",
    },
}
#: the tag-name lists of the wheel's configuration.py, per model
_TAG_LISTS = {"MSD_musicnn": "MSD_LABELS", "MTT_musicnn": "MTT_LABELS"}
#: TensorFlow's BatchNorm epsilon (tf.compat.v1.layers.batch_normalization)
BN_EPS = 1e-3

_INSTALL_HINT = f"install it with `pip install --no-deps {PACKAGE_SPEC}` (make setup does)"


class PretrainedWeightsError(CheckpointError):
    """The musicnn weights are missing, unreadable or not the expected files; ``path`` (the
    offending file) is prefixed to the message."""

    def __init__(self, message: str, *, path: str | os.PathLike | None = None):
        self.path = None if path is None else os.fspath(path)
        super().__init__(message if path is None else f"{self.path}: {message}")


# ---------------------------------------------------------------------------------------
# locating and reading the weights


def check_model_name(model: str) -> str:
    """Return ``model`` if it is a ported pretrained model, else raise ConfigError."""
    if model not in PRETRAINED:
        raise ConfigError(f"unknown musicnn model {model!r}: use one of {', '.join(PRETRAINED)}")
    return model


def package_dir() -> Path:
    """The folder of the installed ``musicnn`` package (found, not imported).

    Raises
    ------
    PretrainedWeightsError
        The package is not installed.
    """
    try:
        spec = importlib.util.find_spec("musicnn")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise PretrainedWeightsError("the musicnn weights are not installed (package "
                                     f"'musicnn' not found): {_INSTALL_HINT}")
    return Path(next(iter(spec.submodule_search_locations)))


def weight_files(model: str = DEFAULT_MODEL, *, root: str | os.PathLike | None = None
                 ) -> tuple[Path, Path]:
    """The checked ``(.index, .data)`` checkpoint files of a pretrained model.

    Parameters
    ----------
    model : {"MSD_musicnn", "MTT_musicnn"}
    root : path-like, optional
        Folder holding ``<model>/.index`` and ``<model>/.data-00000-of-00001`` (default: the
        installed ``musicnn`` package).

    Raises
    ------
    PretrainedWeightsError
        A file is missing or its SHA-256 differs from musicnn 0.1.0's.
    """
    check_model_name(model)
    folder = (Path(root) if root is not None else package_dir()) / model
    paths = []
    for name, expected in WEIGHT_SHA256[model].items():
        path = folder / name
        if not path.is_file():
            raise PretrainedWeightsError(f"musicnn weight file is missing: {_INSTALL_HINT}",
                                         path=path)
        digest = _sha256(path)
        if digest != expected:
            raise PretrainedWeightsError(
                f"musicnn weight file is corrupt or of another version (SHA-256 {digest[:12]}..., "
                f"expected {expected[:12]}...): reinstall it with `pip install --no-deps "
                f"--force-reinstall {PACKAGE_SPEC}`", path=path)
        paths.append(path)
    return paths[0], paths[1]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def tag_names(model: str = DEFAULT_MODEL) -> list[str]:
    """The tag names of a model's taggram, read from the wheel's ``configuration.py``
    (parsed, not imported).

    Raises
    ------
    PretrainedWeightsError
        The package is missing or its configuration does not list the tags.
    """
    check_model_name(model)
    path = package_dir() / "configuration.py"
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError) as err:
        raise PretrainedWeightsError(f"cannot read the musicnn tag names ({err}): "
                                     f"{_INSTALL_HINT}", path=path) from err
    want = _TAG_LISTS[model]
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name) and node.targets[0].id == want):
            names = ast.literal_eval(node.value)
            if isinstance(names, list) and all(isinstance(n, str) for n in names):
                return names
    raise PretrainedWeightsError(f"{want} is missing from the musicnn configuration: "
                                 f"{_INSTALL_HINT}", path=path)


# the tensor-bundle format: the .index is a LevelDB-style table (uncompressed blocks,
# 48-byte footer); each key is a variable name and each value a BundleEntryProto
# (1: dtype, 2: shape, 3: shard_id, 4: offset, 5: size) into the .data shard

_TABLE_MAGIC = 0xDB4775248B80FB57
_DTYPES = {1: np.float32, 2: np.float64, 3: np.int32, 9: np.int64, 10: np.bool_}


def _varint(b: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        c = b[i]
        i += 1
        value |= (c & 0x7F) << shift
        shift += 7
        if c < 0x80:
            return value, i


def _proto_fields(b: bytes):
    """(field number, value) pairs of a protobuf message (varint, 64/32-bit, bytes)."""
    i = 0
    while i < len(b):
        tag, i = _varint(b, i)
        num, wire = tag >> 3, tag & 7
        if wire == 0:
            value, i = _varint(b, i)
        elif wire == 1:
            value, i = struct.unpack_from("<Q", b, i)[0], i + 8
        elif wire == 2:
            n, i = _varint(b, i)
            value, i = b[i:i + n], i + n
        elif wire == 5:
            value, i = struct.unpack_from("<I", b, i)[0], i + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield num, value


def _block(buf: bytes, offset: int, size: int):
    """(key, value) entries of one table block (prefix-compressed keys, restart array)."""
    if buf[offset + size] != 0:
        raise ValueError("compressed table blocks are not supported")
    blk = buf[offset:offset + size]
    n_restarts = struct.unpack_from("<I", blk, size - 4)[0]
    end = size - 4 - 4 * n_restarts
    i, key = 0, b""
    while i < end:
        shared, i = _varint(blk, i)
        unshared, i = _varint(blk, i)
        n, i = _varint(blk, i)
        key = key[:shared] + blk[i:i + unshared]
        i += unshared
        yield key, blk[i:i + n]
        i += n


def read_tensor_bundle(index: str | os.PathLike, data: str | os.PathLike
                       ) -> dict[str, np.ndarray]:
    """Read every tensor of a single-shard TensorFlow checkpoint with numpy.

    Parameters
    ----------
    index, data : path-like
        The checkpoint's ``.index`` and ``.data-00000-of-00001`` files.

    Returns
    -------
    dict[str, np.ndarray]
        Variable name -> array (TensorFlow's layout: conv kernels ``(kh, kw, in, out)``,
        dense kernels ``(in, out)``).

    Raises
    ------
    PretrainedWeightsError
        The files are not a readable tensor bundle.
    """
    try:
        buf = Path(index).read_bytes()
        blob = Path(data).read_bytes()
        if len(buf) < 48 or struct.unpack_from("<Q", buf, len(buf) - 8)[0] != _TABLE_MAGIC:
            raise ValueError("not a TensorFlow checkpoint index (bad footer)")
        footer = buf[-48:]
        _, j = _varint(footer, 0)   # metaindex handle (unused)
        _, j = _varint(footer, j)
        idx_off, j = _varint(footer, j)
        idx_size, j = _varint(footer, j)
        out: dict[str, np.ndarray] = {}
        for _, handle in _block(buf, idx_off, idx_size):
            off, k = _varint(handle, 0)
            size, _ = _varint(handle, k)
            for key, value in _block(buf, off, size):
                if not key:   # the header entry
                    continue
                entry = dict(_proto_fields(value))
                if entry.get(3, 0) != 0:
                    raise ValueError("multi-shard checkpoints are not supported")
                dtype = _DTYPES[entry.get(1, 0)]
                shape = [dict(_proto_fields(d)).get(1, 0)
                         for num, d in _proto_fields(entry.get(2, b"")) if num == 2]
                start, n = entry.get(4, 0), entry.get(5, 0)
                if start + n > len(blob):
                    raise ValueError(f"tensor {key.decode()!r} lies beyond the data file")
                a = np.frombuffer(blob, dtype=dtype, count=n // np.dtype(dtype).itemsize,
                                  offset=start)
                out[key.decode()] = a.reshape(shape).copy()
    except (OSError, ValueError, KeyError, IndexError, struct.error) as err:
        raise PretrainedWeightsError(f"cannot read the musicnn checkpoint ({err}): "
                                     f"reinstall it with `pip install --no-deps "
                                     f"--force-reinstall {PACKAGE_SPEC}`", path=index) from err
    return out


# ---------------------------------------------------------------------------------------
# the network


@dataclasses.dataclass(frozen=True)
class MusicnnArch:
    """Sizes of the musicnn network (the defaults are MSD_musicnn's and MTT_musicnn's)."""

    n_mels: int = 96
    timbral_filters: int = 204    # int(1.6 * 128)
    temporal_filters: int = 51    # int(1.6 * 32)
    midend_filters: int = 64
    backend_units: int = 200
    n_tags: int = 50

    @property
    def frontend_dim(self) -> int:
        return 2 * self.timbral_filters + 3 * self.temporal_filters          # 561

    @property
    def midend_dim(self) -> int:
        return self.frontend_dim + 3 * self.midend_filters                  # 753

    @property
    def pool_dim(self) -> int:
        return 2 * self.midend_dim                                           # 1506


def _bn2d(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=BN_EPS)


def _bn1d(c: int) -> nn.BatchNorm1d:
    return nn.BatchNorm1d(c, eps=BN_EPS)


def _conv_relu_bn_freqmax(conv: nn.Conv2d, bn: nn.BatchNorm2d, x: torch.Tensor) -> torch.Tensor:
    """``max over frequency of bn(relu(conv(x)))``: (B, 1, T', F) -> (B, C, T).

    In eval mode the BatchNorm is a per-channel affine map ``a * v + b``, so the maximum over
    frequency is ``a * max + b`` where ``a >= 0`` and ``a * min + b`` where ``a < 0``
    (ReLU commutes with both): the same values without normalising the whole (B, C, T, F)
    map. In training mode the BatchNorm runs on the whole map (its batch statistics need it).
    """
    z = conv(x)                                                             # (B, C, T, F')
    if bn.training:
        return bn(F.relu(z)).amax(dim=3)
    a = bn.weight / torch.sqrt(bn.running_var + bn.eps)                     # (C,)
    b = bn.bias - bn.running_mean * a
    hi, lo = F.relu(z.amax(dim=3)), F.relu(z.amin(dim=3))                   # (B, C, T)
    a3, b3 = a[None, :, None], b[None, :, None]
    return torch.where(a3 >= 0, a3 * hi, a3 * lo) + b3


def _zero_beyond(h: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Zero the time steps of ``h`` (B, C, T) beyond each length (mask (B, T), True = kept)."""
    return h if mask is None else h.masked_fill(~mask.unsqueeze(1), 0.0)


class Musicnn(nn.Module):
    """The musicnn network: front-end -> mid-end -> temporal pooling -> dense -> tags.

    Parameters
    ----------
    arch : MusicnnArch
        Layer sizes; ``n_mels`` is the input's feature size (96 for the pretrained models).

    Notes
    -----
    With ``lengths`` given, steps beyond each length are zeroed at every convolution's input
    and left out of the pooling, so a padded clip gives the same outputs as the clip alone
    (the network's own convolutions pad with zeros).
    """

    def __init__(self, arch: MusicnnArch | None = None):
        super().__init__()
        a = self.arch = arch or MusicnnArch()
        if a.n_mels < 3:
            raise ConfigError(f"musicnn needs at least 3 mel bands, got {a.n_mels}")
        self.input_bn = _bn2d(1)
        self.timbral = nn.ModuleList(
            nn.Conv2d(1, a.timbral_filters, (7, int(frac * a.n_mels))) for frac in (0.4, 0.7))
        self.timbral_bn = nn.ModuleList(_bn2d(a.timbral_filters) for _ in range(2))
        self.temporal_kernels = (128, 64, 32)
        self.temporal = nn.ModuleList(
            nn.Conv2d(1, a.temporal_filters, (k, 1)) for k in self.temporal_kernels)
        self.temporal_bn = nn.ModuleList(_bn2d(a.temporal_filters) for _ in range(3))
        widths = (a.frontend_dim, a.midend_filters, a.midend_filters)
        self.midend = nn.ModuleList(nn.Conv1d(w, a.midend_filters, 7) for w in widths)
        self.midend_bn = nn.ModuleList(_bn1d(a.midend_filters) for _ in range(3))
        self.pool_bn = _bn1d(a.pool_dim)
        self.dropout = nn.Dropout(0.5)
        self.dense = nn.Linear(a.pool_dim, a.backend_units)
        self.dense_bn = _bn1d(a.backend_units)
        # n_tags = 0: no tag layer (a backbone for other tasks: no unused parameters)
        self.out = nn.Linear(a.backend_units, a.n_tags) if a.n_tags > 0 else None

    @property
    def embedding_dim(self) -> int:
        return self.arch.backend_units

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None
                ) -> dict[str, torch.Tensor]:
        """Run the network.

        Parameters
        ----------
        x : torch.Tensor [shape=(B, T, n_mels), float32]
            musicnn's log-mel input (:func:`musicaffect.features.musicnn_input.log_mel`).
        lengths : torch.Tensor [shape=(B,)], optional
            True lengths of a padded batch (None: every clip is ``T`` steps long).

        Returns
        -------
        dict[str, torch.Tensor]
            ``"logits"`` (B, n_tags) tag logits (sigmoid gives the taggram; absent when
            ``n_tags`` is 0);
            ``"penultimate"`` (B, 200) the penultimate layer (after its BatchNorm), also as
            ``"embedding"``; ``"pool"`` (B, 1506) the back-end's pooling layer (max and
            mean over time, interleaved per channel, as the dense layer reads it);
            ``"max_pool"`` and ``"mean_pool"`` (B, 753) its two halves.
        """
        B, T, n_mels = x.shape
        if n_mels != self.arch.n_mels:
            raise ValueError(f"expected x of shape (B, T, {self.arch.n_mels}), "
                             f"got {tuple(x.shape)}")
        mask = None
        if lengths is not None:
            lengths = lengths.to(device=x.device, dtype=torch.long).clamp(1, T)
            mask = torch.arange(T, device=x.device).unsqueeze(0) < lengths.unsqueeze(1)
        h = self.input_bn(x.unsqueeze(1))                                   # (B, 1, T, F)
        if mask is not None:
            h = h.masked_fill(~mask[:, None, :, None], 0.0)
        front = []
        padded = F.pad(h, (0, 0, 3, 3))                                     # (B, 1, T+6, F)
        for conv, bn in zip(self.timbral, self.timbral_bn):
            front.append(_conv_relu_bn_freqmax(conv, bn, padded))           # (B, 204, T)
        for k, conv, bn in zip(self.temporal_kernels, self.temporal, self.temporal_bn):
            hp = F.pad(h, (0, 0, (k - 1) // 2, k // 2))  # TensorFlow's "same": extra at the end
            front.append(_conv_relu_bn_freqmax(conv, bn, hp))               # (B, 51, T)
        f = _zero_beyond(torch.cat(front, dim=1), mask)                    # (B, 561, T)
        m1 = self.midend_bn[0](F.relu(self.midend[0](F.pad(f, (3, 3)))))
        m1 = _zero_beyond(m1, mask)                                         # (B, 64, T)
        m2 = self.midend_bn[1](F.relu(self.midend[1](F.pad(m1, (3, 3))))) + m1
        m2 = _zero_beyond(m2, mask)
        m3 = self.midend_bn[2](F.relu(self.midend[2](F.pad(m2, (3, 3))))) + m2
        feats = torch.cat([f, m1, m2, m3], dim=1)                           # (B, 753, T)
        if mask is None:
            max_pool = feats.amax(dim=2)                                    # (B, 753)
            mean_pool = feats.mean(dim=2)
        else:
            m = mask.unsqueeze(1)                                           # (B, 1, T)
            max_pool = feats.masked_fill(~m, float("-inf")).amax(dim=2)
            mean_pool = (feats * m).sum(dim=2) / lengths.unsqueeze(1).to(feats.dtype)
        pool = torch.stack([max_pool, mean_pool], dim=2).reshape(B, -1)     # (B, 1506)
        z = self.dropout(self.pool_bn(pool))
        penultimate = self.dense_bn(F.relu(self.dense(z)))                  # (B, 200)
        out = {"penultimate": penultimate, "embedding": penultimate, "pool": pool,
               "max_pool": max_pool, "mean_pool": mean_pool}
        if self.out is not None:
            out["logits"] = self.out(self.dropout(penultimate))             # (B, n_tags)
        return out


def _tf_to_torch(tensors: dict[str, np.ndarray], arch: MusicnnArch) -> dict[str, torch.Tensor]:
    """Map the TF-1 variables (named by creation order) onto :class:`Musicnn`'s state dict."""
    sd: dict[str, np.ndarray] = {}

    def bn(dst: str, i: int) -> None:
        src = "batch_normalization" + ("" if i == 0 else f"_{i}")
        for a, b in (("weight", "gamma"), ("bias", "beta"), ("running_mean", "moving_mean"),
                     ("running_var", "moving_variance")):
            sd[f"{dst}.{a}"] = tensors[f"{src}/{b}"]

    def conv(dst: str, i: int) -> None:
        src = "conv2d" + ("" if i == 0 else f"_{i}")
        k = tensors[f"{src}/kernel"]                                        # (kh, kw, in, out)
        if dst.startswith("midend"):   # a (7, C) kernel over a (T, C) map = Conv1d over time
            sd[f"{dst}.weight"] = k[:, :, 0, :].transpose(2, 1, 0)          # (out, C, kh)
        else:
            sd[f"{dst}.weight"] = k.transpose(3, 2, 0, 1)                   # (out, in, kh, kw)
        sd[f"{dst}.bias"] = tensors[f"{src}/bias"]

    bn("input_bn", 0)
    for j in range(2):
        conv(f"timbral.{j}", j)
        bn(f"timbral_bn.{j}", j + 1)
    for j in range(3):
        conv(f"temporal.{j}", 2 + j)
        bn(f"temporal_bn.{j}", 3 + j)
    for j in range(3):
        conv(f"midend.{j}", 5 + j)
        bn(f"midend_bn.{j}", 6 + j)
    bn("pool_bn", 9)
    bn("dense_bn", 10)
    sd["dense.weight"] = tensors["dense/kernel"].T
    sd["dense.bias"] = tensors["dense/bias"]
    sd["out.weight"] = tensors["dense_1/kernel"].T
    sd["out.bias"] = tensors["dense_1/bias"]
    return {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in sd.items()}


def pretrained_state_dict(model: str = DEFAULT_MODEL, *,
                          root: str | os.PathLike | None = None) -> dict[str, torch.Tensor]:
    """The checked weights of a pretrained model as a :class:`Musicnn` state dict.

    Raises
    ------
    PretrainedWeightsError
        Package missing, file missing or corrupt, or a variable missing or misshapen.
    """
    index, data = weight_files(model, root=root)
    tensors = read_tensor_bundle(index, data)
    arch = MusicnnArch()
    try:
        sd = _tf_to_torch(tensors, arch)
    except KeyError as err:
        raise PretrainedWeightsError(f"the musicnn checkpoint lacks variable {err}: reinstall "
                                     f"it with `pip install --no-deps --force-reinstall "
                                     f"{PACKAGE_SPEC}`", path=index) from None
    expected = Musicnn(arch).state_dict()
    for name, t in expected.items():
        if name.endswith("num_batches_tracked"):
            sd[name] = torch.zeros((), dtype=torch.long)
        elif name not in sd or tuple(sd[name].shape) != tuple(t.shape):
            got = tuple(sd[name].shape) if name in sd else "missing"
            raise PretrainedWeightsError(f"musicnn weight {name} has shape {got}, expected "
                                         f"{tuple(t.shape)}", path=index)
    return sd


def load_musicnn(model: str = DEFAULT_MODEL, *, device: str | torch.device | None = None,
                 root: str | os.PathLike | None = None) -> Musicnn:
    """A pretrained musicnn in eval mode.

    Parameters
    ----------
    model : {"MSD_musicnn", "MTT_musicnn"}
    device : str or torch.device, optional
    root : path-like, optional
        Folder of the checkpoints (default: the installed ``musicnn`` package).
    """
    net = Musicnn(MusicnnArch())
    net.load_state_dict(pretrained_state_dict(model, root=root))
    net.model_name = model
    return net.to(device).eval() if device is not None else net.eval()


# ---------------------------------------------------------------------------------------
# the backbone contract of musicaffect.models.registry


@dataclasses.dataclass
class MusicnnConfig:
    """Options of the musicnn backbone.

    Attributes
    ----------
    pretrained : str
        ``"MSD_musicnn"`` or ``"MTT_musicnn"``: start from those weights (the input must then
        be musicnn's 96-band log-mel); ``""``: random initialisation (any feature size >= 3).
    embedding : str
        The output: ``"penultimate"`` (200-d) or ``"pool"`` (1506-d).
    """

    pretrained: str = ""
    embedding: str = "penultimate"

    def __post_init__(self):
        if self.pretrained:
            check_model_name(self.pretrained)
        if self.embedding not in ("penultimate", "pool"):
            raise ValueError(f"embedding must be 'penultimate' or 'pool', got {self.embedding!r}")


@register_backbone("musicnn", MusicnnConfig)
class MusicnnBackbone(nn.Module):
    """musicnn as a registry backbone: ``(x: (B, T, F), lengths: (B,)) -> (B, D)``.

    Its parameters all sit in ``self.net``, so a :class:`~musicaffect.models.base.MusicModel`
    freezes them with ``freeze_backbone`` or gives them their own learning rate through
    ``model.backbone.parameters()``.
    """

    def __init__(self, n_features: int, config: MusicnnConfig | None = None):
        super().__init__()
        self.config = config or MusicnnConfig()
        self.n_features = int(n_features)
        arch = MusicnnArch(n_mels=self.n_features, n_tags=0)
        if self.config.pretrained and self.n_features != MusicnnArch().n_mels:
            raise ConfigError(f"pretrained musicnn needs musicnn's {MusicnnArch().n_mels}-band "
                              f"log-mel input, got {self.n_features} features")
        self.net = Musicnn(arch)
        if self.config.pretrained:
            sd = pretrained_state_dict(self.config.pretrained)
            self.net.load_state_dict({k: v for k, v in sd.items() if not k.startswith("out.")})
        self.out_dim = arch.backend_units if self.config.embedding == "penultimate" \
            else arch.pool_dim

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.net(x, lengths)[self.config.embedding]


def info(model: str = DEFAULT_MODEL) -> dict[str, Any]:
    """What identifies a pretrained model's weights: name, package spec and checksums."""
    check_model_name(model)
    return {"model": model, "package": PACKAGE_SPEC, "sha256": dict(WEIGHT_SHA256[model])}
