"""COCO box / mask AP with pycocotools, as detectron2's COCOEvaluator computes them.

Follows detectron2/evaluation/coco_evaluation.py: predictions become COCO result dicts (XYWH
boxes, RLE masks from the pasted binary masks, dataset category ids), the mask evaluation drops
the "bbox" field so that the mask area decides small/medium/large, the evaluation is restricted to
the predicted images, and AP / AP50 / AP75 are COCOeval's stats[0..2] in percent. One corner case
differs: where the model made no detection at all detectron2 reports NaN; we report 0.0 (the AP of
an empty detection list) so the row stays a number.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_util
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

LOG = logging.getLogger(__name__)
METRICS = ("AP", "AP50", "AP75")  # COCOeval.stats[0], [1], [2]


def detections_to_coco_json(image_id: int, boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray,
                            contiguous_to_dataset_id: Mapping[int, int],
                            masks: np.ndarray | None = None) -> list[dict[str, Any]]:
    """COCO result dicts of one image: XYXY boxes, contiguous labels, optional (N, H, W) bool masks."""
    xywh = np.asarray(boxes, dtype=np.float64).reshape(-1, 4).copy()
    xywh[:, 2:] -= xywh[:, :2]
    out: list[dict[str, Any]] = []
    for k in range(len(xywh)):
        result: dict[str, Any] = {
            "image_id": image_id, "category_id": int(contiguous_to_dataset_id[int(labels[k])]),
            "bbox": [float(v) for v in xywh[k]], "score": float(scores[k]),
        }
        if masks is not None:
            rle = mask_util.encode(np.asfortranarray(masks[k][:, :, None].astype(np.uint8)))[0]
            rle["counts"] = rle["counts"].decode("utf-8")
            result["segmentation"] = rle
        out.append(result)
    return out


def _quiet_coco(json_file: Path) -> COCO:
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(json_file))


def _evaluate(gt: COCO, results: list[dict[str, Any]], iou_type: str, img_ids: Sequence[int]) -> list[float]:
    if iou_type == "segm":
        results = copy.deepcopy(results)
        for r in results:
            r.pop("bbox", None)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        dt = gt.loadRes(results)
        ev = COCOeval(gt, dt, iou_type)
        ev.params.imgIds = list(img_ids)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    LOG.info("COCO %s evaluation:\n%s", iou_type, buf.getvalue())
    return [float(ev.stats[i] * 100) if ev.stats[i] >= 0 else float("nan") for i in range(len(METRICS))]


def evaluate_coco(json_file: Path, results: list[dict[str, Any]], img_ids: Sequence[int],
                  iou_types: Sequence[str] = ("bbox", "segm")) -> dict[str, float]:
    """{'bbox_AP', 'bbox_AP50', 'bbox_AP75', ('segm_AP', ...)} in percent."""
    gt = _quiet_coco(json_file)
    out: dict[str, float] = {}
    for iou_type in iou_types:
        if results:
            values = _evaluate(gt, results, iou_type, img_ids)
        else:
            LOG.warning("COCO eval: no predictions from the model; %s AP is 0", iou_type)
            values = [0.0] * len(METRICS)
        out.update({f"{iou_type}_{m}": v for m, v in zip(METRICS, values, strict=True)})
    return out
