"""Readers for the real on-disk dataset layouts (one module per dataset).

Every reader takes the dataset's own root (e.g. `data_root / "imagenet"`) and raises
`DatasetMissingError` (a FileNotFoundError) naming the missing path and the expected layout when
the dataset's root is absent, and `DatasetIncompleteError` (a ValueError) listing what is missing or
malformed when the root is there.
`dcbench.tiny` writes small synthetic copies of all these layouts for CI.
"""

from dcbench.datasets.cityscapes import read_cityscapes
from dcbench.datasets.coco import coco_paths
from dcbench.datasets.common import (
    DatasetIncompleteError,
    DatasetMissingError,
    ImageList,
    ImageListDataset,
    load_rgb,
)
from dcbench.datasets.imagenet import read_imagenet
from dcbench.datasets.inat import read_inat18
from dcbench.datasets.places import read_places205
from dcbench.datasets.voc import VOC_CLASSES, DetRecord, MultiLabelList, read_voc_cls, read_voc_det
from dcbench.datasets.vocseg import SegPair, read_voc_aug_seg

__all__ = [
    "VOC_CLASSES",
    "DatasetIncompleteError",
    "DatasetMissingError",
    "DetRecord",
    "ImageList",
    "ImageListDataset",
    "MultiLabelList",
    "SegPair",
    "coco_paths",
    "load_rgb",
    "read_cityscapes",
    "read_imagenet",
    "read_inat18",
    "read_places205",
    "read_voc_aug_seg",
    "read_voc_cls",
    "read_voc_det",
]
