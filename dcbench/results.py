"""Tidy, append-only result rows with provenance, stored as JSONL under results/.

One row per (model, checkpoint sha256, benchmark, dataset, layer, k, variant, metric).
Values are plain floats (percent where the reference page prints percent); a missing
value is null, never a sentinel.  A benchmark that failed or was skipped is one row with
`status` 'failed' / 'skipped', `metric`/`value` null and the `reason`.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from dcbench import BENCHMARK_VERSION

Status = Literal["ok", "failed", "skipped"]
KEY_COLUMNS = ("model", "checkpoint_sha256", "benchmark", "dataset", "layer", "k", "variant", "metric")


@dataclass(frozen=True)
class Measurement:
    """What an evaluator returns: one number and where it belongs."""

    dataset: str
    metric: str
    value: float
    layer: str | None = None
    k: int | None = None
    variant: str | None = None
    engine: str = "torch"


@dataclass(frozen=True)
class Provenance:
    """Who made a row: the same for every row of one benchmark run."""

    model: str
    checkpoint_sha256: str
    benchmark: str
    config_hash: str
    seed: int
    git_sha: str
    pretrain_config: str | None = None  # e.g. 'deepcluster_resnet50_8xb64-steplr-200e_in1k'
    benchmark_version: str = BENCHMARK_VERSION
    world_size: int = 1  # processes (GPUs) the benchmark ran on


@dataclass(frozen=True)
class ResultRow:
    model: str
    pretrain_config: str | None
    checkpoint_sha256: str
    benchmark: str
    dataset: str | None
    layer: str | None
    k: int | None
    variant: str | None
    metric: str | None
    value: float | None
    status: Status
    reason: str | None
    engine: str | None
    benchmark_version: str
    config_hash: str
    git_sha: str
    seed: int
    time: str
    world_size: int = 1


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def rows_from_measurements(prov: Provenance, measurements: Iterable[Measurement]) -> list[ResultRow]:
    time = _now()
    return [
        ResultRow(
            model=prov.model, pretrain_config=prov.pretrain_config,
            checkpoint_sha256=prov.checkpoint_sha256, benchmark=prov.benchmark, dataset=m.dataset,
            layer=m.layer, k=m.k, variant=m.variant, metric=m.metric,
            value=float(m.value), status="ok", reason=None, engine=m.engine,
            benchmark_version=prov.benchmark_version, config_hash=prov.config_hash,
            git_sha=prov.git_sha, seed=prov.seed, time=time, world_size=prov.world_size,
        )
        for m in measurements
    ]


def status_row(prov: Provenance, status: Status, reason: str, dataset: str | None = None) -> ResultRow:
    """One row recording that a benchmark was skipped or failed, and why."""
    return ResultRow(
        model=prov.model, pretrain_config=prov.pretrain_config,
        checkpoint_sha256=prov.checkpoint_sha256, benchmark=prov.benchmark,
        dataset=dataset, layer=None, k=None, variant=None, metric=None, value=None,
        status=status, reason=reason, engine=None, benchmark_version=prov.benchmark_version,
        config_hash=prov.config_hash, git_sha=prov.git_sha, seed=prov.seed, time=_now(),
        world_size=prov.world_size,
    )


COLUMNS = tuple(f.name for f in dataclasses.fields(ResultRow))


class ResultStore:
    """Append-only JSONL file; each append is one write of whole lines."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def append(self, rows: Sequence[ResultRow]) -> None:
        if not rows:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        text = "".join(json.dumps(dataclasses.asdict(r), sort_keys=True) + "\n" for r in rows)
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())

    def read(self) -> pd.DataFrame:
        """All rows as a DataFrame (empty, with the columns, when there is no store yet)."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            return pd.DataFrame(columns=list(COLUMNS))
        lines = self.path.read_text(encoding="utf-8").splitlines()
        records = [json.loads(line) for line in lines if line.strip()]
        frame = pd.DataFrame.from_records(records, columns=list(COLUMNS))
        frame["k"] = frame["k"].astype("Int64")
        frame["value"] = frame["value"].astype("Float64")
        return frame


def latest_ok(frame: pd.DataFrame) -> pd.DataFrame:
    """The newest successful row for each key: what the tables show."""
    ok = frame[frame["status"] == "ok"].copy()
    if ok.empty:
        return ok
    ok = ok.sort_values("time", kind="stable")
    return ok.drop_duplicates(subset=list(KEY_COLUMNS), keep="last").reset_index(drop=True)


def git_sha(cwd: str | os.PathLike[str] | None = None) -> str:
    """The current commit of the checkout, or 'unknown' outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd or Path(__file__).resolve().parent,
            capture_output=True, text=True, check=True, timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


def to_jsonable(row: ResultRow) -> dict[str, Any]:
    return dataclasses.asdict(row)
