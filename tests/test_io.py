"""Atomic writes: the destination is either the old file or the whole new one."""

from __future__ import annotations

import os

import pytest

from musicaffect.io import atomic_open, atomic_write


def test_atomic_write_text_and_bytes(tmp_path):
    p = atomic_write(tmp_path / "sub" / "a.txt", "héllo\n")
    assert p.read_text(encoding="utf-8") == "héllo\n"
    atomic_write(p, b"\x00\x01")
    assert p.read_bytes() == b"\x00\x01"
    assert sorted(x.name for x in p.parent.iterdir()) == ["a.txt"]
    mask = os.umask(0o022)
    os.umask(mask)
    assert p.stat().st_mode & 0o777 == 0o666 & ~mask   # a normal file's mode, not 0600


def test_failed_write_keeps_the_old_file_and_no_temporary(tmp_path):
    p = atomic_write(tmp_path / "a.txt", "old")
    with pytest.raises(RuntimeError), atomic_open(p, "w") as f:
        f.write("half of the new")
        raise RuntimeError("crash in the middle")
    assert p.read_text() == "old"
    assert sorted(x.name for x in tmp_path.iterdir()) == ["a.txt"]


def test_bad_mode():
    with pytest.raises(ValueError, match="mode"), atomic_open("x", "a"):
        pass
