"""The project's plots, all drawn from the results store (the evaluators only write rows).

`lowshot_plot`: low-shot VOC07 SVM mAP against k, one line per model (at the full SVM's best
layer, as the table); `python -m reports --plot PNG`. `lowshot_layers_plot`: one model's curves per layer;
run_all writes it to WORK_DIR/benchmarks/voc07_lowshot/voc07_lowshot_map_vs_k.png.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from dcbench.fileio import atomic_path
from evaluators.suite import names as N
from reports.tables import LAYERS, LOWSHOT_KS, current_rows, lowshot_at_best_layer

VARIANT_STYLES = (("reference", "-", "cost picked on test"), ("clean", "--", "cost by CV"))
LOWSHOT_LAYERS_PNG = "voc07_lowshot_map_vs_k.png"  # run_all's name for `lowshot_layers_plot`


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


HEALTH_PANELS = (
    (("nmi_prev", "nmi_gt"), ("NMI(t-1, t)", "NMI vs labels"), "NMI"),
    (("empty_clusters",), ("empty clusters",), "empty clusters"),
    (("kmeans_objective",), ("k-means objective",), "k-means objective"),
)


def health_plot(records: list[dict[str, object]], out_png: str | os.PathLike[str], title: str = "") -> Path:
    """Pretraining health per epoch from `log.jsonl` records: NMI, empty clusters, k-means objective."""
    fig = Figure(figsize=(10.0, 3.2), dpi=100)
    FigureCanvasAgg(fig)
    for index, (keys, labels, name) in enumerate(HEALTH_PANELS):
        ax = fig.add_subplot(1, len(HEALTH_PANELS), index + 1)
        for key, label in zip(keys, labels, strict=True):
            points = [(r["epoch"], r[key]) for r in records if r.get(key) is not None]
            if points:
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, marker="o", markersize=3, label=label)
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
        if len(keys) > 1:
            ax.legend(fontsize="small")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    target = Path(out_png)
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png", metadata={"Software": None})
    return target



def lowshot_layer_curves(frame: pd.DataFrame, model: str) -> dict[str, pd.DataFrame]:
    """Per layer (feature1..5 order) of `model`'s current checkpoint: columns k, reference, clean."""
    rows = current_rows(frame)
    if rows.empty:
        return {}
    sub = rows[(rows["benchmark"] == N.VOC07_LOWSHOT) & (rows["metric"] == "mAP") & (rows["model"] == model)
               & rows["layer"].isin(LAYERS) & rows["k"].notna() & rows["value"].notna()]
    curves = {}
    for layer in sorted(sub["layer"].unique(), key=LAYERS.index):
        points = sub[sub["layer"] == layer].assign(k=lambda d: d["k"].astype(int),
                                                   value=lambda d: d["value"].astype(float))
        table = points.pivot_table(index="k", columns="variant", values="value", aggfunc="last")
        curves[str(layer)] = table.reindex(columns=["reference", "clean"]).reset_index()
    return curves


def _layers_figure(curves: dict[str, pd.DataFrame]) -> Figure:
    fig = Figure(figsize=(6.4, 4.2), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for i, (layer, points) in enumerate(curves.items()):
        colour = f"C{i}"
        ref = points[points["reference"].notna()]
        ax.plot(ref["k"], ref["reference"], "-o", color=colour, label=f"{layer} reference")
        clean = points[points["clean"].notna()]
        if not clean.empty:
            ax.plot(clean["k"], clean["clean"], "--s", color=colour, alpha=0.7, label=f"{layer} clean")
    ax.set_xscale("log", base=2)
    ticks = sorted({int(k) for points in curves.values() for k in points["k"]})
    ax.set_xticks(ticks, [str(k) for k in ticks])
    ax.minorticks_off()
    ax.set_xlabel("k (positives per class)")
    ax.set_ylabel("VOC07 test mAP (%)")
    ax.set_title("VOC07 low-shot SVM (mean over samples)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def lowshot_layers_plot(frame: pd.DataFrame, model: str, out_png: str | os.PathLike[str]) -> Path:
    """Write `model`'s low-shot mAP against k, one colour per layer (solid `reference`, dashed `clean`).

    Raises ValueError when the store holds no low-shot result of `model`.
    """
    curves = lowshot_layer_curves(frame, model)
    if not curves:
        raise ValueError(f"no successful voc07_lowshot rows of model {model!r} in the results store")
    fig = _layers_figure(curves)
    target = Path(out_png)
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png", metadata={"Software": None})
    return target
