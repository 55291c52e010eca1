"""Dataset records in detectron2's standard format (list[dict]), built without detectron2.

The detectron2 engine registers them in its DatasetCatalog (the mmdetection engine reads the
datasets with mmdet's own VOCDataset / CocoDataset). They follow detectron2's own loaders:
`detectron2/data/datasets/pascal_voc.py::load_voc_instances` (difficult objects kept for
training, xmin/ymin shifted by -1 to continuous 0-based coordinates, category = index in the class
list, XYXY_ABS boxes) and `detectron2/data/datasets/coco.py::load_coco_json` (images sorted by id,
contiguous category ids in sorted-id order, iscrowd kept, polygons with fewer than 3 points
dropped, XYWH_ABS boxes).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pycocotools import mask as mask_util

from dcbench.datasets.voc import VOC_CLASSES, read_voc_det

XYXY_ABS = 0  # detectron2.structures.BoxMode.XYXY_ABS
XYWH_ABS = 1  # detectron2.structures.BoxMode.XYWH_ABS

Record = dict[str, Any]


@dataclass(frozen=True)
class CocoMeta:
    """What detectron2's MetadataCatalog holds for a COCO-format dataset."""

    thing_classes: tuple[str, ...]
    thing_dataset_id_to_contiguous_id: Mapping[int, int]
    json_file: str
    image_root: str

    def as_metadata(self) -> dict[str, Any]:
        return {
            "thing_classes": list(self.thing_classes),
            "thing_dataset_id_to_contiguous_id": dict(self.thing_dataset_id_to_contiguous_id),
            "json_file": self.json_file, "image_root": self.image_root, "evaluator_type": "coco",
        }


def voc_records(voc_root: Path, split: str) -> list[Record]:
    """VOC detection records of `voc_root/ImageSets/Main/<split>.txt` (all objects, difficult too)."""
    out: list[Record] = []
    for rec in read_voc_det(voc_root, split):
        annos = [
            {"category_id": int(label),
             "bbox": [float(b[0]) - 1.0, float(b[1]) - 1.0, float(b[2]), float(b[3])], "bbox_mode": XYXY_ABS}
            for b, label in zip(rec.boxes, rec.labels, strict=True)
        ]
        out.append({"file_name": str(rec.path), "image_id": rec.image_id, "height": int(rec.height),
                    "width": int(rec.width), "annotations": annos})
    return out


def voc_metadata(voc_root: Path, split: str, year: int) -> dict[str, Any]:
    """detectron2's metadata for a VOC split (read by PascalVOCDetectionEvaluator)."""
    return {"thing_classes": list(VOC_CLASSES), "dirname": str(voc_root), "year": year, "split": split,
            "evaluator_type": "pascal_voc"}


def _valid_segmentation(segm: Any) -> Any:
    if isinstance(segm, dict):
        if isinstance(segm.get("counts"), list):
            return mask_util.frPyObjects(segm, *segm["size"])
        return segm
    return [poly for poly in segm if len(poly) % 2 == 0 and len(poly) >= 6]


def _coco_object(anno: Mapping[str, Any], id_map: Mapping[int, int], image_id: int) -> Record | None:
    if anno.get("ignore", 0) != 0:
        raise ValueError(f'annotation {anno.get("id")} has "ignore" set, which detectron2 does not support')
    if "bbox" in anno and len(anno["bbox"]) == 0:
        raise ValueError(f"an annotation of image {image_id} has an empty 'bbox'; not valid COCO format")
    obj: Record = {k: anno[k] for k in ("iscrowd", "bbox", "category_id") if k in anno}
    segm = anno.get("segmentation")
    if segm:
        segm = _valid_segmentation(segm)
        if len(segm) == 0:
            return None  # detectron2 drops instances without a valid polygon
        obj["segmentation"] = segm
    obj["bbox_mode"] = XYWH_ABS
    if obj.get("category_id") not in id_map:
        raise KeyError(f"category_id={obj.get('category_id')} is not in the json's 'categories'")
    obj["category_id"] = id_map[obj["category_id"]]
    return obj


def coco_records(image_dir: Path, json_file: Path) -> tuple[list[Record], CocoMeta]:
    """COCO instance records of `json_file` (images under `image_dir`) and their metadata."""
    data = json.loads(Path(json_file).read_text(encoding="utf-8"))
    cats = sorted(data.get("categories", []), key=lambda c: c["id"])
    id_map = {int(c["id"]): i for i, c in enumerate(cats)}
    meta = CocoMeta(tuple(c["name"] for c in cats), id_map, str(json_file), str(image_dir))
    ann_ids = [a["id"] for a in data.get("annotations", [])]
    if len(set(ann_ids)) != len(ann_ids):
        raise ValueError(f"annotation ids in {json_file} are not unique")
    by_image: dict[int, list[Mapping[str, Any]]] = defaultdict(list)
    for anno in data.get("annotations", []):
        by_image[anno["image_id"]].append(anno)
    records: list[Record] = []
    for img in sorted(data.get("images", []), key=lambda i: i["id"]):
        objs = [_coco_object(a, id_map, img["id"]) for a in by_image.get(img["id"], [])]
        records.append({"file_name": str(Path(image_dir) / img["file_name"]), "height": int(img["height"]),
                        "width": int(img["width"]), "image_id": img["id"],
                        "annotations": [o for o in objs if o is not None]})
    return records, meta
