"""Results store frame -> one string frame per table of the reference model-zoo page.

Every table has one row per model (sorted by name; the semi-supervised table has one row per
model and ImageNet fraction), the reference page's columns in its order, values with two
decimals, and `–` where the store holds no result.  Only successful rows count; for each
model the rows of its most recently evaluated checkpoint are shown, and for each cell the
newest row wins (`dcbench.results.latest_ok`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import pandas as pd

from dcbench.results import latest_ok

DASH = "–"  # en dash: no result
NO_CONFIG = "-"
TORCHVISION_MARK = "†"
LAYERS = ("feature1", "feature2", "feature3", "feature4", "feature5")
LOWSHOT_KS = (1, 2, 4, 8, 16, 32, 64, 96)
LOWSHOT_COLUMNS = tuple(f"k={k}" for k in LOWSHOT_KS)
LINEAR_COLUMNS = ("Model", "Config", "Feature1", "Feature2", "Feature3", "Feature4", "Feature5", "AvgPool")
SEMISUP_FRACTIONS = (("semisup_1pct", "1%"), ("semisup_10pct", "10%"))
COCO_METRICS = (
    ("mAP(Box)", "bbox_AP"), ("AP50(Box)", "bbox_AP50"), ("AP75(Box)", "bbox_AP75"),
    ("mAP(Mask)", "segm_AP"), ("AP50(Mask)", "segm_AP50"), ("AP75(Mask)", "segm_AP75"),
)
TORCHVISION_FOOTNOTE = (
    f"{TORCHVISION_MARK} Measured with the embedded torchvision detection engine (engine `torchvision`), "
    "not with detectron2: not comparable with detectron2 numbers such as the reference's."
)
LOWSHOT_NOTE = (
    "**k=1 … k=96**: VOC07 low-shot SVM mAP (mean over the independent samples: 5 in the protocol, "
    "2 in the `tiny` config) with k positive images per class, the best over Feature1 … Feature5 for each k"
)


@dataclass(frozen=True, eq=False)
class Table:
    """One rendered table: string cells under the reference headers, plus notes and footnotes."""

    table_id: str
    frame: pd.DataFrame
    notes: tuple[str, ...] = ()
    footnotes: tuple[str, ...] = ()


def current_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Newest ok row per key, restricted to each model's most recently evaluated checkpoint and, per
    (model, benchmark), to its most recently run config: a tiny and a reference run never share a cell."""
    ok = latest_ok(frame)
    if ok.empty:
        return ok
    ordered = ok.sort_values("time", kind="stable")
    newest = ordered.groupby("model")["checkpoint_sha256"].last()
    ok = ok[ok["checkpoint_sha256"] == ok["model"].map(newest)]
    config = ok.sort_values("time", kind="stable").groupby(["model", "benchmark"])["config_hash"].last()
    keys = pd.MultiIndex.from_frame(ok[["model", "benchmark"]])
    return ok[ok["config_hash"].to_numpy() == config.reindex(keys).to_numpy()].reset_index(drop=True)


def fmt(value: object, engine: object = None, mark_engine: bool = False) -> str:
    """Two decimals, `–` for no value, `†` after values from the torchvision engine."""
    if value is None or pd.isna(value):
        return DASH
    text = f"{float(value):.2f}"
    if mark_engine and engine == "torchvision":
        text += TORCHVISION_MARK
    return text


def _md(text: object) -> str:
    return str(text).replace("|", "\\|")


def _config(rows: pd.DataFrame, model: str) -> str:
    names = rows.loc[(rows["model"] == model) & rows["pretrain_config"].notna(), "pretrain_config"]
    return _md(names.iloc[-1]) if len(names) else NO_CONFIG


def _models(rows: pd.DataFrame) -> list[str]:
    return sorted(str(m) for m in rows["model"].unique()) if not rows.empty else []


def _pick(rows: pd.DataFrame, benchmark: str, metric: str | None = None) -> pd.DataFrame:
    mask = rows["benchmark"] == benchmark
    if metric is not None:
        mask &= rows["metric"] == metric
    return rows[mask & rows["value"].notna()]


def _cell(sub: pd.DataFrame, mark_engine: bool = False, **where: object) -> str:
    """The value of the one row of `sub` matching `where` (None matches a null), formatted."""
    mask = pd.Series(True, index=sub.index)
    for column, wanted in where.items():
        mask &= sub[column].isna() if wanted is None else sub[column] == wanted
    hit = sub[mask]
    if hit.empty:
        return DASH
    row = hit.iloc[-1]
    return fmt(row["value"], row["engine"], mark_engine)


