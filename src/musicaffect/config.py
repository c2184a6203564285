"""One typed configuration per run: dataclasses, loaded from YAML presets/files and overrides.

A run is fully described by a :class:`RunConfig`. It is built from the defaults, then a preset
name (``lstm-beat-mel``) or a YAML file, then ``--set key=value`` overrides with dotted keys
(``--set train.lr=3e-4 --set model.params.hidden_size=128``). Unknown keys and wrong types
raise :class:`~musicaffect.errors.ConfigError`. The resolved config is saved in the run folder
and inside every checkpoint.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from musicaffect.data.labels import GENRE_TASK, TARGETS
from musicaffect.errors import ConfigError
from musicaffect.tasks import is_class_task, split_task_names
from musicaffect.typecheck import from_mapping

VIEWS = ("mel", "chroma", "fused")
RATES = ("full", "beat")
DATASETS = ("genre", "multitask")
MONITORS = ("val_loss", "val_accuracy", "val_macro_f1", "val_spearman_mean")

#: field metadata: the setting may differ when a run is resumed (it changes how long, where
#: or how fast a run trains, not what); on a ``dict`` field, the tuple of its keys that may
RESUME_FREE = "resume_free"
#: field metadata: an ensemble run's members take the setting over where it differs from the
#: default (what data, how long, on which hardware); their model, view and recipe stay theirs
MEMBERS_INHERIT = "members_inherit"
_free = {RESUME_FREE: True}
_inherit = {MEMBERS_INHERIT: True}
_free_inherit = {RESUME_FREE: True, MEMBERS_INHERIT: True}


@dataclass
class DataConfig:
    """Which clips and which view of them a run reads."""

    dataset: str = "genre"            # genre | multitask
    rate: str = "full"                # full (about 1293 frames) | beat (beat-synchronous)
    view: str = "mel"                 # mel | chroma | fused
    # genre and/or the data's target names (labels.json), "all" targets, or the Kaggle
    # file's columns 1, 2, 3 (valence, energy, danceability)
    tasks: list[str | int] = field(default_factory=lambda: [GENRE_TASK], metadata=_inherit)
    genre_map: str = field(default="auto", metadata=_inherit)   # auto (the root's
                                      # labels.json) | lab | none | FILE
    val_fraction: float = field(default=0.2, metadata=_inherit)
    split_seed: int = field(default=420, metadata=_inherit)   # the lab helper's seed
    stratify: bool = False            # stratified split instead of the lab's shuffle rule
    max_length: int | None = field(default=None, metadata=_inherit)   # pad/truncate
                                      # every clip to this many frames
    normalize: bool = True            # per-feature standardisation fitted on train only
    chunk_frames: int | None = None   # train on one random window of this many frames per
                                      # clip and epoch; evaluate on overlapping windows
    chunk_hop: int | None = None      # hop of the evaluation windows (default half a window)
    cache_dir: str | None = field(default=None, metadata=_free_inherit)
    use_cache: bool = field(default=True, metadata=_free_inherit)
    skip_bad: bool = field(default=False, metadata=_inherit)
    num_workers: int = field(default=0, metadata=_free_inherit)


@dataclass
class ModelConfig:
    """A registered model name and its constructor parameters."""

    name: str = "lstm"
    params: dict[str, Any] = field(default_factory=dict,
                                   metadata={RESUME_FREE: ("impl",)})   # speed only


@dataclass
class LossConfig:
    """How per-task losses are computed and combined."""

    regression: str = "mse"           # mse | l1 | huber
    bounded: bool = False             # sigmoid on regression outputs (in loss and prediction)
    rank_weight: float = 0.0          # weight of the rank-aware (Spearman surrogate) term
    weights: dict[str, float] | None = None   # fixed per-task weights (default 1 each)
    learn_weights: bool = False       # homoscedastic uncertainty weighting
    label_smoothing: float = 0.0


@dataclass
class TrainConfig:
    """Optimisation, hardware and stopping."""

    optimizer: str = "adam"           # adam | adamw
    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 32
    epochs: int = field(default=30, metadata=_free_inherit)
    patience: int = field(default=5, metadata=_free_inherit)   # early stopping patience
                                      # in epochs (0 = off)
    monitor: str = "val_loss"
    scheduler: str = "none"           # none | cosine
    grad_clip: float | None = None
    warmup_epochs: int = 0            # linear learning-rate warm-up before the schedule
    mixup: float = 0.0                # mixup Beta(alpha, alpha); 0 = off
    balance: str = "none"             # none | sampler | loss: class balancing (genre)
    ema: float = 0.0                  # EMA decay of the weights (e.g. 0.999); 0 = off
    max_batches_per_epoch: int | None = field(default=None, metadata=_inherit)   # budget:
                                      # cap training batches per epoch
    accelerator: str = field(default="auto", metadata=_free_inherit)   # auto | cpu | cuda
                                      # | mps
    devices: int = field(default=1, metadata=_free)
    num_nodes: int = field(default=1, metadata=_free)
    strategy: str = field(default="auto", metadata=_free)   # auto | ddp | ddp_spawn ...
    precision: str = field(default="auto", metadata=_free_inherit)   # auto (bf16/16 mixed
                                      # on GPU, 32 on CPU) | 32-true | ...
    overfit_batches: int = field(default=0, metadata=_free)   # >0: lab step 5b, train on
                                      # the first k batches only
    overfit_epochs: int = field(default=200, metadata=_free)
    overfit_loss: float = field(default=0.05, metadata=_free)   # "near zero": success
                                      # threshold of the training loss


@dataclass
class TransferConfig:
    """Initialise the backbone from another run's checkpoint (lab step 9)."""

    checkpoint: str | None = None
    freeze_backbone: bool = False


