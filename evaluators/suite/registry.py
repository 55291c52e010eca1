"""The one literal registry of benchmarks: every table of the reference page is covered.

Each entry names the README table it fills, the evaluator's entry function, its reference config
(values from the named source) and the tiny config CI runs. Nothing is resolved from strings at
run time. The keys are the constants of `evaluators.suite.names` (which `reports` imports).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
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
from evaluators.suite import names as N
from evaluators.svm import lowshot as voc_lowshot
from evaluators.svm import voc07 as voc_svm

RunFn = Callable[[Backbone, Path, Any, RunContext], list[Measurement]]


@dataclass(frozen=True)
class BenchmarkSpec:
    table: str  # the README table (reports.tables.TABLE_IDS) its rows fill
    run: RunFn
    config: Any
    tiny: Any


def _multi(table: str, module: ModuleType, name: str) -> BenchmarkSpec:
    """Entry of a module serving several benchmarks through its CONFIGS / TINY_CONFIGS."""
    return BenchmarkSpec(table, module.run, module.CONFIGS[name], module.TINY_CONFIGS[name])


EVALUATORS: dict[str, BenchmarkSpec] = {
    N.VOC07_SVM: BenchmarkSpec("voc_svm", voc_svm.run, voc_svm.Config(), voc_svm.TINY),
    N.VOC07_LOWSHOT: BenchmarkSpec("voc_svm", voc_lowshot.run, voc_lowshot.Config(), voc_lowshot.TINY),
    N.LINEAR_IMAGENET: _multi("linear_imagenet", linear, N.LINEAR_IMAGENET),
    N.LINEAR_AVGPOOL_IMAGENET: _multi("linear_imagenet", linear_avgpool, N.LINEAR_AVGPOOL_IMAGENET),
    N.LINEAR_INAT18: _multi("linear_inat18", linear, N.LINEAR_INAT18),
    N.LINEAR_AVGPOOL_INAT18: _multi("linear_inat18", linear_avgpool, N.LINEAR_AVGPOOL_INAT18),
    N.LINEAR_PLACES205: _multi("linear_places205", linear, N.LINEAR_PLACES205),
    N.LINEAR_AVGPOOL_PLACES205: _multi("linear_places205", linear_avgpool, N.LINEAR_AVGPOOL_PLACES205),
    N.SEMISUP_1PCT: _multi("semisup", semisup, N.SEMISUP_1PCT),
    N.SEMISUP_10PCT: _multi("semisup", semisup, N.SEMISUP_10PCT),
    N.DET_VOC0712: BenchmarkSpec("det_voc0712", voc0712.run, voc0712.Config(), voc0712.TINY),
    N.DET_COCO: BenchmarkSpec("det_coco", coco.run, coco.Config(), coco.TINY),
    N.SEG_VOC12AUG: BenchmarkSpec("seg_voc12aug", voc12aug.run, voc12aug.Config(), voc12aug.TINY),
    N.SEG_CITYSCAPES: BenchmarkSpec("seg_cityscapes", cityscapes.run, cityscapes.Config(), cityscapes.TINY),
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
