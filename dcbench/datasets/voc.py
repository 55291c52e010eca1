"""PASCAL VOC (2007 / 2012) in the VOCdevkit layout: classification lists and detection boxes.

Classification labels follow the VOC devkit lists `ImageSets/Main/<cls>_<split>.txt`
('<id> 1' positive, '<id> -1' negative, '<id> 0' only difficult instances), used as-is, which
is how fair_self_supervision_benchmark `extra_scripts/create_voc_data_files.py` builds the
VOC07 SVM labels (1 positive, -1 negative, 0 ignored).  Boxes are the XML's 1-based pixel
coordinates, unchanged (detectron2's `pascal_voc` loader subtracts 1 from xmin/ymin itself).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dcbench.datasets.common import DatasetMissingError, read_lines, require, require_some

VOC_CLASSES: tuple[str, ...] = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)
LAYOUT = """\
VOCdevkit/VOC2007/  (or VOC2012/; pass this folder: data_root/"VOCdevkit"/"VOC2007")
  JPEGImages/<id>.jpg
  Annotations/<id>.xml                  size/width,height; object/name,difficult,bndbox (1-based)
  ImageSets/Main/<split>.txt            image ids (train, val, trainval, test)
  ImageSets/Main/<cls>_<split>.txt      '<id> <1|-1|0>' per line, one file per class
"""


def _dataset_name(root: Path) -> str:
    return root.name if root.name.upper().startswith("VOC") else "VOC"


@dataclass(frozen=True, eq=False)
class MultiLabelList:
    """VOC classification split: labels[N, 20] int8 (1 positive, -1 negative, 0 difficult-only)."""

    paths: tuple[Path, ...]
    labels: np.ndarray
    image_ids: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.paths)


@dataclass(frozen=True, eq=False)
class DetRecord:
    """One image's boxes: [M, 4] float32 (x1, y1, x2, y2) as in the XML, labels, difficult flags."""

    image_id: str
    path: Path
    width: int
    height: int
    boxes: np.ndarray
    labels: np.ndarray
    difficult: np.ndarray


def _read_class_list(path: Path, dataset: str) -> dict[str, int]:
    labels: dict[str, int] = {}
    for line in read_lines(path, dataset, LAYOUT):
        parts = line.split()
        if len(parts) != 2 or parts[1] not in ("1", "-1", "0"):
            raise ValueError(f"{path}: expected '<id> <1|-1|0>', got {line!r}")
        labels[parts[0]] = int(parts[1])
    return labels


def read_voc_cls(root: Path, split: str) -> MultiLabelList:
    """Multi-label classification targets of `split` from the 20 per-class lists."""
    root = Path(root)
    dataset = _dataset_name(root)
    require(root, dataset, LAYOUT)
    main = root / "ImageSets" / "Main"
    per_class = [_read_class_list(main / f"{cls}_{split}.txt", dataset) for cls in VOC_CLASSES]
    ids = tuple(per_class[0])
    for cls, table in zip(VOC_CLASSES, per_class, strict=True):
        if set(table) != set(ids):
            raise ValueError(f"{main / f'{cls}_{split}.txt'} lists other images than {VOC_CLASSES[0]}")
    labels = np.array([[table[i] for table in per_class] for i in ids], dtype=np.int8).reshape(-1, 20)
    paths = tuple(root / "JPEGImages" / f"{i}.jpg" for i in ids)
    require(root / "JPEGImages", dataset, LAYOUT)
    require_some(paths, dataset, LAYOUT)
    return MultiLabelList(paths, labels, ids)


def _text(node: ET.Element, tag: str, source: Path) -> str:
    found = node.find(tag)
    if found is None or found.text is None:
        raise ValueError(f"{source}: <{tag}> missing")
    return found.text.strip()


def parse_voc_xml(xml_path: Path, image_id: str, image_path: Path) -> DetRecord:
    """Parse one VOC annotation file into a DetRecord."""
    tree = ET.parse(xml_path).getroot()
    size = tree.find("size")
    if size is None:
        raise ValueError(f"{xml_path}: <size> missing")
    boxes, labels, difficult = [], [], []
    for obj in tree.findall("object"):
        name = _text(obj, "name", xml_path)
        if name not in VOC_CLASSES:
            raise ValueError(f"{xml_path}: unknown class {name!r}")
        bnd = obj.find("bndbox")
        if bnd is None:
            raise ValueError(f"{xml_path}: object without <bndbox>")
        boxes.append([float(_text(bnd, k, xml_path)) for k in ("xmin", "ymin", "xmax", "ymax")])
        labels.append(VOC_CLASSES.index(name))
        flag = obj.find("difficult")
        difficult.append(flag is not None and flag.text is not None and int(flag.text) == 1)
    return DetRecord(
        image_id=image_id,
        path=image_path,
        width=int(_text(size, "width", xml_path)),
        height=int(_text(size, "height", xml_path)),
        boxes=np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
        labels=np.asarray(labels, dtype=np.int64),
        difficult=np.asarray(difficult, dtype=bool),
    )


def read_voc_det(root: Path, split: str) -> list[DetRecord]:
    """Boxes of every image listed in ImageSets/Main/<split>.txt, from Annotations/<id>.xml."""
    root = Path(root)
    dataset = _dataset_name(root)
    require(root, dataset, LAYOUT)
    id_list = root / "ImageSets" / "Main" / f"{split}.txt"
    ids = [line.split()[0] for line in read_lines(id_list, dataset, LAYOUT)]
    if not ids:
        raise DatasetMissingError(dataset, id_list, LAYOUT)
    require_some([root / "JPEGImages" / f"{i}.jpg" for i in ids], dataset, LAYOUT)
    records = []
    for image_id in ids:
        xml_path = require(root / "Annotations" / f"{image_id}.xml", dataset, LAYOUT)
        records.append(parse_voc_xml(xml_path, image_id, root / "JPEGImages" / f"{image_id}.jpg"))
    return records
