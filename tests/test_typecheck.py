"""The one settings type checker shared by run configs and model parameters."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import pytest

from musicaffect.errors import ConfigError
from musicaffect.typecheck import check, from_mapping


@pytest.mark.parametrize("value, tp, expected", [
    (3, float, 3.0),
    ([1, 2], tuple[int, ...], (1, 2)),
    ("a, b", list[str], ["a", "b"]),
    ("genre,2", list[str | int], ["genre", "2"]),
    (None, int | None, None),
    ("mean", Literal["last", "mean"], "mean"),
    ({"a": 1}, dict[str, float], {"a": 1.0}),
    ([1, "x"], tuple[int, str], (1, "x")),
    (object, Any, object),
])
def test_lossless_conversions(value, tp, expected):
    assert check("k", value, tp) == expected


@pytest.mark.parametrize("value, tp, match", [
    (True, int, "k must be an integer"),
    (2.5, int, "k must be an integer"),
    (1, bool, "k must be true or false"),
    ("16,32", tuple[int, ...], "k must be a list"),
    ([1, "a"], list[int], "k item 1 must be an integer"),
    ("sum", Literal["last", "mean"], "k must be one of 'last', 'mean'"),
    ([1], tuple[int, int], "k must have 2 items"),
    (["x"], dict[str, int], "k must be a mapping"),
])
def test_lossy_values_are_refused_with_the_key(value, tp, match):
    with pytest.raises(ConfigError, match=match):
        check("k", value, tp)


@dataclass
class _Inner:
    n: int = 1

    def __post_init__(self):
        if self.n < 0:
            raise ValueError("n must be >= 0")


@dataclass
class _Outer:
    name: str = "x"
    inner: _Inner = field(default_factory=_Inner)


def test_from_mapping_nested_unknown_and_post_init():
    assert from_mapping(_Outer, {"inner": {"n": 2}}).inner.n == 2
    with pytest.raises(ConfigError, match="unknown config key 'inner.m'"):
        from_mapping(_Outer, {"inner": {"m": 2}})
    with pytest.raises(ConfigError, match="inner: n must be >= 0"):
        from_mapping(_Outer, {"inner": {"n": -1}})