def _table(table_id: str, columns: Sequence[str], records: list[list[str]],
           notes: Sequence[str] = (), footnotes: Sequence[str] = ()) -> Table:
    return Table(table_id, pd.DataFrame(records, columns=list(columns), dtype=object),
                 tuple(notes), tuple(footnotes))


def best_layer(rows: pd.DataFrame, model: str) -> tuple[str, float] | None:
    """The VOC07 SVM layer with the highest mAP for `model` (first of feature1..5 on ties)."""
    sub = _pick(rows, "voc07_svm", "mAP")
    sub = sub[(sub["model"] == model) & sub["layer"].isin(LAYERS)]
    if sub.empty:
        return None
    sub = sub.assign(order=sub["layer"].map(LAYERS.index)).sort_values("order", kind="stable")
    values = sub["value"].astype(float).to_numpy()
    best = int(values.argmax())
    return str(sub["layer"].iloc[best]), float(values[best])


def lowshot_best(rows: pd.DataFrame, variant: str) -> pd.DataFrame:
    """Columns model, k, value: per model and k the best low-shot mAP over feature1..5."""
    sub = _pick(rows, "voc07_lowshot", "mAP")
    sub = sub[(sub["variant"] == variant) & sub["layer"].isin(LAYERS) & sub["k"].notna()]
    if sub.empty:
        return pd.DataFrame({"model": pd.Series(dtype=object), "k": pd.Series(dtype=int),
                             "value": pd.Series(dtype=float)})
    sub = sub.assign(k=sub["k"].astype(int), value=sub["value"].astype(float))
    best = sub.groupby(["model", "k"], sort=True)["value"].max().reset_index()
    return best.sort_values(["model", "k"], kind="stable").reset_index(drop=True)


def _lowshot_cells(best: pd.DataFrame, model: str) -> list[str]:
    values = dict(zip(best.loc[best["model"] == model, "k"], best.loc[best["model"] == model, "value"],
                      strict=True))
    return [fmt(values.get(k)) for k in LOWSHOT_KS]


def voc_svm_table(rows: pd.DataFrame) -> Table:
    best = lowshot_best(rows, "reference")
    records = []
    for model in _models(rows):
        layer, value = best_layer(rows, model) or (DASH, None)
        head = [_md(model), _config(rows, model), layer, fmt(value)]
        records.append(head + _lowshot_cells(best, model))
    notes = (
        "**Best Layer**: the layer (feature1 … feature5) with the highest VOC07 SVM mAP; **SVM** is that "
        "layer's mAP (the reference protocol reports the best layer, chosen on the test set).",
        f"{LOWSHOT_NOTE}, with the SVM cost picked on the test set (`reference` variant), as the reference "
        "does. The `clean` variant is in the next table.",
    )
    return _table("voc_svm", ("Model", "Config", "Best Layer", "SVM", *LOWSHOT_COLUMNS), records, notes)


def voc_lowshot_clean_table(rows: pd.DataFrame) -> Table:
    best = lowshot_best(rows, "clean")
    records = [[_md(m), _config(rows, m), *_lowshot_cells(best, m)] for m in _models(rows)]
    notes = (
        f"{LOWSHOT_NOTE}, with the SVM cost chosen by cross-validation inside each training sample "
        "(`clean` variant; the test set only scores). The layer is still the best per k, as above. "
        "k=1 stays `–`: one positive cannot be split into cross-validation folds.",
    )
    return _table("voc_lowshot_clean", ("Model", "Config", *LOWSHOT_COLUMNS), records, notes)


def linear_table(rows: pd.DataFrame, table_id: str, benchmark: str, avgpool_benchmark: str) -> Table:
    heads, avg = _pick(rows, benchmark, "top1"), _pick(rows, avgpool_benchmark, "top1")
    records = []
    for model in _models(rows):
        cells = [_cell(heads, model=model, layer=layer) for layer in LAYERS]
        records.append([_md(model), _config(rows, model), *cells, _cell(avg, model=model, layer="avgpool")])
    notes = (
        "Top-1 accuracy (%). **Feature1 … Feature5**: the multi-head linear classifier on each pooled "
        "stage output (no global average pooling); **AvgPool**: the linear classifier on globally "
        "average-pooled features.",
    )
    return _table(table_id, LINEAR_COLUMNS, records, notes)


def _best_setting(sub: pd.DataFrame) -> tuple[object, str, str] | None:
    """(variant, top1, top5) of the setting with the best top-1 (ties: first variant by name)."""
    top1 = sub[sub["metric"] == "top1"].copy()
    if top1.empty:
        return None
    top1["name"] = top1["variant"].fillna("").astype(str)
    top1 = top1.sort_values("name", kind="stable")
    values = top1["value"].astype(float).to_numpy()
    row = top1.iloc[int(values.argmax())]
    variant = None if pd.isna(row["variant"]) else row["variant"]
    top5 = _cell(sub, metric="top5", variant=variant)
    return variant, fmt(row["value"]), top5


