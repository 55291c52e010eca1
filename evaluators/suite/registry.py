"""The one literal registry of benchmarks: every table of the reference page is covered.

Each entry names the README table it fills, the evaluator's entry function, its reference config
(values from the named source) and the tiny config CI runs. Nothing is resolved from strings at
run time. The keys are the constants of `evaluators.suite.names` (which `reports` imports).
"""

from __future__ import annotations

import dataclasses
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
    table: str  # the README table (reports.tables.TABLE_IDS) its rows fill
    run: RunFn
    config: Any
    tiny: Any
    resources: Resources = Resources()

    def config_for(self, tiny: bool) -> Any:
        return self.tiny if tiny else self.config

    def resources_for(self, tiny: bool) -> Resources:
        """The reference GPU count always; CI-sized time and memory limits for the tiny configs."""
        if not tiny:
            return self.resources
        return dataclasses.replace(self.resources, hours=TINY_HOURS, mem_gb=TINY_MEM_GB, cpus_per_gpu=1)


def _multi(table: str, module: ModuleType, name: str, resources: Resources) -> BenchmarkSpec:
    """Entry of a module serving several benchmarks through its CONFIGS / TINY_CONFIGS."""
    return BenchmarkSpec(table, module.run, module.CONFIGS[name], module.TINY_CONFIGS[name], resources)


EVALUATORS: dict[str, BenchmarkSpec] = {
    N.VOC07_SVM: BenchmarkSpec("voc_svm", voc_svm.run, voc_svm.Config(), voc_svm.TINY, _SVM),
    N.VOC07_LOWSHOT: BenchmarkSpec("voc_svm", voc_lowshot.run, voc_lowshot.Config(), voc_lowshot.TINY, _SVM),
    N.LINEAR_IMAGENET: _multi("linear_imagenet", linear, N.LINEAR_IMAGENET, _LINEAR),
    N.LINEAR_AVGPOOL_IMAGENET: _multi("linear_imagenet", linear_avgpool, N.LINEAR_AVGPOOL_IMAGENET, _LINEAR),
    N.LINEAR_INAT18: _multi("linear_inat18", linear, N.LINEAR_INAT18, _LINEAR),
    N.LINEAR_AVGPOOL_INAT18: _multi("linear_inat18", linear_avgpool, N.LINEAR_AVGPOOL_INAT18, _LINEAR),
    N.LINEAR_PLACES205: _multi("linear_places205", linear, N.LINEAR_PLACES205, _LINEAR),
    N.LINEAR_AVGPOOL_PLACES205: _multi("linear_places205", linear_avgpool, N.LINEAR_AVGPOOL_PLACES205,
                                       _LINEAR),
    N.SEMISUP_1PCT: _multi("semisup", semisup, N.SEMISUP_1PCT, _SEMISUP),
    N.SEMISUP_10PCT: _multi("semisup", semisup, N.SEMISUP_10PCT, _SEMISUP),
    N.DET_VOC0712: BenchmarkSpec("det_voc0712", voc0712.run, voc0712.Config(), voc0712.TINY, _DET),
    N.DET_COCO: BenchmarkSpec("det_coco", coco.run, coco.Config(), coco.TINY, _DET),
    N.SEG_VOC12AUG: BenchmarkSpec("seg_voc12aug", voc12aug.run, voc12aug.Config(), voc12aug.TINY, _SEG_VOC),
    N.SEG_CITYSCAPES: BenchmarkSpec("seg_cityscapes", cityscapes.run, cityscapes.Config(), cityscapes.TINY,
                                    _SEG_CITY),
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
