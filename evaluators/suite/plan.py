"""What a run still has to do: the configs (with `--set` overrides) and the store's finished cells.

A cell is finished when the newest outcome recorded for (checkpoint sha256, benchmark, config
hash, benchmark version) is ok: its rows were appended in one write when the benchmark ended, so
ok rows there are its complete set. The config hash is part of the key, so a tiny run never counts
as a finished reference run (nor the other way round). Works over `ResultStore.read()`'s frame.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from dcbench import BENCHMARK_VERSION
from dcbench.config import ConfigError, config_hash, from_dict
from evaluators.suite.registry import BenchmarkSpec, Resources


@dataclass(frozen=True)
class Job:
    """One benchmark to run: its config (tiny or reference, overrides applied) and what it asks for."""

    name: str
    config: Any
    config_hash: str
    resources: Resources


def parse_overrides(items: Sequence[str], names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """`NAME.field=VALUE` items (VALUE as JSON, else a string) -> {NAME: {field: value}}."""
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        target, sep, raw = item.partition("=")
        name, dot, key = target.partition(".")
        if not sep or not dot or not key:
            raise ConfigError(f"--set {item!r}: expected NAME.field=VALUE, e.g. linear_imagenet.epochs=6")
        if name not in names:
            raise ConfigError(f"--set {item!r}: {name!r} is not a requested benchmark ({list(names)})")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        out.setdefault(name, {})[key] = value
    return out


def apply_overrides(config: Any, changes: Mapping[str, Any], where: str) -> Any:
    """A copy of `config` with `changes` converted to the field types; unknown keys raise."""
    if not changes:
        return config
    current = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
    return from_dict(type(config), {**current, **changes}, where=where)


def make_jobs(names: Sequence[str], registry: Mapping[str, BenchmarkSpec], tiny: bool,
              overrides: Sequence[str] = ()) -> list[Job]:
    changes = parse_overrides(overrides, names)
    jobs = []
    for name in names:
        spec = registry[name]
        config = apply_overrides(spec.config_for(tiny), changes.get(name, {}), name)
        jobs.append(Job(name, config, config_hash(config), spec.resources_for(tiny)))
    return jobs


def finished(frame: pd.DataFrame, checkpoint_sha256: str, benchmark: str, digest: str,
             version: str = BENCHMARK_VERSION) -> bool:
    """Whether the store's newest outcome for this (checkpoint, benchmark, config, version) is ok."""
    if frame.empty:
        return False
    rows = frame[(frame["checkpoint_sha256"] == checkpoint_sha256) & (frame["benchmark"] == benchmark)
                 & (frame["config_hash"] == digest) & (frame["benchmark_version"] == version)]
    if rows.empty:
        return False
    newest = rows[rows["time"] == rows["time"].max()]
    return bool((newest["status"] == "ok").all())


def ok_rows(frame: pd.DataFrame, checkpoint_sha256: str, benchmark: str, digest: str,
            since: str = "") -> pd.DataFrame:
    """The (checkpoint, benchmark, config) rows written at or after the ISO time `since`."""
    if frame.empty:
        return frame
    return frame[(frame["checkpoint_sha256"] == checkpoint_sha256) & (frame["benchmark"] == benchmark)
                 & (frame["config_hash"] == digest) & (frame["time"] >= since)]


def split_finished(jobs: Sequence[Job], frame: pd.DataFrame, checkpoint_sha256: str,
                   force: Sequence[str] = ()) -> tuple[list[Job], list[Job]]:
    """(to run, already finished); `force` names (or 'all') always run."""
    forced = {j.name for j in jobs} if "all" in force else set(force)
    done = [j for j in jobs
            if j.name not in forced and finished(frame, checkpoint_sha256, j.name, j.config_hash)]
    todo = [j for j in jobs if j not in done]
    return todo, done