@dataclass
class RunConfig:
    """Everything that defines one reproducible run."""

    name: str = field(default="run", metadata=_free)
    seed: int = field(default=42, metadata=_inherit)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    transfer: TransferConfig = field(default_factory=TransferConfig)

    def to_dict(self) -> dict:
        return asdict(self)

    def validate(self) -> RunConfig:
        """Check values that types alone cannot; returns self."""
        d = self.data
        _choice("data.dataset", d.dataset, DATASETS)
        _choice("data.rate", d.rate, RATES)
        _choice("data.view", d.view, VIEWS)
        if not d.tasks:
            raise ConfigError("data.tasks is empty: give 'genre' or regression targets")
        # the lab's column indices (1 valence, 2 energy, 3 danceability) become names; other
        # names are the data's own targets (checked against its labels.json when training)
        d.tasks = [_task_name(t) for t in d.tasks]
        class_tasks, target_tasks = split_task_names(d.tasks)
        if d.dataset == "genre" and (target_tasks or len(class_tasks) != 1):
            raise ConfigError("the genre folders only have genre labels: use data.tasks=[genre] "
                              "or data.dataset=multitask for regression targets")
        if d.dataset == "multitask" and not target_tasks:
            raise ConfigError("the multitask folders have no genre labels of their own: add "
                              f"regression targets ({', '.join(TARGETS)} on the Kaggle data) "
                              "or use data.dataset=genre")
        if not 0.0 < d.val_fraction < 1.0:
            raise ConfigError(f"data.val_fraction must be in (0, 1), got {d.val_fraction}")
        _choice("loss.regression", self.loss.regression, ("mse", "l1", "huber"))
        _choice("train.optimizer", self.train.optimizer, ("adam", "adamw"))
        _choice("train.scheduler", self.train.scheduler, ("none", "cosine"))
        _choice("train.monitor", self.train.monitor, MONITORS)
        if self.train.monitor in ("val_accuracy", "val_macro_f1") and not class_tasks:
            raise ConfigError(f"train.monitor={self.train.monitor} needs the genre task; "
                              "use val_loss or val_spearman_mean for regression")
        if self.train.monitor == "val_spearman_mean" and not target_tasks:
            raise ConfigError("train.monitor=val_spearman_mean needs regression targets")
        _check_numbers(self)       # the one range check of lr, batch_size, chunk_frames ...
        _validate_recipe(self)
        return self


def _task_name(task: str | int) -> str:
    from musicaffect.data.vocab import check_target_name, resolve_targets

    if is_class_task(task):
        return task
    if isinstance(task, int) or (isinstance(task, str) and task.strip().isdigit()):
        return resolve_targets(task)[0]
    name = str(task).strip().lower()
    if name == "all" or is_class_task(name):
        return name
    from musicaffect.errors import DataError

    try:
        return check_target_name(name)
    except DataError as err:
        raise ConfigError(f"data.tasks: {err}") from None


