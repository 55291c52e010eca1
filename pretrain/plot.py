"""A PNG of the per-epoch curves from log.jsonl (matplotlib, Agg backend)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from dcbench.fileio import atomic_path  # noqa: E402

PLOT_NAME = "curves.png"
PANELS = (
    ("loss", "training loss"),
    ("kmeans_objective", "k-means objective"),
    ("nmi_prev", "NMI(t-1, t)"),
    ("nmi_gt", "NMI vs labels"),
    ("empty_clusters", "empty clusters"),
    ("clustering_time_s", "clustering time (s)"),
)


def plot_curves(rows: Sequence[dict[str, Any]], path: Path) -> Path:
    """Draw one panel per metric (epochs on x; missing values skipped); write `path` atomically."""
    fig, axes = plt.subplots(2, 3, figsize=(12, 6))
    for ax, (key, title) in zip(axes.flat, PANELS, strict=True):
        points = [(r["epoch"], r[key]) for r in rows if r.get(key) is not None]
        if points:
            xs, ys = zip(*points, strict=True)
            ax.plot(xs, ys, marker="o", markersize=3)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=80)
    plt.close(fig)
    return Path(path)
