"""Run a list of registered benchmarks on one backbone, recording every outcome as rows.

A benchmark whose dataset is missing is recorded as `skipped` with the expected layout; one that
raises is recorded as `failed` with the error, and the others still run. Under torchrun every rank
runs the benchmark (the protocols join the process group) and only rank 0 writes rows. Each
benchmark's scratch folder is keyed by checkpoint sha256 and config hash (`state_dir`), so two
checkpoints or two configs never share or overwrite each other's resume state.
"""

from __future__ import annotations

import logging
import os
import time
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


def world() -> tuple[int, int]:
    """(rank, world size) of this process as torchrun / submitit export them; (0, 1) alone."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def benchmark_dir(work_dir: Path, name: str) -> Path:
    """Benchmark `name`'s own folder under the run's work folder (its plots; the parent of its states)."""
    return work_dir / "benchmarks" / name


def state_dir(work_dir: Path, name: str, checkpoint_sha256: str, config_digest: str) -> Path:
    """The benchmark's own scratch folder for one (checkpoint, config) (its ctx.work_dir): resume state
    lives here."""
    return benchmark_dir(work_dir, name) / f"{checkpoint_sha256[:16]}-{config_digest}"


def _context(name: str, settings: SuiteSettings, prov: Provenance) -> RunContext:
    return RunContext(
        work_dir=state_dir(settings.work_dir, name, prov.checkpoint_sha256, prov.config_hash),
        cache_dir=settings.work_dir / "feature_cache",
        device=settings.device, seed=settings.seed, num_workers=settings.num_workers,
        num_gpus=settings.num_gpus, det_engine=settings.det_engine,
    )


def provenance(name: str, spec: BenchmarkSpec, backbone: Backbone, settings: SuiteSettings,
               config: Any = None) -> Provenance:
    """Provenance of benchmark `name` run with `config` (default: its tiny or reference config)."""
    config = spec.config_for(settings.tiny) if config is None else config
    return Provenance(
        model=settings.model, checkpoint_sha256=backbone.sha256, benchmark=name,
        config_hash=config_hash(config), seed=settings.seed, git_sha=settings.git_sha,
        pretrain_config=backbone.pretrain_config, world_size=world()[1],
        accum_steps=int(getattr(config, "accum_steps", 1)),
    )


def record_status(name: str, spec: BenchmarkSpec, backbone: Backbone, settings: SuiteSettings,
                  store: ResultStore, status: Status, reason: str, config: Any = None) -> Outcome:
    """Record a benchmark decided before running (e.g. by the dataset preflight) as one status row
    (rank 0 writes it)."""
    if world()[0] == 0:
        store.append([status_row(provenance(name, spec, backbone, settings, config), status, reason)])
    return Outcome(name, status, 0, 0.0, reason)


def run_one(name: str, spec: BenchmarkSpec, backbone: Backbone, settings: SuiteSettings,
            config: Any = None) -> list[ResultRow]:
    """Run one benchmark (with `config`, default: its tiny or reference config) into rows."""
    config = spec.config_for(settings.tiny) if config is None else config
    prov = provenance(name, spec, backbone, settings, config)
    torch.manual_seed(settings.seed)
    try:
        measurements = spec.run(backbone, settings.data_root, config, _context(name, settings, prov))
    except DatasetMissingError as err:
        return [status_row(prov, "skipped", str(err))]
    except Exception as err:  # noqa: BLE001 - a failed benchmark is a row; the run goes on
        first = next(iter(str(err).splitlines()), "")
        LOG.error("benchmark %s failed: %s: %s", name, type(err).__name__, first)
        LOG.debug("traceback of benchmark %s:\n%s", name, traceback.format_exc())  # log file, --verbose
        return [status_row(prov, "failed", f"{type(err).__name__}: {err}")]
    if not measurements:
        return [status_row(prov, "failed", "the evaluator returned no measurements")]
    return rows_from_measurements(prov, measurements)


def run_suite(
    names: Sequence[str], backbone: Backbone, settings: SuiteSettings, store: ResultStore,
    registry: Mapping[str, BenchmarkSpec] = EVALUATORS, configs: Mapping[str, Any] | None = None,
) -> list[Outcome]:
    """Run each named benchmark in turn; rank 0 appends its rows to `store` as soon as it ends."""
    outcomes = []
    for name in names:
        LOG.info("== %s", name)
        start = time.perf_counter()
        rows = run_one(name, registry[name], backbone, settings, (configs or {}).get(name))
        if world()[0] == 0:
            store.append(rows)
        outcomes.append(outcome_of(name, rows, time.perf_counter() - start))
    return outcomes


def outcome_of(name: str, rows: Sequence[ResultRow], seconds: float) -> Outcome:
    """One benchmark's outcome from its rows: failed if any row failed, ok if any is ok, else skipped."""
    statuses = {r.status for r in rows}
    status: Status = "failed" if "failed" in statuses else ("ok" if "ok" in statuses else "skipped")
    reason = next((r.reason for r in rows if r.reason), None)
    return Outcome(name, status, sum(r.status == "ok" for r in rows), seconds, reason)


def format_summary(outcomes: Sequence[Outcome]) -> str:
    width = max((len(o.benchmark) for o in outcomes), default=9)
    lines = [f"{'benchmark':<{width}}  status   rows  seconds  reason"]
    for o in outcomes:
        reason = (o.reason or "").splitlines()[0][:100] if o.reason else ""
        lines.append(f"{o.benchmark:<{width}}  {o.status:<7} {o.rows:>5}  {o.seconds:7.1f}  {reason}")
    return "\n".join(lines)