def _validate_recipe(cfg: RunConfig) -> None:
    """Excerpt training and the training-recipe options (issue 12)."""
    d, t = cfg.data, cfg.train
    if d.chunk_hop is not None:
        if d.chunk_frames is None:
            raise ConfigError("data.chunk_hop needs data.chunk_frames (the window length)")
        if not 1 <= d.chunk_hop <= d.chunk_frames:
            raise ConfigError(f"data.chunk_hop must be between 1 and data.chunk_frames "
                              f"({d.chunk_frames}), got {d.chunk_hop}")
    if t.warmup_epochs < 0:
        raise ConfigError(f"train.warmup_epochs must be >= 0, got {t.warmup_epochs}")
    if t.mixup < 0:
        raise ConfigError(f"train.mixup is the Beta(alpha, alpha) parameter, >= 0 (0 = off); "
                          f"got {t.mixup}")
    _choice("train.balance", t.balance, ("none", "sampler", "loss"))
    if t.balance != "none" and not split_task_names(d.tasks)[0]:
        raise ConfigError(f"train.balance={t.balance} balances genre classes; the tasks "
                          f"{d.tasks} have none (use train.balance=none)")
    if not 0.0 <= t.ema < 1.0:
        raise ConfigError(f"train.ema is a decay in [0, 1) (e.g. 0.999; 0 = off), got {t.ema}")
    if t.grad_clip is not None and t.grad_clip <= 0:
        raise ConfigError(f"train.grad_clip must be > 0 (or null for no clipping), "
                          f"got {t.grad_clip}")


#: numeric keys: (lowest, highest, lowest excluded, None allowed); bounds may be None
NUMERIC_RULES: dict[str, tuple] = {
    "seed": (0, None, False, False),
    "data.val_fraction": (0.0, 1.0, True, False),
    "data.split_seed": (0, None, False, False),
    "data.max_length": (1, None, False, True),
    "data.num_workers": (0, None, False, False),
    "data.chunk_frames": (1, None, False, True),
    "loss.rank_weight": (0.0, None, False, False),
    "loss.label_smoothing": (0.0, 1.0, False, False),
    "train.lr": (0.0, None, True, False),
    "train.weight_decay": (0.0, None, False, False),
    "train.batch_size": (1, None, False, False),
    "train.epochs": (1, None, False, False),
    "train.patience": (0, None, False, False),
    "train.grad_clip": (0.0, None, True, True),
    "train.max_batches_per_epoch": (1, None, False, True),
    "train.devices": (1, None, False, False),
    "train.num_nodes": (1, None, False, False),
    "train.overfit_batches": (0, None, False, False),
    "train.overfit_epochs": (1, None, False, False),
    "train.overfit_loss": (0.0, None, True, False),
}


def keys_with(flag: str, cls: type | None = None, prefix: str = "") -> frozenset[str]:
    """Dotted keys of the config fields marked with ``flag`` in their metadata
    (:data:`RESUME_FREE`, :data:`MEMBERS_INHERIT`), e.g. ``train.epochs``; a ``dict`` field
    marked with a tuple gives ``field.key`` for each of its keys."""
    from dataclasses import fields, is_dataclass

    out: set[str] = set()
    for f in fields(cls or RunConfig):
        mark = f.metadata.get(flag)
        if isinstance(mark, tuple):
            out.update(f"{prefix}{f.name}.{k}" for k in mark)
        elif mark:
            out.add(prefix + f.name)
        sub = f.default_factory            # a nested config: its class
        if isinstance(sub, type) and is_dataclass(sub):
            out |= keys_with(flag, sub, f"{prefix}{f.name}.")
    return frozenset(out)


def _check_number(key: str, value: Any, rule: tuple) -> None:
    low, high, open_low, nullable = rule
    if value is None:
        if nullable:
            return
        raise ConfigError(f"{key} must be set (null is not allowed)")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{key}={value} is not a finite number")
    too_low = low is not None and (value <= low if open_low else value < low)
    too_high = high is not None and value > high
    if too_low or too_high:
        if high is None:
            want = f"> {low}" if open_low else f">= {low}"
        else:
            want = f"in ({low}, {high})" if open_low else f"in [{low}, {high}]"
        if nullable:
            want += " or null"
        raise ConfigError(f"{key}={value!r} is out of range: it must be {want}")


