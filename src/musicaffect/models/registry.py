"""The model registry: backbone names -> (backbone class, typed dataclass config).

A backbone registers itself with :func:`register_backbone`; :func:`build_model` validates the
user's parameters against the backbone's config dataclass, builds the backbone and wraps it
with task heads in a :class:`~musicaffect.models.base.MusicModel`.

Besides the backbone's own fields, ``params`` accepts the wrapper's options
(:class:`~musicaffect.models.base.WrapperConfig`): ``head_dropout`` (dropout on the embedding
before the heads) and ``freq_mask`` / ``time_mask`` / ``mask_bands`` (SpecAugment-style
masking in training).
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

from musicaffect.errors import ConfigError
from musicaffect.models.base import MusicModel, WrapperConfig
from musicaffect.typecheck import check, to_plain

#: name -> (backbone class, config dataclass)
_BACKBONES: dict[str, tuple[type[nn.Module], type]] = {}

#: options of the MusicModel wrapper accepted in ``params`` next to the backbone's
WRAPPER_PARAMS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(WrapperConfig))


def register_backbone(name: str, config_cls: type) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator that adds a backbone to the registry.

    The backbone class is built as ``cls(n_features=F, config=config_cls(**params))`` and must
    map ``(x: (B, T, F), lengths: (B,))`` to an embedding ``(B, D)`` with ``D = self.out_dim``.

    Parameters
    ----------
    name : str
        Registry key (``"lstm"``, ``"cnn"`` ...), used in configs and checkpoints.
    config_cls : type
        A dataclass whose typed fields (all with defaults) are the backbone's options.
    """
    if not dataclasses.is_dataclass(config_cls):
        raise TypeError(f"config of backbone {name!r} must be a dataclass")

    def decorate(cls: type[nn.Module]) -> type[nn.Module]:
        if name in _BACKBONES and _BACKBONES[name][0] is not cls:
            raise ValueError(f"backbone name {name!r} is already registered")
        cls.registry_name = name
        cls.config_cls = config_cls
        _BACKBONES[name] = (cls, config_cls)
        return cls

    return decorate


def available_models() -> list[str]:
    """Names of the registered backbones, sorted."""
    return sorted(_BACKBONES)


def _lookup(name: str) -> tuple[type[nn.Module], type]:
    if not isinstance(name, str) or name not in _BACKBONES:
        raise ConfigError(f"unknown model {name!r}; available models: "
                          f"{', '.join(available_models())}")
    return _BACKBONES[name]


def speed_only_params(name: str) -> frozenset[str]:
    """The parameters of model ``name`` that change speed, never outputs or weights (a
    backbone's config declares them in a ``speed_only`` class attribute, e.g. the LSTM's
    ``impl``); empty for an unknown name."""
    entry = _BACKBONES.get(name) if isinstance(name, str) else None
    return frozenset(getattr(entry[1], "speed_only", ())) if entry else frozenset()


def architecture_params(name: str, params: Mapping[str, Any] | None) -> dict[str, Any]:
    """The parameters that decide a backbone's weights: ``params`` without the wrapper
    options (head dropout, masking) and the backbone's speed-only parameters. Two models
    whose architecture parameters are equal can exchange backbone weights."""
    drop = set(WRAPPER_PARAMS) | speed_only_params(name)
    return {k: v for k, v in dict(params or {}).items() if k not in drop}


def model_defaults(name: str) -> dict[str, Any]:
    """Default parameters of a registered model (backbone fields + wrapper options)."""
    _, config_cls = _lookup(name)
    defaults = to_plain(dataclasses.asdict(config_cls()))
    defaults.update(dataclasses.asdict(WrapperConfig()))
    return defaults


def parse_config(name: str, params: Mapping[str, Any] | None) -> tuple[Any, dict[str, Any]]:
    """Validate ``params`` for model ``name``.

    Returns
    -------
    config : dataclass instance
        The backbone's config (defaults filled in).
    wrapper : dict
        The wrapper options (fields of :class:`WrapperConfig`, defaults filled in).

    Raises
    ------
    ConfigError
        Unknown model, unknown key (the message lists the allowed keys), wrong type or an
        invalid value.
    """
    _, config_cls = _lookup(name)
    params = dict(params or {})
    hints = typing.get_type_hints(config_cls)
    fields = {f.name for f in dataclasses.fields(config_cls)}
    allowed = sorted(fields | set(WRAPPER_PARAMS))
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise ConfigError(f"model {name!r}: unknown parameter {unknown[0]!r}; allowed "
                          f"parameters: {', '.join(allowed)}")
    values = {k: check(f"model {name!r} parameter {k!r}", v, hints[k])
              for k, v in params.items() if k in fields}
    wrapper_hints = typing.get_type_hints(WrapperConfig)
    wrapper_values = {k: check(f"model {name!r} parameter {k!r}", v, wrapper_hints[k])
                      for k, v in params.items() if k in WRAPPER_PARAMS}
    try:
        config = config_cls(**values)
        wrapper = dataclasses.asdict(WrapperConfig(**wrapper_values))
    except ValueError as err:
        raise ConfigError(f"model {name!r}: {err}") from err
    return config, wrapper


def _check_tasks(tasks: Mapping[str, int]) -> dict[str, int]:
    if not isinstance(tasks, Mapping) or not tasks:
        raise ConfigError(f"tasks must map task names to output sizes, got {tasks!r}")
    out = {}
    for task, size in tasks.items():
        if not isinstance(task, str) or task == "embedding":
            raise ConfigError(f"invalid task name {task!r} (a string other than 'embedding')")
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ConfigError(f"task {task!r}: output size must be a positive integer "
                              f"(classes, or 1 for regression), got {size!r}")
        out[task] = int(size)
    return out


def build_backbone(name: str, params: Mapping[str, Any] | None, n_features: int) -> nn.Module:
    """Build only the backbone of a registered model (wrapper options are ignored)."""
    cls, _ = _lookup(name)
    config, _ = parse_config(name, params)
    if isinstance(n_features, bool) or not isinstance(n_features, int) or n_features < 1:
        raise ConfigError(f"n_features must be a positive integer, got {n_features!r}")
    return cls(n_features=n_features, config=config)


def build_model(name: str, params: Mapping[str, Any] | None, n_features: int,
                tasks: Mapping[str, int]):
    """Build a registered model with one head per task.

    Parameters
    ----------
    name : str
        Registered backbone (see :func:`available_models`).
    params : dict or None
        Backbone options (fields of its config dataclass) and wrapper options
        (``head_dropout``, ``freq_mask``, ``time_mask``); missing keys take their defaults.
    n_features : int
        Feature size ``F`` of the input (128 mel, 12 chroma, 140 fused).
    tasks : dict[str, int]
        Task -> output size (``{"genre": 10}``, ``{"valence": 1}``, ...).

    Returns
    -------
    MusicModel
        ``build_model(**model.model_args())`` rebuilds the same architecture.

    Raises
    ------
    ConfigError
        Unknown model or parameter, wrong type or value, invalid tasks.
    """
    backbone = build_backbone(name, params, n_features)
    _, wrapper = parse_config(name, params)
    return MusicModel(backbone, _check_tasks(tasks), **wrapper)
