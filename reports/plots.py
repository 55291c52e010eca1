"""Low-shot VOC07 SVM mAP against k, one line per model, from the results store."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from dcbench.fileio import atomic_path
from reports.tables import LOWSHOT_KS, current_rows, lowshot_at_best_layer

VARIANT_STYLES = (("reference", "-", "cost picked on test"), ("clean", "--", "cost by CV"))


def _figure(curves: dict[str, pd.DataFrame]) -> Figure:
    fig = Figure(figsize=(7.0, 4.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    colors = {}
    for variant, style, label in VARIANT_STYLES:
        best = curves[variant]
        for model in sorted(best["model"].unique()):
            points = best[best["model"] == model]
            color = colors.setdefault(model, f"C{len(colors) % 10}")
            ax.plot(points["k"], points["value"], linestyle=style, marker="o", color=color,
                    label=f"{model} ({label})")
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(LOWSHOT_KS), [str(k) for k in LOWSHOT_KS])
    ax.set_xlabel("k (positive images per class)")
    ax.set_ylabel("VOC07 mAP (%), at the SVM best layer")
    ax.set_title("Low-shot SVM on VOC07")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


def lowshot_plot(frame: pd.DataFrame, out_png: str | os.PathLike[str]) -> Path:
    """Write the low-shot curves of every model in `frame` (a results-store frame) to `out_png`.

    Solid lines: the `reference` variant (cost picked on test, as the reference does); dashed:
    the `clean` variant. Each point is at the full SVM's best layer, as in the table.
    Raises ValueError when the store holds no low-shot result.
    """
    rows = current_rows(frame)
    curves = {variant: lowshot_at_best_layer(rows, variant) for variant, _, _ in VARIANT_STYLES}
    if all(curve.empty for curve in curves.values()):
        raise ValueError("no successful voc07_lowshot rows in the results store: nothing to plot")
    fig = _figure(curves)
    target = Path(out_png)
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png", metadata={"Software": None})
    return target
