"""PASCAL VOC (2007 / 2012) in the VOCdevkit layout: classification lists and detection boxes.

Classification labels follow the VOC devkit lists `ImageSets/Main/<cls>_<split>.txt`
('<id> 1' positive, '<id> -1' negative, '<id> 0' only difficult instances), used as-is, which
is how fair_self_supervision_benchmark `extra_scripts/create_voc_data_files.py` builds the
VOC07 SVM labels (1 positive, -1 negative, 0 ignored).  Boxes are the XML's 1-based pixel
coordinates, unchanged (detectron2's `pascal_voc` loader subtracts 1 from xmin/ymin itself).

Every listed image and annotation must exist, and every annotation must parse: an XML error, a
value that is not a number, or an inverted box (xmax < xmin or ymax < ymin) is an
`AnnotationError` naming the file, the line and the field; `read_voc_det` reports them all
together (first few and a count) as one `DatasetIncompleteError`.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dcbench.datasets.common import (
    DatasetIncompleteError,
    missing_paths,
    read_lines,
    require,
    require_all,
    require_part,
)

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
    require_part(root / "JPEGImages", dataset, LAYOUT)
    require_all(paths, dataset)
    return MultiLabelList(paths, labels, ids)


class AnnotationError(ValueError):
    """A VOC annotation that does not parse: the message names the file, the line and the field."""


def _line_of(text: str, tag: str, nth_object: int | None) -> int:
    """1-based line of the first <tag> inside the nth <object> (or anywhere, when None)."""
    start = 0
    if nth_object is not None:
        found = [m.start() for m in re.finditer(r"<object[\s>]", text)]
        start = found[nth_object] if nth_object < len(found) else 0
    at = text.find(f"<{tag}", start)
    return text.count("\n", 0, at if at >= 0 else start) + 1


class _Reader:
    """Field access on one parsed annotation that reports the file, line and field on error."""

    def __init__(self, source: Path, text: str) -> None:
        self.source, self.text = source, text

    def fail(self, tag: str, nth: int | None, problem: str) -> AnnotationError:
        where = f"object {nth + 1} " if nth is not None else ""
        line = _line_of(self.text, tag, nth)
        return AnnotationError(f"{self.source} line {line}: {where}<{tag}> {problem}")

    def text_of(self, node: ET.Element, tag: str, nth: int | None) -> str:
        found = node.find(tag)
        if found is None or found.text is None or not found.text.strip():
            raise self.fail(tag, nth, "is missing or empty")
        return found.text.strip()

    def number(self, node: ET.Element, tag: str, nth: int | None) -> float:
        value = self.text_of(node, tag, nth)
        try:
            return float(value)
        except ValueError:
            raise self.fail(tag, nth, f"is {value!r}, not a number") from None


def _box(reader: _Reader, bnd: ET.Element, nth: int) -> list[float]:
    x1, y1, x2, y2 = (reader.number(bnd, k, nth) for k in ("xmin", "ymin", "xmax", "ymax"))
    for low, high, lo_tag, hi_tag in ((x1, x2, "xmin", "xmax"), (y1, y2, "ymin", "ymax")):
        if high < low:
            raise reader.fail(hi_tag, nth, f"is {high:g} < {lo_tag} {low:g}: an inverted box")
    return [x1, y1, x2, y2]


def parse_voc_xml(xml_path: Path, image_id: str, image_path: Path) -> DetRecord:
    """Parse one VOC annotation file into a DetRecord (AnnotationError names file, line, field)."""
    text = xml_path.read_text(encoding="utf-8", errors="replace")
    try:
        tree = ET.fromstring(text)
    except ET.ParseError as exc:
        line, column = exc.position
        raise AnnotationError(f"{xml_path} line {line}, column {column}: not well-formed XML ({exc})") \
            from None
    reader = _Reader(xml_path, text)
    size = tree.find("size")
    if size is None:
        raise reader.fail("size", None, "is missing")
    boxes, labels, difficult = [], [], []
    for nth, obj in enumerate(tree.findall("object")):
        name = reader.text_of(obj, "name", nth)
        if name not in VOC_CLASSES:
            raise reader.fail("name", nth, f"is {name!r}, not a VOC class")
        bnd = obj.find("bndbox")
        if bnd is None:
            raise reader.fail("name", nth, "has no <bndbox>")
        boxes.append(_box(reader, bnd, nth))
        labels.append(VOC_CLASSES.index(name))
        flag = obj.find("difficult")
        difficult.append(flag is not None and flag.text is not None and flag.text.strip() == "1")
    return DetRecord(
        image_id=image_id,
        path=image_path,
        width=int(reader.number(size, "width", None)),
        height=int(reader.number(size, "height", None)),
        boxes=np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
        labels=np.asarray(labels, dtype=np.int64),
        difficult=np.asarray(difficult, dtype=bool),
    )


def read_voc_det(root: Path, split: str) -> list[DetRecord]:
    """Boxes of every image listed in ImageSets/Main/<split>.txt, from Annotations/<id>.xml.

    Missing images or annotations and annotations that do not parse are reported together.
    """
    root = Path(root)
    dataset = _dataset_name(root)
    require(root, dataset, LAYOUT)
    id_list = root / "ImageSets" / "Main" / f"{split}.txt"
    ids = [line.split()[0] for line in read_lines(id_list, dataset, LAYOUT)]
    if not ids:
        raise DatasetIncompleteError(dataset, f"empty image list(s) ({split})", [str(id_list)], LAYOUT)
    images = [root / "JPEGImages" / f"{i}.jpg" for i in ids]
    xmls = [root / "Annotations" / f"{i}.xml" for i in ids]
    missing = missing_paths(images) + missing_paths(xmls)
    if missing:
        what = f"of {len(ids)} listed image(s) / annotation(s) missing"
        raise DatasetIncompleteError(dataset, what, missing)
    records, problems = [], []
    for image_id, xml_path, image_path in zip(ids, xmls, images, strict=True):
        try:
            records.append(parse_voc_xml(xml_path, image_id, image_path))
        except AnnotationError as exc:
            problems.append(str(exc))
    if problems:
        raise DatasetIncompleteError(dataset, f"of {len(ids)} annotation(s) malformed", problems)
    return records
