"""Cityscapes fine annotations with train ids, as mmseg's CityscapesDataset reads them.

mmseg (`mmseg/datasets/cityscapes.py`): img_suffix `_leftImg8bit.png`, seg_map_suffix
`_gtFine_labelTrainIds.png`, folders `leftImg8bit/<split>/<city>/` and `gtFine/<split>/<city>/`.
The `*_labelTrainIds.png` files are made by cityscapesscripts' createTrainIdLabelImgs (or mmseg's
`tools/dataset_converters/cityscapes.py`): values 0..18, 255 = ignore.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from dcbench.datasets.common import DatasetIncompleteError, require, require_all, require_part
from dcbench.datasets.vocseg import SegPair

DATASET = "Cityscapes"
NUM_CLASSES = 19
IGNORE_INDEX = 255
CITYSCAPES_CLASSES: tuple[str, ...] = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
    "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
    "motorcycle", "bicycle",
)
IMG_SUFFIX = "_leftImg8bit.png"
MASK_SUFFIX = "_gtFine_labelTrainIds.png"
LAYOUT = """\
cityscapes/                             (pass this folder: data_root/"cityscapes")
  leftImg8bit/{train,val}/<city>/<city>_<seq>_<frame>_leftImg8bit.png
  gtFine/{train,val}/<city>/<city>_<seq>_<frame>_gtFine_labelTrainIds.png
                                        train ids 0..18, 255 = ignore (cityscapesscripts
                                        createTrainIdLabelImgs / mmseg tools/dataset_converters/cityscapes.py)
"""


def read_cityscapes(root: Path, split: Literal["train", "val"]) -> list[SegPair]:
    """Every image of `split` with its labelTrainIds mask (sorted by city and file name)."""
    root = Path(root)
    if split not in ("train", "val"):
        raise ValueError(f"Cityscapes split must be 'train' or 'val', got {split!r}")
    require(root, DATASET, LAYOUT)
    image_dir = require_part(root / "leftImg8bit" / split, DATASET, LAYOUT)
    mask_dir = require_part(root / "gtFine" / split, DATASET, LAYOUT)
    images = sorted(image_dir.glob(f"*/*{IMG_SUFFIX}"))
    if not images:
        raise DatasetIncompleteError(DATASET, "split(s) without images",
                                     [str(image_dir / "<city>" / f"*{IMG_SUFFIX}")], LAYOUT)
    pairs = [SegPair(image, mask_dir / image.parent.name / f"{image.name[: -len(IMG_SUFFIX)]}{MASK_SUFFIX}")
             for image in images]
    require_all([p.mask for p in pairs], DATASET, f"image(s) of {split} without a mask")
    return pairs
