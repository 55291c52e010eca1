"""COCO 2017 detection / instance segmentation: image folders and `instances_*.json`."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from dcbench.datasets.common import require, require_part

DATASET = "COCO2017"
LAYOUT = """\
coco/                                       (pass this folder: data_root/"coco")
  train2017/<12-digit id>.jpg
  val2017/<12-digit id>.jpg
  annotations/instances_train2017.json      COCO format: images, annotations (bbox [x,y,w,h],
  annotations/instances_val2017.json          area, iscrowd, polygon/RLE segmentation), categories
"""


def coco_paths(root: Path, split: Literal["train", "val"]) -> tuple[Path, Path]:
    """(image_dir, instances json) of `split`, both checked to exist."""
    root = Path(root)
    if split not in ("train", "val"):
        raise ValueError(f"COCO split must be 'train' or 'val', got {split!r}")
    require(root, DATASET, LAYOUT)
    image_dir = require_part(root / f"{split}2017", DATASET, LAYOUT)
    ann = require_part(root / "annotations" / f"instances_{split}2017.json", DATASET, LAYOUT)
    return image_dir, ann
