"""Shared by both detection benchmarks: engine choice, per-trial bookkeeping, result rows.

Two engines: `mmdet` (the page's own configs, mm_engine) and `detectron2` (MoCo's protocol,
d2_engine), chosen per run by `RunContext.det_engine` (run_all's --det-engine): 'auto' takes
detectron2 where it is importable, else mmdet.

Each trial's metrics are written (atomically) to
`ctx.work_dir/<engine>-<config hash>-<checkpoint sha[:12]>/trial<i>/trial_result.json` (not `metrics.json`:
detectron2's JSONWriter logs into that name in its OUTPUT_DIR, the trial folder); a rerun reuses
finished trials and resumes an unfinished one from its checkpoint. Rows: one per trial
(variant `trial<i>`) and their mean (variant `mean`), values in percent.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from dcbench.backbone import Backbone
from dcbench.config import config_hash
from dcbench.context import RunContext
from dcbench.fileio import atomic_write_text
from dcbench.results import Measurement

LOG = logging.getLogger(__name__)
MMDET = "mmdet"
DETECTRON2 = "detectron2"
ENGINES = ("auto", MMDET, DETECTRON2)
D2_INSTALL_HINT = (
    "detectron2 is not installed (it is on no package registry): install it from source, "
    "pip install 'git+https://github.com/facebookresearch/detectron2.git' "
    "(or git clone https://github.com/facebookresearch/detectron2 && pip install -e detectron2; "
    "it builds against the installed torch, see detectron2's INSTALL.md)."
)
TrialFn = Callable[[int, Path], Mapping[str, float]]


def detectron2_available() -> bool:
    return importlib.util.find_spec("detectron2") is not None


def resolve_engine(requested: str, d2_available: bool | None = None) -> str:
    """'mmdet' or 'detectron2' for a run's `det_engine` ('auto': detectron2 where importable).

    Both engines take Sobel backbones (each registers a backbone with the fixed filter in front).
    """
    if requested not in ENGINES:
        raise ValueError(f"unknown detection engine {requested!r}; use one of {', '.join(ENGINES)}")
    if requested == MMDET:
        return MMDET
    have_d2 = detectron2_available() if d2_available is None else d2_available
    if requested == DETECTRON2:
        if not have_d2:
            raise ModuleNotFoundError("--det-engine detectron2 was asked for but " + D2_INSTALL_HINT)
        return DETECTRON2
    return DETECTRON2 if have_d2 else MMDET


def run_dir(ctx: RunContext, engine: str, config: object, backbone: Backbone) -> Path:
    return Path(ctx.work_dir) / f"{engine}-{config_hash(config)}-{backbone.sha256[:12]}"


def _finite_metrics(metrics: Mapping[str, float], names: Sequence[str], where: str) -> dict[str, float]:
    missing = [n for n in names if n not in metrics]
    if missing:
        raise KeyError(f"{where}: metrics {missing} missing from {sorted(metrics)}")
    bad = {n: metrics[n] for n in names if not math.isfinite(float(metrics[n]))}
    if bad:
        raise ValueError(f"{where}: non-finite metrics {bad} (the evaluator found no usable predictions)")
    return {n: float(metrics[n]) for n in names}


TRIAL_RESULT = "trial_result.json"  # a finished trial's metrics; never an engine's own log file name


def run_trials(trials: int, base: Path, names: Sequence[str], trial: TrialFn) -> list[dict[str, float]]:
    """Run (or reuse) trials 0..trials-1; `trial(i, trial_dir)` returns that trial's metrics."""
    if trials < 1:
        raise ValueError(f"trials must be >= 1, got {trials}")
    out = []
    for i in range(trials):
        trial_dir = base / f"trial{i}"
        done = trial_dir / TRIAL_RESULT
        if done.exists():
            LOG.info("reusing finished detection trial %s", done)
            out.append(_finite_metrics(json.loads(done.read_text(encoding="utf-8")), names, str(done)))
            continue
        trial_dir.mkdir(parents=True, exist_ok=True)
        metrics = {k: float(v) for k, v in trial(i, trial_dir).items()}
        out.append(_finite_metrics(metrics, names, f"trial {i} in {trial_dir}"))
        atomic_write_text(done, json.dumps(metrics, indent=1, sort_keys=True) + "\n")
    return out


def trial_rows(dataset: str, names: Sequence[str], per_trial: Sequence[Mapping[str, float]],
               engine: str) -> list[Measurement]:
    """One row per (trial, metric) and the mean over trials (variant 'mean')."""
    rows = [Measurement(dataset=dataset, metric=n, value=float(m[n]), variant=f"trial{i}", engine=engine)
            for i, m in enumerate(per_trial) for n in names]
    rows += [Measurement(dataset=dataset, metric=n, variant="mean", engine=engine,
                         value=sum(float(m[n]) for m in per_trial) / len(per_trial)) for n in names]
    return rows