def semisup_table(rows: pd.DataFrame) -> Table:
    records = []
    for model in _models(rows):
        for benchmark, fraction in SEMISUP_FRACTIONS:
            sub = _pick(rows, benchmark)
            best = _best_setting(sub[sub["model"] == model])
            label = f"{fraction} data"
            if best is None:
                records.append([_md(model), _config(rows, model), label, DASH, DASH])
                continue
            variant, top1, top5 = best
            finetune = f"{label}, {_md(variant)}" if variant is not None else label
            records.append([_md(model), _config(rows, model), finetune, top1, top5])
    notes = (
        "One row per model and ImageNet fraction (1% / 10% of the labels); **Fine-tuned Config** names "
        "the fraction and the setting shown (base learning rate `lr…`, head learning-rate multiplier "
        "`head…`): the setting with the best validation top-1 among those run, as the reference does.",
    )
    columns = ("Model", "Pretrain Config", "Fine-tuned Config", "Top-1 (%)", "Top-5 (%)")
    return _table("semisup", columns, records, notes)


def detection_rows(sub: pd.DataFrame) -> pd.DataFrame:
    """The rows to show for one model: the `mean` variant when trials exist, else the plain rows
    (no variant), else a single trial's rows; several trials without a mean show nothing."""
    variants = sub["variant"]
    if (variants == "mean").any():
        return sub[variants == "mean"]
    if variants.isna().any():
        return sub[variants.isna()]
    if variants.nunique() == 1:
        return sub
    return sub.iloc[0:0]


def _detection_table(rows: pd.DataFrame, table_id: str, benchmark: str,
                     metrics: Sequence[tuple[str, str]]) -> Table:
    sub = _pick(rows, benchmark)
    records = []
    for model in _models(rows):
        shown = detection_rows(sub[sub["model"] == model])
        cells = [_cell(shown, mark_engine=True, metric=metric) for _, metric in metrics]
        records.append([_md(model), _config(rows, model), *cells])
    marked = any(TORCHVISION_MARK in cell for record in records for cell in record[2:])
    notes = ("Mean over the fine-tuning trials (`mean` row) when several were run.",)
    columns = ("Model", "Config", *(header for header, _ in metrics))
    return _table(table_id, columns, records, notes, (TORCHVISION_FOOTNOTE,) if marked else ())


def det_voc0712_table(rows: pd.DataFrame) -> Table:
    return _detection_table(rows, "det_voc0712", "det_voc0712", (("mAP", "AP"), ("AP50", "AP50")))


def det_coco_table(rows: pd.DataFrame) -> Table:
    return _detection_table(rows, "det_coco", "det_coco", COCO_METRICS)


def segmentation_table(rows: pd.DataFrame, table_id: str, benchmark: str) -> Table:
    sub = _pick(rows, benchmark, "mIoU")
    records = [[_md(m), _config(rows, m), _cell(sub, model=m)] for m in _models(rows)]
    return _table(table_id, ("Model", "Config", "mIOU"), records)


BUILDERS: tuple[tuple[str, Callable[[pd.DataFrame], Table]], ...] = (
    ("voc_svm", voc_svm_table),
    ("voc_lowshot_clean", voc_lowshot_clean_table),
    ("linear_imagenet", partial(linear_table, table_id="linear_imagenet", benchmark="linear_imagenet",
                                avgpool_benchmark="linear_avgpool_imagenet")),
    ("linear_inat18", partial(linear_table, table_id="linear_inat18", benchmark="linear_inat18",
                              avgpool_benchmark="linear_avgpool_inat18")),
    ("linear_places205", partial(linear_table, table_id="linear_places205", benchmark="linear_places205",
                                 avgpool_benchmark="linear_avgpool_places205")),
    ("semisup", semisup_table),
    ("det_voc0712", det_voc0712_table),
    ("det_coco", det_coco_table),
    ("seg_voc12aug", partial(segmentation_table, table_id="seg_voc12aug", benchmark="seg_voc12aug")),
    ("seg_cityscapes", partial(segmentation_table, table_id="seg_cityscapes", benchmark="seg_cityscapes")),
)
TABLE_IDS = tuple(table_id for table_id, _ in BUILDERS)


def build_tables(frame: pd.DataFrame) -> list[Table]:
    """Every table of the reference page (plus the clean low-shot one), in the page's order."""
    rows = current_rows(frame)
    return [build(rows) for _, build in BUILDERS]
