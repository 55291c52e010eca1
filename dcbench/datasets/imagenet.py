"""ImageNet (ILSVRC-2012) in class folders, plus the 1% / 10% semi-supervised subsets.

Class index = position of the wnid in sorted order (the caffe `synsets.txt` order that
MMSelfSup's `meta/train_labeled.txt` uses).  Subset lists follow MMSelfSup
(`configs/benchmarks/classification/imagenet/imagenet_{1,10}percent/*`: ann_file
`meta/train_{1,10}percent.txt`, data_prefix `train/`); its converter
`tools/dataset_converters/convert_imagenet_subsets.py` turns SimCLR's
`imagenet_subsets/{1,10}percent.txt` (bare file names `n01440764_10026.JPEG`) into lines
`n01440764/n01440764_10026.JPEG 0`.  Both line forms are accepted here.

A split folder without class sub-folders (the flat `val/ILSVRC2012_val_*.JPEG` of the tarball)
is read through `meta/<split>.txt` ('<file> <label>', caffe `get_ilsvrc_aux.sh` format, the
`meta/val.txt` MMSelfSup's `_base_/datasets/imagenet.py` uses); class names still come from train/.

A class folder of train/ without images is an error naming it (it would otherwise become an extra
class and shift the labels of every class after it); every file a list names must exist.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import numpy as np

from dcbench.datasets.common import (
    DatasetIncompleteError,
    ImageList,
    is_image,
    read_lines,
    require,
    require_all,
    require_part,
)

DATASET = "ImageNet"
SUBSETS = ("1percent", "10percent")
LAYOUT = """\
imagenet/                               (pass this folder: data_root/"imagenet")
  train/<wnid>/<wnid>_<n>.JPEG          1000 class folders (e.g. n01440764/)
  val/<wnid>/ILSVRC2012_val_<n>.JPEG    validation images sorted into the same class folders,
                                        or flat val/*.JPEG + meta/val.txt '<file> <label>' (caffe aux)
  meta/train_1percent.txt               '<wnid>/<file> <label>' per line (MMSelfSup format;
  meta/train_10percent.txt               SimCLR's bare '<file>' lines are accepted too)
"""


def imagenet_classes(root: Path) -> tuple[str, ...]:
    """Sorted wnid folder names of train/ (val/ if train/ is absent)."""
    root = Path(root)
    base = root / "train" if (root / "train").is_dir() else root / "val"
    require_part(base, DATASET, LAYOUT)
    classes = tuple(sorted(e.name for e in os.scandir(base) if e.is_dir()))
    if not classes:
        raise DatasetIncompleteError(DATASET, "split folder(s) without class folders", [str(base)], LAYOUT)
    empty = [str(base / wnid) for wnid in classes if not _has_image(base / wnid)]
    if empty:
        raise DatasetIncompleteError(
            DATASET, f"of {len(classes)} class folder(s) without images (each would count as a class)", empty
        )
    return classes


def _has_image(folder: Path) -> bool:
    with os.scandir(folder) as entries:
        return any(e.is_file() and is_image(Path(e.name)) for e in entries)


def _scan_split(split_dir: Path, classes: tuple[str, ...]) -> tuple[list[Path], list[int]]:
    paths: list[Path] = []
    labels: list[int] = []
    for index, wnid in enumerate(classes):
        class_dir = split_dir / wnid
        if not class_dir.is_dir():
            continue
        files = sorted(e.name for e in os.scandir(class_dir) if e.is_file() and is_image(Path(e.name)))
        paths.extend(class_dir / name for name in files)
        labels.extend([index] * len(files))
    return paths, labels


def _read_flat_list(root: Path, split: str, num_classes: int) -> tuple[list[Path], list[int]]:
    source = root / "meta" / f"{split}.txt"
    paths, labels = [], []
    for line in read_lines(source, DATASET, LAYOUT):
        parts = line.split()
        if len(parts) != 2 or not 0 <= int(parts[1]) < num_classes:
            raise ValueError(f"{source}: expected '<file> <label in 0..{num_classes - 1}>', got {line!r}")
        paths.append(root / split / parts[0])
        labels.append(int(parts[1]))
    return paths, labels


def _parse_subset_line(line: str, index_of: dict[str, int], source: Path) -> tuple[str, int]:
    parts = line.split()
    name = parts[0]
    rel = name if "/" in name else f"{name.split('_')[0]}/{name}"
    wnid = rel.split("/")[0]
    if wnid not in index_of:
        raise ValueError(f"{source}: class {wnid!r} of line {line!r} has no folder under train/")
    label = index_of[wnid]
    if len(parts) > 1 and int(parts[1]) != label:
        raise ValueError(
            f"{source}: line {line!r} gives label {parts[1]} but {wnid} is class {label} in "
            "sorted-wnid order; the list was written for another class order"
        )
    return rel, label


def _read_subset(root: Path, subset: str, classes: tuple[str, ...]) -> tuple[list[Path], list[int]]:
    if subset not in SUBSETS:
        raise ValueError(f"unknown ImageNet subset {subset!r}; expected one of {SUBSETS}")
    source = root / "meta" / f"train_{subset}.txt"
    index_of = {wnid: i for i, wnid in enumerate(classes)}
    rows = [_parse_subset_line(line, index_of, source) for line in read_lines(source, DATASET, LAYOUT)]
    return [root / "train" / rel for rel, _ in rows], [label for _, label in rows]


def read_imagenet(
    root: Path,
    split: Literal["train", "val"],
    subset: Literal["1percent", "10percent"] | None = None,
) -> ImageList:
    """Images and sorted-wnid labels of one split; `subset` picks a semi-supervised train list."""
    root = Path(root)
    if split not in ("train", "val"):
        raise ValueError(f"ImageNet split must be 'train' or 'val', got {split!r}")
    if subset is not None and split != "train":
        raise ValueError("ImageNet subsets exist only for split='train'")
    require(root, DATASET, LAYOUT)
    split_dir = require_part(root / split, DATASET, LAYOUT)
    classes = imagenet_classes(root)
    listed = subset is not None
    if subset is None:
        paths, labels = _scan_split(split_dir, classes)
        if not paths and (root / "meta" / f"{split}.txt").is_file():
            paths, labels = _read_flat_list(root, split, len(classes))
            listed = True
    else:
        paths, labels = _read_subset(root, subset, classes)
    if not paths:
        pattern = str(split_dir / "<wnid>" / "*.JPEG")
        raise DatasetIncompleteError(DATASET, "split(s) without images", [pattern], LAYOUT)
    if listed:  # scanned files exist by construction; listed ones must be checked
        require_all(paths, DATASET)
    return ImageList(tuple(paths), np.asarray(labels, dtype=np.int64), classes)
