"""Atomic writes and file hashing: nothing half-written is ever left behind.

Temporary files and folders are named `.<target>.<host>.<pid>.<random>.tmp` beside their target,
so the leftovers of a process killed with SIGKILL (which runs no cleanup) can be recognised:
`sweep_stale` removes the ones whose owner process is gone (same host) or that are older than a
day (another host sharing the folder), and never touches those of a live process.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import secrets
import shutil
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

LOG = logging.getLogger("deepcluster_bench")
TMP_PATTERN = re.compile(r"^\.(?P<target>.+)\.(?P<host>[A-Za-z0-9-]+)\.(?P<pid>\d+)\.[a-z0-9]{8}\.tmp$")
FOREIGN_MAX_AGE_S = 24 * 3600.0


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40] or "host"


def tmp_name(target_name: str) -> str:
    """A temporary name for `target_name` that records this host and process."""
    return f".{target_name}.{_host()}.{os.getpid()}.{secrets.token_hex(4)}.tmp"


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_stale(path: Path, now: float | None = None, max_age_s: float = FOREIGN_MAX_AGE_S) -> bool:
    """True for a temporary file/folder of ours whose owner is dead (or, from another host, old)."""
    found = TMP_PATTERN.match(path.name)
    if found is None:
        return False
    if found["host"] == _host():
        return not _alive(int(found["pid"]))
    try:
        age = (time.time() if now is None else now) - path.lstat().st_mtime
    except OSError:
        return False
    return age > max_age_s


def sweep_stale(folder: str | os.PathLike[str], recursive: bool = False) -> list[Path]:
    """Remove stale temporary files and folders in `folder` (and below, if `recursive`); returns them."""
    root = Path(folder)
    if not root.is_dir():
        return []
    candidates = root.rglob(".*.tmp") if recursive else root.glob(".*.tmp")
    removed = []
    for path in sorted(candidates):
        if not is_stale(path):
            continue
        with contextlib.suppress(FileNotFoundError):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
            removed.append(path)
    if removed:
        LOG.info("removed %d stale temporary file(s) left by killed runs in %s", len(removed), root)
    return removed


def make_tmp_dir(target: Path, mode: int = 0o755) -> Path:
    """Create an empty temporary folder named after `target`, beside it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    path = target.parent / tmp_name(target.name)
    os.mkdir(path, mode)
    return path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` only on success."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = target.parent / tmp_name(target.name)
    os.close(os.open(tmp_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))  # usual mode (umask)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[Any]], None], mode: str = "wb") -> None:
    """Call `write(fh)` on a temporary file and rename it onto `path` once complete."""
    with atomic_path(path) as tmp, open(tmp, mode) as fh:
        write(fh)
        fh.flush()
        os.fsync(fh.fileno())


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write(path, lambda fh: fh.write(text), mode="w")


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()
