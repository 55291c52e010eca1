from __future__ import annotations

import json

import numpy as np
import pytest
from pycocotools import mask as mask_util

from evaluators.detection.coco_eval import detections_to_coco_json, evaluate_coco
from evaluators.detection.records import coco_records, xyxy_boxes


def _perfect(det_data_root):
    image_dir, json_file = (
        det_data_root / "coco" / "val2017",
        det_data_root / "coco" / "annotations" / "instances_val2017.json",
    )
    records, meta = coco_records(image_dir, json_file)
    to_id = {v: k for k, v in meta.thing_dataset_id_to_contiguous_id.items()}
    results = []
    for r in records:
        boxes = xyxy_boxes(r["annotations"])
        labels = np.array([a["category_id"] for a in r["annotations"]])
        rles = [
            mask_util.merge(mask_util.frPyObjects(a["segmentation"], r["height"], r["width"]))
            for a in r["annotations"]
        ]
        masks = np.stack([mask_util.decode(m).astype(bool) for m in rles])
        results += detections_to_coco_json(
            r["image_id"], boxes, np.full(len(boxes), 0.9), labels, to_id, masks
        )
    return json_file, records, results


def test_perfect_predictions_score_100_for_boxes_and_masks(det_data_root) -> None:
    json_file, records, results = _perfect(det_data_root)
    out = evaluate_coco(json_file, results, [r["image_id"] for r in records])
    assert list(out) == ["bbox_AP", "bbox_AP50", "bbox_AP75", "segm_AP", "segm_AP50", "segm_AP75"]
    assert out == pytest.approx(dict.fromkeys(out, 100.0))


def test_result_dicts_are_coco_json(det_data_root) -> None:
    _, records, results = _perfect(det_data_root)
    first = results[0]
    assert set(first) == {"image_id", "category_id", "bbox", "score", "segmentation"}
    gt = json.loads((det_data_root / "coco" / "annotations" / "instances_val2017.json").read_text())
    ann = next(a for a in gt["annotations"] if a["image_id"] == first["image_id"])
    assert first["category_id"] == ann["category_id"]  # dataset id, not the contiguous one
    assert first["bbox"] == pytest.approx(ann["bbox"])  # XYWH
    assert isinstance(first["segmentation"]["counts"], str)
    json.dumps(results)


def test_no_predictions_give_zero_and_worse_boxes_score_lower(det_data_root) -> None:
    json_file, records, results = _perfect(det_data_root)
    ids = [r["image_id"] for r in records]
    assert evaluate_coco(json_file, [], ids, iou_types=("bbox",)) == {
        "bbox_AP": 0.0,
        "bbox_AP50": 0.0,
        "bbox_AP75": 0.0,
    }
    shifted = [{**r, "bbox": [r["bbox"][0] + 0.3 * r["bbox"][2], *r["bbox"][1:]]} for r in results]
    out = evaluate_coco(json_file, shifted, ids, iou_types=("bbox",))
    assert out["bbox_AP50"] == pytest.approx(100.0) and out["bbox_AP75"] < 100.0


def test_agrees_with_detectron2s_coco_evaluator(det_data_root) -> None:
    pytest.importorskip("detectron2")
    import torch
    from detectron2.data import MetadataCatalog
    from detectron2.evaluation import COCOEvaluator
    from detectron2.structures import Boxes, Instances

    json_file, records, _ = _perfect(det_data_root)
    _, meta = coco_records(det_data_root / "coco" / "val2017", json_file)
    name = "dcbench_test_coco_eval"
    MetadataCatalog.remove(name) if name in MetadataCatalog.list() else None
    MetadataCatalog.get(name).set(**meta.as_metadata())
    to_id = {v: k for k, v in meta.thing_dataset_id_to_contiguous_id.items()}
    evaluator = COCOEvaluator(name, tasks=("bbox", "segm"), distributed=False)
    evaluator.reset()
    rng = np.random.default_rng(0)
    ours = []
    for r in records:
        boxes = xyxy_boxes(r["annotations"]) + rng.normal(0, 1.5, (len(r["annotations"]), 4)).astype(
            np.float32
        )
        labels = np.array([a["category_id"] for a in r["annotations"]])
        scores = rng.uniform(0.1, 1.0, len(boxes)).astype(np.float32)
        masks = np.zeros((len(boxes), r["height"], r["width"]), dtype=bool)
        for k, (x1, y1, x2, y2) in enumerate(boxes.round().astype(int).clip(0)):
            masks[k, y1:y2, x1:x2] = True
        ours += detections_to_coco_json(r["image_id"], boxes, scores, labels, to_id, masks)
        inst = Instances(
            (r["height"], r["width"]),
            pred_boxes=Boxes(torch.from_numpy(boxes)),
            scores=torch.from_numpy(scores),
            pred_classes=torch.from_numpy(labels),
            pred_masks=torch.from_numpy(masks),
        )
        evaluator.process([{"image_id": r["image_id"]}], [{"instances": inst}])
    want = evaluator.evaluate()
    got = evaluate_coco(json_file, ours, [r["image_id"] for r in records])
    for task in ("bbox", "segm"):
        for metric in ("AP", "AP50", "AP75"):
            assert got[f"{task}_{metric}"] == pytest.approx(want[task][metric], abs=1e-6), (task, metric)
