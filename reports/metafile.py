"""An OpenMMLab-style metafile (`metafile.yml` / model-index) for the models in the results store.

Layout (the field names OpenMMLab's model-index reads, as MMSelfSup's own metafiles use them):
`Collections: [{Name, Metadata, Paper: {Title, URL}, README}]` and `Models: [{Name, In Collection,
Metadata: {Epochs, Batch Size, ...}, Results: [{Task, Dataset, Metrics: {name: value}}], Weights,
Config}]`. One Results entry per benchmark of the model's current rows (`reports.tables.current_rows`);
a metric's name carries the row's layer / k / variant qualifiers, so every number keeps its cell.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from dcbench.fileio import atomic_write_text
from reports.tables import current_rows

COLLECTION = "deepcluster-bench"
PAPER = {"Title": "Deep Clustering for Unsupervised Learning of Visual Features",
         "URL": "https://arxiv.org/abs/1807.05520"}
# benchmark -> (Task, Dataset), in the wording of OpenMMLab metafiles where one exists.
TASKS: Mapping[str, tuple[str, str]] = {
    "voc07_svm": ("SVM Classification", "PASCAL VOC2007"),
    "voc07_lowshot": ("Low-shot SVM Classification", "PASCAL VOC2007"),
    "linear_imagenet": ("Linear Evaluation", "ImageNet-1k"),
    "linear_avgpool_imagenet": ("Linear Evaluation", "ImageNet-1k"),
    "linear_inat18": ("Linear Evaluation", "iNaturalist2018"),
    "linear_avgpool_inat18": ("Linear Evaluation", "iNaturalist2018"),
    "linear_places205": ("Linear Evaluation", "Places205"),
    "linear_avgpool_places205": ("Linear Evaluation", "Places205"),
    "semisup_1pct": ("Semi-Supervised Classification", "ImageNet-1k 1%"),
    "semisup_10pct": ("Semi-Supervised Classification", "ImageNet-1k 10%"),
    "det_voc0712": ("Object Detection", "PASCAL VOC 2007+2012"),
    "det_coco": ("Instance Segmentation", "COCO2017"),
    "seg_voc12aug": ("Semantic Segmentation", "PASCAL VOC 2012 + Aug"),
    "seg_cityscapes": ("Semantic Segmentation", "Cityscapes"),
}
METRIC_NAMES: Mapping[str, str] = {"top1": "Top 1 Accuracy", "top5": "Top 5 Accuracy"}
FIELDS: Mapping[str, tuple[frozenset[str], frozenset[str]]] = {  # level -> (required, allowed)
    "root": (frozenset({"Collections", "Models"}), frozenset({"Collections", "Models"})),
    "collection": (frozenset({"Name"}), frozenset({"Name", "Metadata", "Paper", "README", "Code"})),
    "model": (frozenset({"Name", "In Collection", "Results"}),
              frozenset({"Name", "In Collection", "Metadata", "Results", "Weights", "Config", "README",
                         "Paper", "Code", "Image"})),
    "result": (frozenset({"Task", "Dataset", "Metrics"}), frozenset({"Task", "Dataset", "Metrics"})),
    "paper": (frozenset({"Title"}), frozenset({"Title", "URL"})),
}


class MetafileError(ValueError):
    """A metafile does not follow the model-index field names."""


def metric_name(row: Mapping[str, Any]) -> str:
    """`feature5 Top 1 Accuracy`, `k=8 reference feature3 mAP` ...: the metric with its cell's qualifiers."""
    parts = []
    if pd.notna(row.get("k")):
        parts.append(f"k={int(row['k'])}")
    for column in ("variant", "layer"):
        if pd.notna(row.get(column)):
            parts.append(str(row[column]))
    parts.append(METRIC_NAMES.get(str(row["metric"]), str(row["metric"])))
    return " ".join(parts)


