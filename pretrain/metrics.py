"""Per-clustering statistics and the per-epoch JSONL log (WORK_DIR/log.jsonl)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import normalized_mutual_info_score

from dcbench.fileio import atomic_write_text

LOG_NAME = "log.jsonl"


def cluster_stats(labels: np.ndarray, k: int) -> dict[str, float | int]:
    """Empty clusters and the min / median / max size of the non-empty ones."""
    sizes = np.bincount(np.asarray(labels, dtype=np.int64), minlength=k)
    nonempty = sizes[sizes > 0]
    return {
        "empty_clusters": int((sizes == 0).sum()),
        "cluster_size_min": int(nonempty.min()),
        "cluster_size_median": float(np.median(nonempty)),
        "cluster_size_max": int(nonempty.max()),
    }


def nmi(a: np.ndarray | None, b: np.ndarray | None) -> float | None:
    """Normalised mutual information (sklearn, arithmetic mean), None when either side is missing."""
    if a is None or b is None:
        return None
    return float(normalized_mutual_info_score(np.asarray(a), np.asarray(b)))


def read_log(work_dir: Path) -> list[dict[str, Any]]:
    path = Path(work_dir) / LOG_NAME
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def append_log(work_dir: Path, record: Mapping[str, Any]) -> None:
    """Append one JSON line; the whole file is rewritten atomically so no line is ever half-written."""
    rows = [*read_log(work_dir), dict(record)]
    _write(work_dir, rows)


def truncate_log(work_dir: Path, last_epoch: int) -> None:
    """Keep only lines of epochs <= last_epoch (a resumed run repeats what came after)."""
    rows = read_log(work_dir)
    kept = [r for r in rows if int(r["epoch"]) <= last_epoch]
    if len(kept) != len(rows):
        _write(work_dir, kept)


def _write(work_dir: Path, rows: list[dict[str, Any]]) -> None:
    text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows)
    atomic_write_text(Path(work_dir) / LOG_NAME, text)
