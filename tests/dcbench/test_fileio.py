from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dcbench.fileio import (
    TMP_PATTERN,
    atomic_path,
    atomic_write_text,
    is_stale,
    sha256_file,
    sweep_stale,
    tmp_name,
)


def test_atomic_write_and_hash(tmp_path) -> None:
    target = tmp_path / "a" / "f.txt"
    atomic_write_text(target, "hello")
    assert target.read_text() == "hello"
    assert sha256_file(target) == hashlib.sha256(b"hello").hexdigest()


def test_failed_write_leaves_nothing(tmp_path) -> None:
    target = tmp_path / "f.bin"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("interrupted")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def _dead_pid() -> int:
    """The id of a process that has exited (reaped), so no live process owns it."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_tmp_names_record_the_owner_and_are_swept_once_it_is_dead(tmp_path: Path) -> None:
    name = tmp_name("f.npy")
    found = TMP_PATTERN.match(name)
    assert found is not None and found["target"] == "f.npy" and int(found["pid"]) == os.getpid()
    live = tmp_path / name
    live.write_bytes(b"in progress")
    dead = tmp_path / name.replace(f".{os.getpid()}.", f".{_dead_pid()}.")
    dead.write_bytes(b"left by kill -9")
    dead_dir = tmp_path / tmp_name("data").replace(f".{os.getpid()}.", f".{_dead_pid()}.")
    (dead_dir / "sub").mkdir(parents=True)
    other = tmp_path / ".keep.me.tmp"  # not one of our names: never touched
    other.write_text("x")
    assert sweep_stale(tmp_path) == sorted([dead, dead_dir])
    assert live.exists() and other.exists() and not dead.exists() and not dead_dir.exists()


def test_foreign_host_tmp_is_swept_only_when_old(tmp_path: Path) -> None:
    path = tmp_path / ".f.npy.otherhost.1.abcdef12.tmp"
    path.write_text("x")
    assert not is_stale(path)
    assert is_stale(path, now=path.stat().st_mtime + 2 * 24 * 3600)


def test_atomic_path_uses_the_recognisable_name(tmp_path: Path) -> None:
    with atomic_path(tmp_path / "f.bin") as tmp:
        assert TMP_PATTERN.match(tmp.name) and not is_stale(tmp)
        tmp.write_bytes(b"x")
    assert (tmp_path / "f.bin").read_bytes() == b"x"
