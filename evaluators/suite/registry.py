"""The one literal registry of benchmarks: every table of the reference page is covered.

Each entry names the evaluator's entry function, its reference config (values from the named
source) and the tiny config CI runs. Nothing is resolved from strings at run time.
"""

from __future__ import annotations

import dataclasses
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
class Resources:
    """What one run of a benchmark asks a launcher for (the reference GPU count; a SLURM job's limits).

    `gpus` is the reference world size; the protocols hold the total batch on any count (a larger
    per-GPU batch on fewer GPUs), so it is what a launcher asks for, not a requirement.
    """

    gpus: int = 1
    hours: float = 24.0  # SLURM time limit of one job; a job that reaches it requeues and resumes
    mem_gb: int = 64  # host memory per job
    cpus_per_gpu: int = 8
    source: str = ""
    # "torchrun": the launcher starts one process per GPU (DDP); "engine": one process whose engine
    # (detectron2's `launch`) starts its own worker per GPU from `--num-gpus`
    spawn: str = "torchrun"


TINY_HOURS, TINY_MEM_GB = 0.25, 4
_SVM = Resources(1, 12.0, 128, 8, "one GPU for feature extraction; the SVMs run on the host")
_LINEAR = Resources(8, 24.0, 128, 8, "MMSelfSup mhead linear configs: 8 GPUs x 32")
_SEMISUP = Resources(4, 24.0, 128, 8, "MMSelfSup imagenet_1percent/10percent configs: 4 GPUs x 64")
_DET = Resources(8, 24.0, 256, 8, "MoCo detection configs: 8 GPUs x 2 images", spawn="engine")
_SEG_VOC = Resources(4, 24.0, 128, 8, "MMSelfSup fcn_r50-d8 voc12aug config: 4 GPUs x 4")
_SEG_CITY = Resources(4, 24.0, 128, 8, "MMSelfSup fcn_r50-d8 cityscapes config: 4 GPUs x 2")


@dataclass(frozen=True)
class BenchmarkSpec:
    table: str
    run: RunFn | None
    config: Any
    tiny: Any
    note: str = field(default="")
    resources: Resources = field(default=Resources())

    def config_for(self, tiny: bool) -> Any:
        return self.tiny if tiny else self.config

    def resources_for(self, tiny: bool) -> Resources:
        """The reference GPU count always; CI-sized time and memory limits for the tiny configs."""
        if not tiny:
            return self.resources
        return dataclasses.replace(self.resources, hours=TINY_HOURS, mem_gb=TINY_MEM_GB, cpus_per_gpu=1)


def _pending(table: str, note: str) -> BenchmarkSpec:
    return BenchmarkSpec(table=table, run=None, config=Pending(note), tiny=Pending(note), note=note)


def _multi(table: str, module: ModuleType, name: str, resources: Resources) -> BenchmarkSpec:
    """Entry of a module serving several benchmarks through its CONFIGS / TINY_CONFIGS."""
    return BenchmarkSpec(table, module.run, module.CONFIGS[name], module.TINY_CONFIGS[name],
                         resources=resources)


EVALUATORS: dict[str, BenchmarkSpec] = {
    "voc07_svm": BenchmarkSpec("voc_svm", voc_svm.run, voc_svm.Config(), voc_svm.TINY, resources=_SVM),
    "voc07_lowshot": BenchmarkSpec("voc_svm", voc_lowshot.run, voc_lowshot.Config(), voc_lowshot.TINY,
                                   resources=_SVM),
    "linear_imagenet": _multi("linear_imagenet", linear, "linear_imagenet", _LINEAR),
    "linear_avgpool_imagenet": _multi("linear_imagenet", linear_avgpool, "linear_avgpool_imagenet", _LINEAR),
    "linear_inat18": _multi("linear_inat18", linear, "linear_inat18", _LINEAR),
    "linear_avgpool_inat18": _multi("linear_inat18", linear_avgpool, "linear_avgpool_inat18", _LINEAR),
    "linear_places205": _multi("linear_places205", linear, "linear_places205", _LINEAR),
    "linear_avgpool_places205": _multi("linear_places205", linear_avgpool, "linear_avgpool_places205",
                                       _LINEAR),
    "semisup_1pct": _multi("semisup", semisup, "semisup_1pct", _SEMISUP),
    "semisup_10pct": _multi("semisup", semisup, "semisup_10pct", _SEMISUP),
    "det_voc0712": BenchmarkSpec("det_voc0712", voc0712.run, voc0712.Config(), voc0712.TINY, resources=_DET),
    "det_coco": BenchmarkSpec("det_coco", coco.run, coco.Config(), coco.TINY, resources=_DET),
    "seg_voc12aug": BenchmarkSpec("seg_voc12aug", voc12aug.run, voc12aug.Config(), voc12aug.TINY,
                                  resources=_SEG_VOC),
    "seg_cityscapes": BenchmarkSpec("seg_cityscapes", cityscapes.run, cityscapes.Config(), cityscapes.TINY,
                                    resources=_SEG_CITY),
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
