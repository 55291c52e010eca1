"""Results store frame -> one string frame per table of the reference model-zoo page.

Every table has one row per model (sorted by name; the semi-supervised table has one row per
model and ImageNet fraction), labelled extra rows where the page's choice hides a recorded
alternative (the low-shot curve with the best layer per k), and last the `published` row
(reports/published/, built from the data file by the same record functions); the reference page's
columns in its order, values with two decimals, and `–` where there is no result. `Table.kinds`
tells the rows apart. Only successful rows count; for each model the rows of its most recently
evaluated checkpoint are shown, and for each cell the newest row wins (`dcbench.results.latest_ok`).
Page choices: the low-shot columns at the full SVM's best layer, the AvgPool probe's best epoch,
the multi-head probes' last epoch; `reports.compare` sets one model beside the published row.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import pandas as pd

from dcbench.layers import LAYERS
from dcbench.results import latest_ok
from evaluators.suite import names as N
from evaluators.svm.reference import LOWSHOT_K_VALUES as LOWSHOT_KS
from reports.published import Published, load_published, published_note

DASH = "–"  # en dash: no result
NO_CONFIG = "-"
TORCHVISION_MARK = "†"
DETECTRON2_MARK = "‡"
ENGINE_MARKS = {"torchvision": TORCHVISION_MARK, "detectron2": DETECTRON2_MARK}  # mmdet (the page's): none
LOWSHOT_COLUMNS = tuple(f"k={k}" for k in LOWSHOT_KS)
LINEAR_COLUMNS = ("Model", "Config", "Feature1", "Feature2", "Feature3", "Feature4", "Feature5", "AvgPool")
SEMISUP_FRACTIONS = ((N.SEMISUP_1PCT, "1%"), (N.SEMISUP_10PCT, "10%"))
AVGPOOL_BEST = "top1_best_epoch"  # metric: the AvgPool probe's best top-1 over the epochs
COCO_METRICS = (
    ("mAP(Box)", "bbox_AP"), ("AP50(Box)", "bbox_AP50"), ("AP75(Box)", "bbox_AP75"),
    ("mAP(Mask)", "segm_AP"), ("AP50(Mask)", "segm_AP50"), ("AP75(Mask)", "segm_AP75"),
)
TORCHVISION_FOOTNOTE = (  # rows of the retired embedded engine (older stores)
    f"{TORCHVISION_MARK} Measured with the retired embedded torchvision detection engine (engine "
    "`torchvision`): not comparable with mmdetection or detectron2 numbers such as the reference's."
)
DETECTRON2_FOOTNOTE = (
    f"{DETECTRON2_MARK} Measured with detectron2 and MoCo's protocol (engine `detectron2`), not with the "
    "page's mmdetection configs: compare with MoCo / detectron2 numbers; unmarked values are mmdetection's."
)
ENGINE_FOOTNOTES = {TORCHVISION_MARK: TORCHVISION_FOOTNOTE, DETECTRON2_MARK: DETECTRON2_FOOTNOTE}
LOWSHOT_NOTE = (
    "**k=1 … k=96**: VOC07 low-shot SVM mAP (mean over the independent samples: 5 in the protocol, "
    "2 in the `tiny` config) with k positive images per class, at the **Best Layer** of the full SVM for "
    "every k (the page's one Best Layer column for the SVM and low-shot columns: OpenSelfSup "
    "docs/MODEL_ZOO.md, MMSelfSup configs/selfsup/deepcluster/README.md; `–` without an SVM result); "
    "the min / max / std over "
    "the samples are recorded too (metrics `mAP_min`, `mAP_max`, `mAP_std`); a k whose training set has "
    "too few positives or negatives for a class is `–` (the `tiny` config's 420-image trainval supplies "
    "k ≤ 16; the reason is in the benchmark's `voc07_lowshot_samples.json`)"
)
PER_K_LABEL = "best per k"
PER_K_NOTE = (
    f"Rows `MODEL ({PER_K_LABEL})` (extra, not on the page): the best layer over Feature1 … Feature5 chosen "
    "separately at every k, on the test set, which can only raise the curve."
)
LAST_EPOCH_MARK = "ˡ"
AVGPOOL_NOTE = (
    "**AvgPool**: the linear classifier on globally average-pooled features, its best top-1 over the "
    "epochs (validated after every epoch on val, the split reported), as the page reports it "
    "(OpenSelfSup docs/MODEL_ZOO.md: "
    "\"ImageNet (Last) ... The best top-1 result among all epochs is reported\"); the last epoch's top-1 "
    "is recorded too (metric `top1`; `python -m reports --compare MODEL` shows both). "
    f"{LAST_EPOCH_MARK}: the run recorded only the last epoch's top-1, shown instead."
)
SEMISUP_SELECTION_NOTE = (
    "When several settings ran (`best of N`), the one shown has the best top-1 on ImageNet val, which is "
    "also the split reported: the setting is selected on the reported split (as the reference's "
    "\"best performing setting\" is), an optimistic choice; a single setting (`1 setting`) involves no "
    "selection (the reference ran one, lr 0.01 x head 1, for the Sobel DeepCluster model)."
)

Records = list[tuple[str, list[str]]]  # (kind, cells): kind ours | extra | published


@dataclass(frozen=True, eq=False)
class Table:
    """One rendered table: string cells under the reference headers, plus notes and footnotes.

    `kinds` says what each row of `frame` is: `ours` (a model of the store), `extra` (a labelled
    addition to the page, e.g. the per-k best low-shot layer) or `published` (the page's numbers).
    """

    table_id: str
    frame: pd.DataFrame
    notes: tuple[str, ...] = ()
    footnotes: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()


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
    """Two decimals, `–` for no value; with `mark_engine`, a mark after values not from mmdetection."""
    if value is None or pd.isna(value):
        return DASH
    text = f"{float(value):.2f}"
    if mark_engine and isinstance(engine, str):
        text += ENGINE_MARKS.get(engine, "")
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


def _hit(sub: pd.DataFrame, **where: object) -> pd.Series | None:
    """The last row of `sub` matching `where` (None matches a null), or None."""
    mask = pd.Series(True, index=sub.index)
    for column, wanted in where.items():
        mask &= sub[column].isna() if wanted is None else sub[column] == wanted
    hit = sub[mask]
    return None if hit.empty else hit.iloc[-1]


def _cell(sub: pd.DataFrame, mark_engine: bool = False, **where: object) -> str:
    """The value of the one row of `sub` matching `where` (None matches a null), formatted."""
    row = _hit(sub, **where)
    return DASH if row is None else fmt(row["value"], row["engine"], mark_engine)


def best_layer(rows: pd.DataFrame, model: str) -> tuple[str, float] | None:
    """The VOC07 SVM layer with the highest mAP for `model` (first of feature1..5 on ties)."""
    sub = _pick(rows, N.VOC07_SVM, "mAP")
    sub = sub[(sub["model"] == model) & sub["layer"].isin(LAYERS)]
    if sub.empty:
        return None
    sub = sub.assign(order=sub["layer"].map(LAYERS.index)).sort_values("order", kind="stable")
    values = sub["value"].astype(float).to_numpy()
    best = int(values.argmax())
    return str(sub["layer"].iloc[best]), float(values[best])


def _lowshot(rows: pd.DataFrame, variant: str) -> pd.DataFrame:
    sub = _pick(rows, N.VOC07_LOWSHOT, "mAP")
    sub = sub[(sub["variant"] == variant) & sub["layer"].isin(LAYERS) & sub["k"].notna()]
    return sub.assign(k=sub["k"].astype(int), value=sub["value"].astype(float))


def _curve_frame(records: list[tuple[str, int, float]]) -> pd.DataFrame:
    if not records:
        return pd.DataFrame({"model": pd.Series(dtype=object), "k": pd.Series(dtype=int),
                             "value": pd.Series(dtype=float)})
    frame = pd.DataFrame.from_records(records, columns=["model", "k", "value"])
    return frame.sort_values(["model", "k"], kind="stable").reset_index(drop=True)


def lowshot_best(rows: pd.DataFrame, variant: str) -> pd.DataFrame:
    """Columns model, k, value: per model and k the best low-shot mAP over feature1..5 (the extra)."""
    sub = _lowshot(rows, variant)
    if sub.empty:
        return _curve_frame([])
    best = sub.groupby(["model", "k"], sort=True)["value"].max().reset_index()
    return _curve_frame(list(best.itertuples(index=False, name=None)))


def lowshot_at_best_layer(rows: pd.DataFrame, variant: str) -> pd.DataFrame:
    """Columns model, k, value: per model the low-shot mAP at the full SVM's best layer, every k."""
    sub = _lowshot(rows, variant)
    records = []
    for model in _models(sub):
        best = best_layer(rows, model)
        if best is None:
            continue
        at = sub[(sub["model"] == model) & (sub["layer"] == best[0])]
        records += [(model, int(k), float(v)) for k, v in zip(at["k"], at["value"], strict=True)]
    return _curve_frame(records)


def _lowshot_cells(curve: pd.DataFrame, model: str) -> list[str]:
    mine = curve[curve["model"] == model]
    values = dict(zip(mine["k"], mine["value"], strict=True))
    return [fmt(values.get(k)) for k in LOWSHOT_KS]


def _has_lowshot(rows: pd.DataFrame, model: str, variant: str) -> bool:
    sub = _lowshot(rows, variant)
    return bool((sub["model"] == model).any())


def _voc_svm_records(rows: pd.DataFrame, model: str, extras: bool) -> Records:
    layer, value = best_layer(rows, model) or (DASH, None)
    at_layer = lowshot_at_best_layer(rows, "reference")
    records: Records = [("ours", [_md(model), _config(rows, model), layer, fmt(value),
                                  *_lowshot_cells(at_layer, model)])]
    if extras and _has_lowshot(rows, model, "reference"):
        per_k = lowshot_best(rows, "reference")
        records.append(("extra", [_md(f"{model} ({PER_K_LABEL})"), _config(rows, model), PER_K_LABEL, DASH,
                                  *_lowshot_cells(per_k, model)]))
    return records


def _clean_records(rows: pd.DataFrame, model: str, extras: bool) -> Records:
    records: Records = [("ours", [_md(model), _config(rows, model),
                                  *_lowshot_cells(lowshot_at_best_layer(rows, "clean"), model)])]
    if extras and _has_lowshot(rows, model, "clean"):
        records.append(("extra", [_md(f"{model} ({PER_K_LABEL})"), _config(rows, model),
                                  *_lowshot_cells(lowshot_best(rows, "clean"), model)]))
    return records


def _avgpool_cell(rows: pd.DataFrame, benchmark: str, model: str) -> str:
    best = _cell(_pick(rows, benchmark, AVGPOOL_BEST), model=model, layer="avgpool")
    if best != DASH:
        return best
    last = _cell(_pick(rows, benchmark, "top1"), model=model, layer="avgpool")
    return last if last == DASH else last + LAST_EPOCH_MARK


def _linear_records(rows: pd.DataFrame, model: str, extras: bool, benchmark: str,
                    avgpool_benchmark: str) -> Records:
    heads = _pick(rows, benchmark, "top1")
    cells = [_cell(heads, model=model, layer=layer) for layer in LAYERS]
    avg = _avgpool_cell(rows, avgpool_benchmark, model)
    return [("ours", [_md(model), _config(rows, model), *cells, avg])]


def _settings(sub: pd.DataFrame) -> tuple[object, float, int] | None:
    """(variant, top1, number of settings) of the setting with the best top-1 (ties: first by name)."""
    top1 = sub[sub["metric"] == "top1"].copy()
    if top1.empty:
        return None
    top1["name"] = top1["variant"].fillna("").astype(str)
    top1 = top1.sort_values("name", kind="stable")
    values = top1["value"].astype(float).to_numpy()
    row = top1.iloc[int(values.argmax())]
    variant = None if pd.isna(row["variant"]) else row["variant"]
    return variant, float(row["value"]), int(top1["name"].nunique())


def _semisup_records(rows: pd.DataFrame, model: str, extras: bool) -> Records:
    records: Records = []
    for benchmark, fraction in SEMISUP_FRACTIONS:
        sub = _pick(rows, benchmark)
        sub = sub[sub["model"] == model]
        best = _settings(sub)
        label = f"{fraction} data"
        if best is None:
            records.append(("ours", [_md(model), _config(rows, model), label, DASH, DASH]))
            continue
        variant, top1, count = best
        selection = "1 setting" if count == 1 else f"best of {count} on val"
        shown = f"{_md(variant)}, {selection}" if variant is not None else selection
        records.append(("ours", [_md(model), _config(rows, model), f"{label}, {shown}", fmt(top1),
                                 _cell(sub, metric="top5", variant=variant)]))
    return records


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


def _detection_records(rows: pd.DataFrame, model: str, extras: bool, benchmark: str,
                       metrics: Sequence[tuple[str, str]]) -> Records:
    shown = detection_rows(_pick(rows, benchmark)[lambda s: s["model"] == model])
    cells = [_cell(shown, mark_engine=True, metric=metric) for _, metric in metrics]
    return [("ours", [_md(model), _config(rows, model), *cells])]


def _segmentation_records(rows: pd.DataFrame, model: str, extras: bool, benchmark: str) -> Records:
    return [("ours", [_md(model), _config(rows, model), _cell(_pick(rows, benchmark, "mIoU"), model=model)])]


RecordFn = Callable[[pd.DataFrame, str, bool], Records]


@dataclass(frozen=True)
class TableSpec:
    """How one table is built: its headers, the records of one model, its notes and benchmarks."""

    table_id: str
    columns: tuple[str, ...]
    records: RecordFn
    benchmarks: tuple[str, ...]
    notes: tuple[str, ...] = ()


def _linear_spec(table_id: str, benchmark: str, avgpool_benchmark: str) -> TableSpec:
    notes = (
        "Top-1 accuracy (%). **Feature1 … Feature5**: the multi-head linear classifier on each pooled "
        "stage output (no global average pooling), its last epoch's top-1 (the page's choice).",
        AVGPOOL_NOTE,
    )
    return TableSpec(table_id, LINEAR_COLUMNS, partial(_linear_records, benchmark=benchmark,
                                                      avgpool_benchmark=avgpool_benchmark),
                     (benchmark, avgpool_benchmark), notes)


def _detection_spec(table_id: str, benchmark: str, metrics: Sequence[tuple[str, str]]) -> TableSpec:
    return TableSpec(table_id, ("Model", "Config", *(header for header, _ in metrics)),
                     partial(_detection_records, benchmark=benchmark, metrics=metrics), (benchmark,),
                     ("Mean over the fine-tuning trials (`mean` row) when several were run.",))


def _segmentation_spec(table_id: str, benchmark: str) -> TableSpec:
    return TableSpec(table_id, ("Model", "Config", "mIOU"),
                     partial(_segmentation_records, benchmark=benchmark), (benchmark,))


VOC_SVM_NOTES = (
    "**Best Layer**: the layer (feature1 … feature5) with the highest VOC07 SVM mAP; **SVM** is that "
    "layer's mAP (the reference protocol reports the best layer, chosen on the test set).",
    f"{LOWSHOT_NOTE}, with the SVM cost picked on the test set (`reference` variant), as the reference "
    "does. The `clean` variant is in the next table.",
    PER_K_NOTE,
)
CLEAN_NOTES = (
    f"{LOWSHOT_NOTE}, with the SVM cost chosen by cross-validation inside each training sample "
    "(`clean` variant; the test set only scores). k=1 stays `–`: one positive cannot be split into "
    "cross-validation folds.",
    PER_K_NOTE,
)
SPECS: tuple[TableSpec, ...] = (
    TableSpec("voc_svm", ("Model", "Config", "Best Layer", "SVM", *LOWSHOT_COLUMNS), _voc_svm_records,
              (N.VOC07_SVM, N.VOC07_LOWSHOT), VOC_SVM_NOTES),
    TableSpec("voc_lowshot_clean", ("Model", "Config", *LOWSHOT_COLUMNS), _clean_records, (N.VOC07_LOWSHOT,),
              CLEAN_NOTES),
    _linear_spec("linear_imagenet", N.LINEAR_IMAGENET, N.LINEAR_AVGPOOL_IMAGENET),
    _linear_spec("linear_inat18", N.LINEAR_INAT18, N.LINEAR_AVGPOOL_INAT18),
    _linear_spec("linear_places205", N.LINEAR_PLACES205, N.LINEAR_AVGPOOL_PLACES205),
    TableSpec("semisup", ("Model", "Pretrain Config", "Fine-tuned Config", "Top-1 (%)", "Top-5 (%)"),
              _semisup_records, (N.SEMISUP_1PCT, N.SEMISUP_10PCT), (
                  "One row per model and ImageNet fraction (1% / 10% of the labels); **Fine-tuned Config** "
                  "names the fraction, the setting shown (base learning rate `lr…`, head learning-rate "
                  "multiplier `head…`) and how many settings ran (each model runs the reference's settings "
                  "for it by default: the 3 x 3 grid for RGB models, lr 0.01 x head 1 for Sobel ones).",
                  SEMISUP_SELECTION_NOTE,
              )),
    _detection_spec("det_voc0712", N.DET_VOC0712, (("mAP", "AP"), ("AP50", "AP50"))),
    _detection_spec("det_coco", N.DET_COCO, COCO_METRICS),
    _segmentation_spec("seg_voc12aug", N.SEG_VOC12AUG),
    _segmentation_spec("seg_cityscapes", N.SEG_CITYSCAPES),
)
TABLE_IDS = tuple(spec.table_id for spec in SPECS)


def build_table(spec: TableSpec, rows: pd.DataFrame, published: Published | None = None) -> Table:
    """Our rows (one or more per model, sorted by name), then the `published` row when given."""
    records: Records = [rec for model in _models(rows) for rec in spec.records(rows, model, True)]
    notes = list(spec.notes)
    if published is not None:
        records += [("published", cells) for _, cells in spec.records(published.rows, published.label, False)]
        notes.append(published_note(published, spec.table_id, spec.benchmarks))
    frame = pd.DataFrame([cells for _, cells in records], columns=list(spec.columns), dtype=object)
    footnotes = tuple(note for mark, note in ENGINE_FOOTNOTES.items()
                      if any(mark in cell for _, cells in records for cell in cells[2:]))
    return Table(spec.table_id, frame, tuple(notes), footnotes, tuple(kind for kind, _ in records))


def build_tables(frame: pd.DataFrame, published: Published | None = None, with_published: bool = True,
                 ) -> list[Table]:
    """Every table of the reference page (plus the clean low-shot one), in the page's order.

    Each table ends with the `published` row of `published` (default: reports/published/deepcluster.json)
    unless `with_published` is False.
    """
    rows = current_rows(frame)
    if with_published and published is None:
        published = load_published()
    return [build_table(spec, rows, published if with_published else None) for spec in SPECS]
