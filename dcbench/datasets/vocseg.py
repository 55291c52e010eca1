"""PASCAL VOC 2012 + SBD ("aug") semantic segmentation, as mmsegmentation lays it out.

After mmseg's `tools/dataset_converters/voc_aug.py`, VOC2012 holds `SegmentationClassAug/`
(SBD masks as label PNGs, values 0..20) and `ImageSets/Segmentation/aug.txt` (SBD images in
neither VOC train nor val).  mmseg's `pascal_voc12_aug.py` trains on train.txt with
`SegmentationClass/` concatenated with aug.txt with `SegmentationClassAug/` (10,582 images)
and validates on val.txt with `SegmentationClass/` (palette PNGs; index 255 = boundary/ignore).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from dcbench.datasets.common import DatasetIncompleteError, read_lines, require, require_all, require_part

DATASET = "VOC2012aug"
NUM_CLASSES = 21  # background + the 20 VOC classes
IGNORE_INDEX = 255
LAYOUT = """\
VOCdevkit/VOC2012/                      (pass this folder: data_root/"VOCdevkit"/"VOC2012")
  JPEGImages/<id>.jpg
  SegmentationClass/<id>.png            palette PNG, indices 0..20, 255 = boundary/ignore
  SegmentationClassAug/<id>.png         SBD masks as label PNGs (mmseg voc_aug.py output)
  ImageSets/Segmentation/train.txt      VOC train ids   (masks in SegmentationClass)
  ImageSets/Segmentation/aug.txt        SBD-only ids    (masks in SegmentationClassAug)
  ImageSets/Segmentation/val.txt        VOC val ids     (masks in SegmentationClass)
"""


@dataclass(frozen=True)
class SegPair:
    """An RGB image and its label-index mask (read with PIL: palette indices, not colours)."""

    image: Path
    mask: Path


def _pairs(root: Path, list_name: str, mask_dir: str) -> list[SegPair]:
    ids = [line.split()[0] for line in read_lines(root / "ImageSets" / "Segmentation" / list_name,
                                                  DATASET, LAYOUT)]
    require_part(root / mask_dir, DATASET, LAYOUT)
    return [SegPair(root / "JPEGImages" / f"{i}.jpg", root / mask_dir / f"{i}.png") for i in ids]


def read_voc_aug_seg(root: Path, split: Literal["train", "val"]) -> list[SegPair]:
    """train: train.txt (SegmentationClass) + aug.txt (SegmentationClassAug); val: val.txt."""
    root = Path(root)
    require(root, DATASET, LAYOUT)
    if split == "train":
        pairs = _pairs(root, "train.txt", "SegmentationClass")
        pairs += _pairs(root, "aug.txt", "SegmentationClassAug")
    elif split == "val":
        pairs = _pairs(root, "val.txt", "SegmentationClass")
    else:
        raise ValueError(f"VOC aug segmentation split must be 'train' or 'val', got {split!r}")
    if not pairs:
        lists = str(root / "ImageSets" / "Segmentation")
        raise DatasetIncompleteError(DATASET, "empty image list(s)", [lists], LAYOUT)
    files = [p.image for p in pairs] + [p.mask for p in pairs]
    require_all(files, DATASET, "listed image(s) / mask(s) missing")
    return pairs
