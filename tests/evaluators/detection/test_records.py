from __future__ import annotations

import json

import numpy as np
import pytest

from dcbench.datasets.voc import read_voc_det
from evaluators.detection.records import (
    XYWH_ABS,
    XYXY_ABS,
    coco_records,
    voc_metadata,
    voc_records,
)


def test_voc_records_follow_detectron2s_loader(det_data_root) -> None:
    root = det_data_root / "VOCdevkit" / "VOC2007"
    recs = voc_records(root, "trainval")
    raw = read_voc_det(root, "trainval")
    assert [r["image_id"] for r in recs] == [r.image_id for r in raw]
    first, src = recs[0], raw[0]
    assert set(first) == {"file_name", "image_id", "height", "width", "annotations"}
    assert first["file_name"] == str(root / "JPEGImages" / f"{src.image_id}.jpg")
    assert (first["height"], first["width"]) == (src.height, src.width)
    anno = first["annotations"][0]
    assert anno["bbox_mode"] == XYXY_ABS and anno["category_id"] == int(src.labels[0])
    # xmin/ymin - 1 (1-based inclusive pixels -> continuous), xmax/ymax unchanged
    assert anno["bbox"] == pytest.approx((src.boxes[0] - np.array([1, 1, 0, 0])).tolist())
    # difficult objects are kept for training, as detectron2 does
    assert sum(len(r["annotations"]) for r in recs) == sum(len(r.boxes) for r in raw)
    assert any(r.difficult.any() for r in raw)
    meta = voc_metadata(root, "test", 2007)
    assert meta["year"] == 2007 and meta["split"] == "test" and len(meta["thing_classes"]) == 20


def _coco_json(tmp_path, annotations, categories=({"id": 7, "name": "b"}, {"id": 2, "name": "a"})):
    payload = {
        "images": [
            {"id": 5, "file_name": "x.jpg", "width": 40, "height": 30},
            {"id": 3, "file_name": "y.jpg", "width": 40, "height": 30},
        ],
        "annotations": annotations,
        "categories": list(categories),
    }
    path = tmp_path / "inst.json"
    path.write_text(json.dumps(payload))
    return path


def test_coco_records_follow_detectron2s_loader(tmp_path) -> None:
    annos = [
        {
            "id": 1,
            "image_id": 5,
            "category_id": 7,
            "bbox": [1, 2, 10, 5],
            "iscrowd": 0,
            "segmentation": [[1, 2, 11, 2, 11, 7]],
        },
        {
            "id": 2,
            "image_id": 5,
            "category_id": 2,
            "bbox": [0, 0, 4, 4],
            "iscrowd": 0,
            "segmentation": [[0, 0, 4, 0]],
        },  # fewer than 3 points: dropped
        {
            "id": 3,
            "image_id": 3,
            "category_id": 2,
            "bbox": [0, 0, 4, 4],
            "iscrowd": 1,
            "segmentation": {"counts": [0, 16, 1184], "size": [30, 40]},
        },
    ]
    records, meta = coco_records(tmp_path / "img", _coco_json(tmp_path, annos))
    assert [r["image_id"] for r in records] == [3, 5]  # sorted by id
    assert meta.thing_classes == ("a", "b") and dict(meta.thing_dataset_id_to_contiguous_id) == {2: 0, 7: 1}
    assert records[1]["file_name"] == str(tmp_path / "img" / "x.jpg")
    (obj,) = records[1]["annotations"]
    assert obj["category_id"] == 1 and obj["bbox_mode"] == XYWH_ABS and obj["iscrowd"] == 0
    crowd = records[0]["annotations"][0]
    assert crowd["iscrowd"] == 1 and isinstance(crowd["segmentation"]["counts"], bytes)  # compressed RLE
    assert meta.as_metadata()["evaluator_type"] == "coco"


def test_coco_records_reject_bad_json(tmp_path) -> None:
    dup = [{"id": 1, "image_id": 5, "category_id": 7, "bbox": [1, 1, 2, 2]}] * 2
    with pytest.raises(ValueError, match="not unique"):
        coco_records(tmp_path, _coco_json(tmp_path, dup))
    with pytest.raises(KeyError, match="category_id=9"):
        coco_records(
            tmp_path, _coco_json(tmp_path, [{"id": 1, "image_id": 5, "category_id": 9, "bbox": [1, 1, 2, 2]}])
        )
    with pytest.raises(ValueError, match="empty 'bbox'"):
        coco_records(tmp_path, _coco_json(tmp_path, [{"id": 1, "image_id": 5, "category_id": 7, "bbox": []}]))
