"""Pretrain checkpoints (docs/ARCHITECTURE.md, "Pretrain checkpoint format"): atomic writes,
validated weights_only loads, RNG capture as tensors/lists, and resume with fallback.

Files: WORK_DIR/latest.pth (every epoch) and WORK_DIR/epoch_{E:04d}.pth (every
`checkpoint_interval` epochs and at the end; the newest `max_keep_checkpoints` are kept).
"""

from __future__ import annotations

import random
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from adapters.load import PRETRAIN_FORMAT as FORMAT  # one format name and one error for every checkpoint
from adapters.load import CheckpointError
from dcbench.fileio import atomic_write

REQUIRED_KEYS = ("format", "epoch", "config_name", "config", "sobel", "backbone", "head",
                 "optimizer", "rng", "assignments")
LATEST = "latest.pth"
EPOCH_FILE = re.compile(r"^epoch_(\d{4,})\.pth$")


def epoch_path(work_dir: Path, epoch: int) -> Path:
    return Path(work_dir) / f"epoch_{epoch:04d}.pth"


def save_checkpoint(path: Path, payload: Mapping[str, Any]) -> None:
    """torch.save `payload` to `path` atomically (temporary file, fsync, rename)."""
    missing = [k for k in REQUIRED_KEYS if k not in payload]
    if missing:
        raise CheckpointError(f"refusing to write a checkpoint without keys {missing}")
    atomic_write(path, lambda fh: torch.save(dict(payload), fh))


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load with weights_only=True and check the format; CheckpointError says what is wrong."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as err:  # truncated zip, pickle error, disallowed global, ...
        raise CheckpointError(f"cannot read checkpoint {path}: {type(err).__name__}: {err}") from err
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(ckpt).__name__}, not a dict")
    if ckpt.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {path} has format {ckpt.get('format')!r}, expected {FORMAT!r}")
    missing = [k for k in REQUIRED_KEYS if k not in ckpt]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks keys {missing}")
    return ckpt


def candidates(work_dir: Path) -> list[Path]:
    """Resume candidates, best first: latest.pth, then epoch files newest first."""
    work_dir = Path(work_dir)
    epochs = sorted(
        (int(m.group(1)), p) for p in work_dir.glob("epoch_*.pth") if (m := EPOCH_FILE.match(p.name))
    )
    found = [p for _, p in reversed(epochs)]
    latest = work_dir / LATEST
    return [latest, *found] if latest.exists() else found


def load_for_resume(work_dir: Path, explicit: Path | None = None) -> tuple[Path, dict[str, Any]] | None:
    """The checkpoint to resume from, or None for a fresh start.

    An explicit `--resume` path must load.  Otherwise the newest readable checkpoint in the work
    dir is used; every unreadable one is reported (warning) and skipped.
    """
    if explicit is not None:
        return Path(explicit), load_checkpoint(Path(explicit))
    for path in candidates(work_dir):
        try:
            return path, load_checkpoint(path)
        except CheckpointError as err:
            warnings.warn(f"skipping unusable checkpoint: {err}", RuntimeWarning, stacklevel=2)
    return None


def prune(work_dir: Path, keep: int) -> None:
    """Delete all but the newest `keep` epoch files."""
    old = candidates(work_dir)
    epoch_files = [p for p in old if p.name != LATEST]
    for path in epoch_files[keep:]:
        path.unlink(missing_ok=True)


def rng_state() -> dict[str, Any]:
    """Every RNG we touch, as tensors / lists / ints (weights_only-loadable)."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": [s for s in torch.cuda.get_rng_state_all()] if torch.cuda.is_available() else [],
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "python": {"version": py_state[0], "state": list(py_state[1]), "gauss": py_state[2]},
    }


def restore_rng(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    npy = state["numpy"]
    np.random.set_state(("MT19937", npy["keys"].numpy().astype(np.uint32), npy["pos"],
                         npy["has_gauss"], npy["cached_gaussian"]))
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss"]))
