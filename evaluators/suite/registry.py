"""The one literal registry of benchmarks: every table of the reference page is covered.

Each entry names the evaluator's entry function, its reference config (values from the named
source) and the tiny config CI runs. Nothing is resolved from strings at run time.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from dcbench.backbone import Backbone
from dcbench.context import RunContext
from dcbench.results import Measurement
from evaluators.classification import avgpool as linear_avgpool
from evaluators.classification import linear, semisup
from evaluators.detection import coco, voc0712
from evaluators.segmentation import cityscapes, voc12aug
from evaluators.svm import lowshot as voc_lowshot
from evaluators.svm import voc07 as voc_svm

RunFn = Callable[[Backbone, Path, Any, RunContext], list[Measurement]]


@dataclass(frozen=True)
class Pending:
    """Config placeholder of a benchmark that is not implemented yet."""

    note: str


@dataclass(frozen=True)
class BenchmarkSpec:
    table: str
    run: RunFn | None
    config: Any
    tiny: Any
    note: str = field(default="")


def _pending(table: str, note: str) -> BenchmarkSpec:
    return BenchmarkSpec(table=table, run=None, config=Pending(note), tiny=Pending(note), note=note)


def _multi(table: str, module: ModuleType, name: str) -> BenchmarkSpec:
    """Entry of a module serving several benchmarks through its CONFIGS / TINY_CONFIGS."""
    return BenchmarkSpec(table, module.run, module.CONFIGS[name], module.TINY_CONFIGS[name])


EVALUATORS: dict[str, BenchmarkSpec] = {
    "voc07_svm": BenchmarkSpec("voc_svm", voc_svm.run, voc_svm.Config(), voc_svm.TINY),
    "voc07_lowshot": BenchmarkSpec("voc_svm", voc_lowshot.run, voc_lowshot.Config(), voc_lowshot.TINY),
    "linear_imagenet": _multi("linear_imagenet", linear, "linear_imagenet"),
    "linear_avgpool_imagenet": _multi("linear_imagenet", linear_avgpool, "linear_avgpool_imagenet"),
    "linear_inat18": _multi("linear_inat18", linear, "linear_inat18"),
    "linear_avgpool_inat18": _multi("linear_inat18", linear_avgpool, "linear_avgpool_inat18"),
    "linear_places205": _multi("linear_places205", linear, "linear_places205"),
    "linear_avgpool_places205": _multi("linear_places205", linear_avgpool, "linear_avgpool_places205"),
    "semisup_1pct": _multi("semisup", semisup, "semisup_1pct"),
    "semisup_10pct": _multi("semisup", semisup, "semisup_10pct"),
    "det_voc0712": BenchmarkSpec("det_voc0712", voc0712.run, voc0712.Config(), voc0712.TINY),
    "det_coco": BenchmarkSpec("det_coco", coco.run, coco.Config(), coco.TINY),
    "seg_voc12aug": BenchmarkSpec("seg_voc12aug", voc12aug.run, voc12aug.Config(), voc12aug.TINY),
    "seg_cityscapes": BenchmarkSpec("seg_cityscapes", cityscapes.run, cityscapes.Config(), cityscapes.TINY),
}


class UnknownBenchmarkError(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


def resolve(names: Sequence[str]) -> list[str]:
    """Validate benchmark names ('all' expands to every one), keeping registry order."""
    wanted = list(EVALUATORS) if list(names) in (["all"], []) else list(dict.fromkeys(names))
    for name in wanted:
        if name not in EVALUATORS:
            close = difflib.get_close_matches(name, list(EVALUATORS), n=3, cutoff=0.4)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise UnknownBenchmarkError(
                f"unknown benchmark {name!r}{hint} Known: {', '.join(EVALUATORS)}"
            )
    return wanted