def training_metadata(pretrain_config: object) -> dict[str, int]:
    """Epochs and total batch size from an MMSelfSup-style config name (`..._8xb64-steplr-200e_in1k`)."""
    meta: dict[str, int] = {}
    if not isinstance(pretrain_config, str):
        return meta
    batch = re.search(r"(\d+)xb(\d+)", pretrain_config)
    epochs = re.search(r"-(\d+)e(?:_|$)", pretrain_config)
    if epochs:
        meta["Epochs"] = int(epochs.group(1))
    if batch:
        meta["Batch Size"] = int(batch.group(1)) * int(batch.group(2))
    return meta


def _model_entry(model: str, rows: pd.DataFrame) -> dict[str, Any]:
    results = []
    for benchmark, sub in rows.groupby("benchmark", sort=True):
        task, dataset = TASKS.get(str(benchmark), (str(benchmark), str(sub["dataset"].iloc[0])))
        metrics = {metric_name(r): round(float(r["value"]), 4) for _, r in sub.iterrows()}
        results.append({"Task": task, "Dataset": dataset, "Metrics": dict(sorted(metrics.items()))})
    config = rows["pretrain_config"].dropna()
    entry: dict[str, Any] = {"Name": model, "In Collection": COLLECTION}
    meta = training_metadata(config.iloc[-1] if len(config) else None)
    if meta:
        entry["Metadata"] = meta
    entry["Results"] = results
    entry["Weights"] = f"sha256:{rows['checkpoint_sha256'].iloc[-1]}"
    if len(config):
        entry["Config"] = str(config.iloc[-1])
    return entry


def build_metafile(frame: pd.DataFrame) -> dict[str, Any]:
    """The metafile document for every model of the store (current rows only)."""
    rows = current_rows(frame)
    rows = rows[rows["value"].notna()] if not rows.empty else rows
    groups = rows.groupby("model", sort=True) if not rows.empty else []
    models = [_model_entry(str(m), sub) for m, sub in groups]
    doc = {
        "Collections": [{"Name": COLLECTION, "Metadata": {"Architecture": ["ResNet"]}, "Paper": dict(PAPER),
                         "README": "README.md"}],
        "Models": models,
    }
    validate_metafile(doc)
    return doc


def _check(level: str, entry: object, where: str) -> None:
    required, allowed = FIELDS[level]
    if not isinstance(entry, Mapping):
        raise MetafileError(f"{where}: expected a mapping, got {type(entry).__name__}")
    missing, unknown = sorted(required - set(entry)), sorted(set(entry) - allowed)
    if missing or unknown:
        raise MetafileError(f"{where}: missing field(s) {missing}, unknown field(s) {unknown}")


def validate_metafile(doc: object) -> None:
    """Raise MetafileError unless `doc` uses only model-index field names, with the required ones."""
    _check("root", doc, "metafile")
    assert isinstance(doc, Mapping)
    names = set()
    for i, collection in enumerate(doc["Collections"]):
        _check("collection", collection, f"Collections[{i}]")
        if "Paper" in collection:
            _check("paper", collection["Paper"], f"Collections[{i}].Paper")
        names.add(collection["Name"])
    for i, model in enumerate(doc["Models"]):
        _check("model", model, f"Models[{i}]")
        if model["In Collection"] not in names:
            raise MetafileError(f"Models[{i}] names an unknown collection {model['In Collection']!r}")
        for j, result in enumerate(model["Results"]):
            _check("result", result, f"Models[{i}].Results[{j}]")
            if not all(isinstance(v, (int, float)) for v in result["Metrics"].values()):
                raise MetafileError(f"Models[{i}].Results[{j}].Metrics: every value must be a number")


def write_metafile(frame: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    text = yaml.safe_dump(build_metafile(frame), sort_keys=False, allow_unicode=True, width=100)
    atomic_write_text(path, text)
    return Path(path)


def read_metafile(path: str | os.PathLike[str]) -> dict[str, Any]:
    doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    validate_metafile(doc)
    return doc


def metafile_values(doc: Mapping[str, Any]) -> dict[tuple[str, str, str, str], float]:
    """{(model, task, dataset, metric name): value} of a metafile: what a round trip must keep."""
    return {(m["Name"], r["Task"], r["Dataset"], name): float(value)
            for m in doc["Models"] for r in m["Results"] for name, value in r["Metrics"].items()}
