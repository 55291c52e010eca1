from __future__ import annotations

import hashlib

import pytest

from dcbench.fileio import atomic_path, atomic_write_text, sha256_file


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
