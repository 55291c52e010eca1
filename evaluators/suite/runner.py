"""Run a list of registered benchmarks on one backbone, recording every outcome as rows.

A benchmark whose dataset is missing is recorded as `skipped` with the expected layout; one that
raises is recorded as `failed` with the error, and the others still run.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from dcbench.backbone import Backbone
from dcbench.config import config_hash
from dcbench.context import RunContext
from dcbench.datasets.common import DatasetMissingError
from dcbench.results import Provenance, ResultRow, ResultStore, Status, rows_from_measurements, status_row
from evaluators.suite.registry import EVALUATORS, BenchmarkSpec

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class SuiteSettings:
    data_root: Path
    work_dir: Path
    model: str
    tiny: bool
    seed: int
    device: torch.device
    git_sha: str
    num_workers: int = 0
    num_gpus: int = 1
    det_engine: str = "auto"


@dataclass(frozen=True)
class Outcome:
    benchmark: str
    status: Status
    rows: int
    seconds: float
    reason: str | None


def benchmark_dir(work_dir: Path, name: str) -> Path:
    """Benchmark `name`'s own folder under the run's work folder (its ctx.work_dir)."""
    return work_dir / "benchmarks" / name


def _context(name: str, settings: SuiteSettings) -> RunContext:
    return RunContext(
        work_dir=benchmark_dir(settings.work_dir, name),
        cache_dir=settings.work_dir / "feature_cache",
        device=settings.device, seed=settings.seed, num_workers=settings.num_workers,
        num_gpus=settings.num_gpus, det_engine=settings.det_engine,
    )


def _run_one(name: str, spec: BenchmarkSpec, backbone: Backbone, settings: SuiteSettings) -> list[ResultRow]:
    config = spec.tiny if settings.tiny else spec.config
    prov = Provenance(
        model=settings.model, checkpoint_sha256=backbone.sha256, benchmark=name,
        config_hash=config_hash(config), seed=settings.seed, git_sha=settings.git_sha,
        pretrain_config=backbone.pretrain_config,
    )
    torch.manual_seed(settings.seed)
    try:
        measurements = spec.run(backbone, settings.data_root, config, _context(name, settings))
    except DatasetMissingError as err:
        return [status_row(prov, "skipped", str(err))]
    except Exception as err:  # noqa: BLE001 - a failed benchmark is a row; the run goes on
        LOG.error("benchmark %s failed:\n%s", name, traceback.format_exc())
        return [status_row(prov, "failed", f"{type(err).__name__}: {err}")]
    if not measurements:
        return [status_row(prov, "failed", "the evaluator returned no measurements")]
    return rows_from_measurements(prov, measurements)


def run_suite(
    names: Sequence[str], backbone: Backbone, settings: SuiteSettings, store: ResultStore,
    registry: Mapping[str, BenchmarkSpec] = EVALUATORS,
) -> list[Outcome]:
    """Run each named benchmark in turn, appending its rows to `store` as soon as it ends."""
    outcomes = []
    for name in names:
        LOG.info("== %s", name)
        start = time.perf_counter()
        rows = _run_one(name, registry[name], backbone, settings)
        store.append(rows)
        statuses = {r.status for r in rows}
        status: Status = "failed" if "failed" in statuses else ("ok" if "ok" in statuses else "skipped")
        reason = next((r.reason for r in rows if r.reason), None)
        outcomes.append(Outcome(name, status, sum(r.status == "ok" for r in rows),
                                time.perf_counter() - start, reason))
    return outcomes


def format_summary(outcomes: Sequence[Outcome]) -> str:
    width = max((len(o.benchmark) for o in outcomes), default=9)
    lines = [f"{'benchmark':<{width}}  status   rows  seconds  reason"]
    for o in outcomes:
        reason = (o.reason or "").splitlines()[0][:100] if o.reason else ""
        lines.append(f"{o.benchmark:<{width}}  {o.status:<7} {o.rows:>5}  {o.seconds:7.1f}  {reason}")
    return "\n".join(lines)
