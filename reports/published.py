"""The published DeepCluster numbers (reports/published/*.json) as rows the table builders read.

Each data file names its source documents, the checkpoint the numbers came from (its sha256
prefix, as OpenMMLab names published files) and, per table, the protocol choices in which this
harness still differs from the published run. Its values are keyed like result-store rows
(benchmark, dataset, layer, k, variant, metric), so the tables build the `published` row with the
same code that builds ours.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from dcbench.results import COLUMNS

PUBLISHED_DIR = Path(__file__).resolve().parent / "published"
DEFAULT_FILE = PUBLISHED_DIR / "deepcluster.json"
FORMAT = "deepcluster-bench/published/v1"
_KEYS = {"benchmark", "dataset", "layer", "k", "variant", "metric", "value", "sources", "disagrees", "note"}


@dataclass(frozen=True, eq=False)
class Published:
    """One published run: its rows (result-store columns, model = `label`) and what to say about it."""

    label: str
    model: str
    description: str
    pretrain_config: str
    sha256_prefix: str
    checkpoint_files: Mapping[str, str]
    sources: Mapping[str, Mapping[str, str]]  # name -> {"cite": short citation, "where": repo @ commit, row}
    rows: pd.DataFrame  # plus a `sources` column: the names of each value's sources, comma-joined
    unpublished: Mapping[str, str]
    differences: Mapping[str, tuple[str, ...]]

    def cite(self, benchmarks: Sequence[str]) -> str:
        """The short citations of the sources of the values of `benchmarks`, in file order."""
        used = self.rows.loc[self.rows["benchmark"].isin(list(benchmarks)), "sources"]
        names = {name for joined in used for name in joined.split(",")}
        return " and ".join(self.sources[n]["cite"] for n in self.sources if n in names)

    def same_checkpoint(self, sha256: str) -> bool:
        return str(sha256).lower().startswith(self.sha256_prefix.lower())


def _row(entry: Mapping[str, Any], data: Mapping[str, Any], where: str) -> dict[str, Any]:
    unknown = sorted(set(entry) - _KEYS)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; known: {sorted(_KEYS)}")
    missing = [key for key in ("benchmark", "metric", "value", "sources") if key not in entry]
    if missing:
        raise ValueError(f"{where}: missing {missing}")
    bad = sorted(set(entry["sources"]) - set(data["sources"]))
    if bad or not entry["sources"]:
        raise ValueError(f"{where}: sources {bad or '[]'} are not among {sorted(data['sources'])}")
    row: dict[str, Any] = {column: None for column in COLUMNS}
    row.update(
        model=data["label"], pretrain_config=data["pretrain_config"],
        checkpoint_sha256=data["checkpoint"]["sha256_prefix"], status="ok", engine=None,
        reason=None, time="",
        benchmark_version="published", config_hash="published", git_sha="", seed=0,
    )
    row.update({key: entry.get(key) for key in ("benchmark", "dataset", "layer", "k", "variant", "metric")})
    row["value"] = float(entry["value"])
    row["sources"] = ",".join(entry["sources"])
    return row


def load_published(path: str | Path = DEFAULT_FILE) -> Published:
    """Read and check one published data file (format, sources named, known keys)."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if data.get("format") != FORMAT:
        raise ValueError(f"{path}: format {data.get('format')!r}, expected {FORMAT!r}")
    records = [_row(entry, data, f"{path} values[{i}]") for i, entry in enumerate(data["values"])]
    frame = pd.DataFrame.from_records(records, columns=[*COLUMNS, "sources"])
    frame["k"] = frame["k"].astype("Int64")
    frame["value"] = frame["value"].astype("Float64")
    return Published(
        label=data["label"], model=data["model"], description=data["description"],
        pretrain_config=data["pretrain_config"], sha256_prefix=data["checkpoint"]["sha256_prefix"],
        checkpoint_files=dict(data["checkpoint"]["files"]),
        sources={name: dict(source) for name, source in data["sources"].items()}, rows=frame,
        unpublished=dict(data.get("unpublished", {})),
        differences={t: tuple(v) for t, v in data.get("differences", {}).items()},
    )


def published_note(published: Published, table_id: str, benchmarks: Sequence[str]) -> str:
    """The note on a table's `published` row: what it is, where from, what still differs."""
    head = f"**{published.label}**: {published.description}, checkpoint `…-{published.sha256_prefix}.pth`"
    if table_id in published.unpublished:
        return f"{head}: no published value ({published.unpublished[table_id]})."
    differences = published.differences.get(table_id, ())
    diff = ("protocol differences from the published run that remain: " + "; ".join(differences)
            if differences else "no known protocol difference from the published run remains")
    return f"{head}; values from {published.cite(benchmarks)}; {diff}."
