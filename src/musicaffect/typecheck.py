"""The one type checker for settings: run configs (``config.py``) and model parameters
(``models/registry.py``) are typed dataclasses, checked field by field by :func:`check`.

Values come from YAML and ``--set key=value``; they are converted only where no information
is lost (an integer for a float field, a list for a tuple field, ``"a,b"`` for a list of
strings) and refused otherwise, with a message that names the key.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any

from musicaffect.errors import ConfigError

__all__ = ["check", "from_mapping", "to_plain"]


def _name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _admits_str(tp: Any) -> bool:
    if tp is str or tp is Any:
        return True
    return typing.get_origin(tp) in (typing.Union, types.UnionType) and any(
        _admits_str(a) for a in typing.get_args(tp))


def check(key: str, value: Any, tp: Any) -> Any:
    """Return ``value`` in the canonical form of type ``tp``, or raise ConfigError.

    Supported: ``Any``, ``bool``, ``int``, ``float``, ``str``, ``Literal[...]``, unions
    (``X | None``), ``list[X]``, ``tuple[X, ...]``, ``tuple[X, Y]`` and ``dict[K, V]``.
    """
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return check(key, value, arg)
            except ConfigError as err:
                errors.append(str(err))
        if len(errors) == 1:
            raise ConfigError(errors[0])
        raise ConfigError(f"{key}: {value!r} does not have type {_name(tp)}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{key} must be one of {', '.join(map(repr, args))}, "
                              f"got {value!r}")
        return value
    if origin in (list, tuple):
        item_tps = args if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis) \
            else None
        item_tp = args[0] if args else Any
        if isinstance(value, str) and item_tps is None and _admits_str(item_tp):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key} must be a list, got {value!r}")
        if item_tps is not None:
            if len(value) != len(item_tps):
                raise ConfigError(f"{key} must have {len(item_tps)} items, got {value!r}")
            items = [check(f"{key} item {i}", v, t)
                     for i, (v, t) in enumerate(zip(value, item_tps))]
        else:
            items = [check(f"{key} item {i}", v, item_tp) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        key_tp, val_tp = args
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key} must be a mapping, got {value!r}")
        return {check(key, k, key_tp): check(f"{key}.{k}", v, val_tp) for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key} must be true or false, got {value!r}")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return int(value)
        raise ConfigError(f"{key} must be an integer, got {value!r}")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{key} must be a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{key} must be a string, got {value!r}")
    raise TypeError(f"{key}: unsupported settings type {tp!r}")


def from_mapping(cls: type, data: Mapping, *, where: str = "", what: str = "config key",
                 nested: bool = True, extra: tuple[str, ...] = ()) -> Any:
    """Build dataclass ``cls`` from ``data``, checking every key and value.

    Parameters
    ----------
    cls : dataclass type
    data : mapping
    where : str
        Prefix of key names in messages (``"train."``, ``"model 'lstm' parameter "``).
    what : str
        What a key is called in the unknown-key message.
    nested : bool
        Build dataclass-typed fields recursively from sub-mappings.
    extra : tuple of str
        Keys that are allowed but not fields of ``cls`` (left out of the result).
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where.rstrip('.') or 'config'} must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names - set(extra))
    if unknown:
        allowed = ", ".join(sorted(names | set(extra)))
        raise ConfigError(f"unknown {what} '{where}{unknown[0]}': allowed keys are {allowed}")
    kwargs = {}
    for name, value in data.items():
        if name not in names:
            continue
        tp = hints[name]
        if nested and dataclasses.is_dataclass(tp):
            kwargs[name] = from_mapping(tp, value, where=f"{where}{name}.", what=what)
        else:
            kwargs[name] = check(f"{where}{name}", value, tp)
    try:
        return cls(**kwargs)
    except ValueError as err:   # __post_init__ checks of values
        raise ConfigError(f"{where.rstrip('.') or cls.__name__}: {err}") from err


def to_plain(value: Any) -> Any:
    """Tuples -> lists recursively, so settings are YAML/JSON and ``weights_only`` friendly."""
    if isinstance(value, Mapping):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    return value
