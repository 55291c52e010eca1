"""iNaturalist 2018 (8,142 species) from the competition's COCO-style json files.

The json (github.com/visipedia/inat_comp, 2018) has images[{id, file_name, ...}],
annotations[{image_id, category_id}] and categories[{id, name, supercategory}], file_name
relative to the dataset root (`train_val2018/<supercategory>/<category id>/<hash>.jpg`).
MMSelfSup's `tools/dataset_converters/convert_inaturalist.py` writes '<file_name> <category_id>'
lists from the same json; label = index of the category id in sorted order (= the id itself for
the real, contiguous 0..8141 ids).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import numpy as np

from dcbench.datasets.common import DatasetIncompleteError, ImageList, require, require_all, require_part

DATASET = "iNaturalist2018"
LAYOUT = """\
inaturalist2018/                        (pass this folder: data_root/"inaturalist2018")
  train2018.json, val2018.json          images[{id,file_name}], annotations[{image_id,category_id}],
                                        categories[{id,name,supercategory}]
  train_val2018/<supercategory>/<category id>/<hash>.jpg   (file_name is relative to this folder)
"""


def _labels(data: dict[str, Any], source: Path) -> tuple[list[str], list[int], tuple[str, ...]]:
    categories = sorted(data["categories"], key=lambda c: c["id"])
    index_of = {c["id"]: i for i, c in enumerate(categories)}
    category_of = {a["image_id"]: a["category_id"] for a in data["annotations"]}
    files, labels = [], []
    for image in data["images"]:
        if image["id"] not in category_of:
            raise ValueError(f"{source}: image {image['id']} has no annotation")
        files.append(image["file_name"])
        labels.append(index_of[category_of[image["id"]]])
    return files, labels, tuple(str(c["name"]) for c in categories)


def read_inat18(root: Path, split: Literal["train", "val"]) -> ImageList:
    """Images of `split` with labels = index of their category id in sorted order."""
    root = Path(root)
    if split not in ("train", "val"):
        raise ValueError(f"iNaturalist2018 split must be 'train' or 'val', got {split!r}")
    require(root, DATASET, LAYOUT)
    source = require_part(root / f"{split}2018.json", DATASET, LAYOUT)
    with open(source) as fh:
        data = json.load(fh)
    files, labels, classes = _labels(data, source)
    if not files:
        raise DatasetIncompleteError(DATASET, "image list(s) without images", [str(source)], LAYOUT)
    paths = tuple(root / f for f in files)
    require_all(paths, DATASET)
    return ImageList(paths, np.asarray(labels, dtype=np.int64), classes)
