"""Places205, laid out as the official download unpacks (and as MMSelfSup reads it).

Source: MMSelfSup `configs/benchmarks/classification/_base_/datasets/places205.py` (v0.7 onwards
and 1.x): data_root `data/Places205/`, ann_file `trainvalsplit_places205/{train,val}_places205.csv`,
images under `data/vision/torralba/deeplearning/images256/` (imagesPlaces205_resize.tar.gz).
Despite the .csv suffix the lists are space separated: '<letter>/<category>/<file>.jpg <label>',
labels 0..204.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np

from dcbench.datasets.common import (
    DatasetIncompleteError,
    ImageList,
    read_lines,
    require,
    require_all,
    require_part,
)

DATASET = "Places205"
IMAGE_DIR = Path("data/vision/torralba/deeplearning/images256")
LAYOUT = """\
places205/                              (pass this folder: data_root/"places205")
  trainvalsplit_places205/train_places205.csv   '<letter>/<category>/<file>.jpg <label>' per line
  trainvalsplit_places205/val_places205.csv     (space separated, labels 0..204)
  data/vision/torralba/deeplearning/images256/<letter>/<category>/<file>.jpg
"""


def _class_name(rel: str) -> str:
    parts = Path(rel).parent.parts  # ('a', 'abbey') or ('f', 'field', 'cultivated')
    return "/".join(parts[1:]) if len(parts) > 1 else "/".join(parts)


def read_places205(root: Path, split: Literal["train", "val"]) -> ImageList:
    """Images of `split` and their 0..204 labels; class names from the category folders."""
    root = Path(root)
    if split not in ("train", "val"):
        raise ValueError(f"Places205 split must be 'train' or 'val', got {split!r}")
    require(root, DATASET, LAYOUT)
    source = root / "trainvalsplit_places205" / f"{split}_places205.csv"
    rows = [line.split() for line in read_lines(source, DATASET, LAYOUT)]
    if not rows:
        raise DatasetIncompleteError(DATASET, "empty image list(s)", [str(source)], LAYOUT)
    bad = [r for r in rows if len(r) != 2]
    if bad:
        raise ValueError(f"{source}: expected '<path> <label>' lines, got {' '.join(bad[0])!r}")
    labels = np.asarray([int(r[1]) for r in rows], dtype=np.int64)
    names: dict[int, str] = {}
    for rel, label in rows:
        names.setdefault(int(label), _class_name(rel))
    classes = tuple(names.get(i, f"class_{i}") for i in range(int(labels.max()) + 1))
    image_root = require_part(root / IMAGE_DIR, DATASET, LAYOUT)
    paths = tuple(image_root / r[0] for r in rows)
    require_all(paths, DATASET)
    return ImageList(paths, labels, classes)
