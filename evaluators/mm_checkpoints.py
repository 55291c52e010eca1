"""mmengine Runner checkpoints on disk: which one a rerun resumes from, and their removal.

mmengine's CheckpointHook writes `iter_<N>.pth` (or `epoch_<N>.pth`) and a `last_checkpoint` text
file into the Runner's work_dir.  `resume_point` picks the newest of those files that loads with
torch's `weights_only=True` under the project's mmengine allowlist
(`adapters.safe_load.load_mmengine_checkpoint`; `weights_only=False` is never used); a file that
does not (truncated by a kill mid-write, corrupt, or pickling something outside the allowlist) is
reported with a `RuntimeWarning` naming it and the reason, and skipped, as the pretrainer skips an
unreadable checkpoint: the run resumes from the one before it, or starts again at iteration 0 when
none is left.  This module imports mmengine only inside `resume_point` (through the allowlist).
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

from adapters.errors import CheckpointError

CHECKPOINT_PATTERN = re.compile(r"^(?:iter|epoch)_(\d+)\.pth$")
LAST_CHECKPOINT = "last_checkpoint"  # mmengine's pointer file next to the checkpoints


def checkpoints(work_dir: Path) -> list[Path]:
    """The Runner checkpoints in `work_dir`, newest (highest iteration / epoch) first."""
    if not work_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in work_dir.iterdir() if (m := CHECKPOINT_PATTERN.match(p.name))]
    return [p for _, p in sorted(found, reverse=True)]


def resume_point(work_dir: Path) -> Path | None:
    """The newest checkpoint in `work_dir` that loads under the allowlist; None: start afresh."""
    from adapters.safe_load import load_mmengine_checkpoint

    for path in checkpoints(work_dir):
        try:
            load_mmengine_checkpoint(path)
        except (CheckpointError, OSError) as err:
            warnings.warn(f"not resuming from {path}: {err}", RuntimeWarning, stacklevel=2)
            continue
        return path
    return None


def remove_checkpoints(work_dir: Path) -> None:
    """Delete the Runner's checkpoints and pointer (~100-300 MB each) once the run's metrics are safe."""
    for path in [*checkpoints(work_dir), work_dir / LAST_CHECKPOINT]:
        path.unlink(missing_ok=True)
