"""Tidy, append-only result rows with provenance, stored as JSONL under results/.

One row per (model, checkpoint sha256, benchmark, dataset, layer, k, variant, metric).
Values are plain floats (percent where the reference page prints percent); a missing
value is null, never a sentinel.  A benchmark that failed or was skipped is one row with
`status` 'failed' / 'skipped', `metric`/`value` null and the `reason`.

Several processes may append to one store (parallel jobs): each append holds an exclusive
`flock` on the file, writes whole lines in one go, and on a write error (a full disk) cuts the
file back to where it was. A torn last line (a writer killed mid-row, or an older store) is kept
on a line of its own, reported and ignored by `read`, never glued to the next row.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import fcntl
import json
import logging
import os
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from dcbench import BENCHMARK_VERSION

LOG = logging.getLogger("deepcluster_bench")
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
    accum_steps: int = 1  # batches per optimizer step (the config's gradient accumulation; 1: none)


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
    accum_steps: int = 1  # per-process batch = the config's total batch / (world_size x accum_steps)


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
            accum_steps=prov.accum_steps,
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
        world_size=prov.world_size, accum_steps=prov.accum_steps,
    )


COLUMNS = tuple(f.name for f in dataclasses.fields(ResultRow))


@dataclass(frozen=True)
class StoreScan:
    """The parsed rows of a store and the numbers (1-based) of its lines that are not whole rows."""

    records: list[dict[str, Any]]
    bad_lines: list[int]


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


class ResultStore:
    """Append-only JSONL file; each append writes whole lines under an exclusive lock."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def append(self, rows: Sequence[ResultRow]) -> None:
        if not rows:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = "".join(json.dumps(dataclasses.asdict(r), sort_keys=True) + "\n" for r in rows).encode()
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            size = os.lseek(fd, 0, os.SEEK_END)
            if size and os.pread(fd, 1, size - 1) != b"\n":
                LOG.warning("results store %s ends in a torn line; it is kept on its own line and "
                            "ignored", self.path)
                data = b"\n" + data
            try:
                _write_all(fd, data)
                os.fsync(fd)
            except OSError:
                os.ftruncate(fd, size)  # e.g. a full disk: no half row stays behind
                raise
        finally:
            os.close(fd)  # releases the lock

    def scan(self) -> StoreScan:
        """Every whole row, and the line numbers of torn or unparseable lines (never an error)."""
        if not self.path.exists():
            return StoreScan([], [])
        records, bad = [], []
        with open(self.path, "rb") as fh:
            for number, raw in enumerate(fh, start=1):
                if not raw.strip():
                    continue
                try:
                    record = json.loads(raw)
                except ValueError:
                    record = None
                if isinstance(record, dict) and "status" in record:
                    records.append(record)
                else:
                    bad.append(number)
        return StoreScan(records, bad)

    def read(self) -> pd.DataFrame:
        """All rows as a DataFrame (empty, with the columns, when there is no store yet).

        Lines that are not whole rows are logged (WARNING) and left out.
        """
        found = self.scan()
        if found.bad_lines:
            shown = ", ".join(str(n) for n in found.bad_lines[:5])
            more = f" and {len(found.bad_lines) - 5} more" if len(found.bad_lines) > 5 else ""
            LOG.warning("results store %s: line(s) %s%s are not whole JSON rows (a torn write?); ignored",
                        self.path, shown, more)
        if not found.records:
            return pd.DataFrame(columns=list(COLUMNS))
        frame = pd.DataFrame.from_records(found.records, columns=list(COLUMNS))
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
