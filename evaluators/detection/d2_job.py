"""What the detectron2 engine hands to the processes detectron2's `launch` starts: the job description.

A leaf module (no detectron2, nothing of ours beyond dcbench.fileio): d2_engine builds a `D2Job`
and launches d2_worker.main with it, d2_worker reads it and writes the results back with
`write_results`; both import this module and neither imports the other at module level.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from dcbench.fileio import atomic_write_text

EXTRA_NORM_HEAD = "Res5ROIHeadsExtraNorm"  # MoCo's C4 box head (registered by d2_modules)
SOBEL_C4_BACKBONE = "build_sobel_resnet_backbone"  # ours, registered by d2_modules
SOBEL_FPN_BACKBONE = "build_sobel_resnet_fpn_backbone"
C4_MODEL = "faster_rcnn_R_50_C4"  # adapters.detectron2 MODEL_PREFIXES / MODEL_BACKBONE keys
FPN_MODEL = "mask_rcnn_R_50_FPN"


@dataclass(frozen=True)
class D2Dataset:
    """A dataset to register in detectron2's catalogs (picklable: sent to launched workers)."""

    name: str
    kind: Literal["voc", "coco"]
    root: str  # VOC<year> folder, or the COCO image folder
    split: str  # VOC split, or the COCO instances json
    year: int


@dataclass(frozen=True)
class D2Job:
    cfg: dict[str, Any]
    datasets: tuple[D2Dataset, ...]
    results_path: str
    num_gpus: int
    model_name: str = C4_MODEL  # which detectron2 model the weights are checked against after loading


def plain(value: Any) -> Any:
    """JSON-ready copy of an evaluator output (OrderedDicts, numpy scalars)."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if hasattr(value, "item"):
        return value.item()
    return value


def setup_args(num_gpus: int) -> argparse.Namespace:
    """The argument namespace detectron2's default_setup logs (we have no command line of our own)."""
    return argparse.Namespace(config_file="", eval_only=False, resume=True, num_gpus=num_gpus, opts=[])


def write_results(path: str, results: Mapping[str, Any]) -> None:
    atomic_write_text(path, json.dumps(plain(results), indent=1, sort_keys=True) + "\n")