def _check_numbers(cfg: RunConfig) -> None:
    """Range checks of every numeric key (:data:`NUMERIC_RULES`) and of loss.weights."""
    flat = cfg.to_dict()
    for key, rule in NUMERIC_RULES.items():
        node: Any = flat
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        _check_number(key, node, rule)
    if cfg.loss.label_smoothing >= 1.0:
        raise ConfigError(f"loss.label_smoothing={cfg.loss.label_smoothing} must be < 1")
    for task, w in (cfg.loss.weights or {}).items():
        _check_number(f"loss.weights.{task}", w, (0.0, None, False, False))


def _choice(key: str, value: Any, allowed: tuple) -> None:
    if value not in allowed:
        raise ConfigError(f"{key}={value!r} is not valid: choose one of {', '.join(allowed)}")


def config_from_dict(data: dict) -> RunConfig:
    """Build and validate a :class:`RunConfig` from a (possibly partial) nested mapping."""
    return from_mapping(RunConfig, data).validate()


# --------------------------------------------------------------------------- merging

def deep_merge(base: dict, update: dict) -> dict:
    """Recursively merge ``update`` into a copy of ``base`` (``model.params`` included)."""
    out = copy.deepcopy(base)
    for k, v in update.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def parse_override(text: str) -> dict:
    """``"train.lr=3e-4"`` -> ``{"train": {"lr": 0.0003}}`` (value parsed as YAML)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key=value (e.g. train.lr=3e-4)")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"override {text!r} has an empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as err:
        raise ConfigError(f"override {text!r}: cannot parse value ({err})") from err
    if isinstance(value, str) and _looks_float(value):
        value = float(value)
    node: dict = {}
    cur = node
    parts = key.split(".")
    for p in parts[:-1]:
        cur[p] = {}
        cur = cur[p]
    cur[parts[-1]] = value
    return node


def _looks_float(s: str) -> bool:
    # YAML 1.1 reads "3e-4" as a string; accept it as a number
    try:
        float(s)
    except ValueError:
        return False
    return any(c in s.lower() for c in "e.") and s.strip().lower() not in ("nan", "inf")


# --------------------------------------------------------------------------- presets

def preset_names() -> list[str]:
    """Names of the bundled presets (YAML files in ``musicaffect/presets``)."""
    folder = resources.files("musicaffect") / "presets"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def read_preset(name_or_path: str | Path, *, _chain: tuple[str, ...] = ()) -> dict:
    """Read a preset by name or a YAML file by path; follows a ``base:`` key recursively
    (a cycle of ``base:`` keys is a :class:`ConfigError` naming it)."""
    path = Path(name_or_path)
    file = path.suffix in (".yaml", ".yml") or path.exists()
    key = str(path.resolve()) if file else f"preset {name_or_path}"
    if key in _chain:
        loop = " -> ".join([*_chain[_chain.index(key):], key])
        raise ConfigError(f"{_chain[-1]}: its base: chain loops back ({loop}); remove one "
                          "of these base: keys")
    _chain = (*_chain, key)
    if file:
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found")
        text = path.read_text()
        where = str(path)
    else:
        res = resources.files("musicaffect") / "presets" / f"{name_or_path}.yaml"
        if not res.is_file():
            raise ConfigError(f"unknown preset {str(name_or_path)!r}: choose one of "
                              f"{', '.join(preset_names())} or give a YAML file path")
        text = res.read_text()
        where = f"preset {name_or_path}"
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{where}: not valid YAML ({err})") from err
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: a config must be a mapping of sections")
    base = data.pop("base", None)
    if base:
        data = deep_merge(read_preset(base, _chain=_chain), data)
    return data


def load_config(preset: str | Path | None = None, overrides: list[str] | None = None,
                *, extra: dict | None = None) -> RunConfig:
    """Defaults <- preset/YAML <- ``extra`` mapping <- ``key=value`` overrides, validated."""
    data: dict = {}
    if preset:
        data = read_preset(preset)
        data.setdefault("name", Path(str(preset)).stem)
    if extra:
        data = deep_merge(data, extra)
    for item in overrides or []:
        data = deep_merge(data, parse_override(item))
    return config_from_dict(data)


def save_config(cfg: RunConfig, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
