"""PNG of VOC07 low-shot mAP against k: one colour per layer, solid `reference`, dashed `clean`."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - the backend must be chosen first

from dcbench.fileio import atomic_path  # noqa: E402

Curves = Mapping[str, Mapping[int, tuple[float, float | None]]]  # layer -> k -> (reference, clean)


def plot_lowshot(curves: Curves, path: Path) -> None:
    """Write the figure atomically to `path`."""
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    try:
        for i, (layer, by_k) in enumerate(curves.items()):
            ks = sorted(by_k)
            colour = f"C{i}"
            ax.plot(ks, [by_k[k][0] for k in ks], "-o", color=colour, label=f"{layer} reference")
            clean = [(k, by_k[k][1]) for k in ks if by_k[k][1] is not None]
            if clean:
                ax.plot([k for k, _ in clean], [v for _, v in clean], "--s", color=colour, alpha=0.7,
                        label=f"{layer} clean")
        ax.set_xscale("log", base=2)
        ticks = sorted({k for by_k in curves.values() for k in by_k})
        ax.set_xticks(ticks, [str(k) for k in ticks])
        ax.minorticks_off()
        ax.set_xlabel("k (positives per class)")
        ax.set_ylabel("VOC07 test mAP (%)")
        ax.set_title("VOC07 low-shot SVM (mean over samples)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=110)
    finally:
        plt.close(fig)
