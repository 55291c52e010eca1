"""PASCAL VOC detection AP as detectron2's PascalVOCDetectionEvaluator reports it.

Faithful to detectron2/evaluation/pascal_voc_evaluation.py (itself py-faster-rcnn's voc_eval):
  * predicted boxes are continuous 0-based (x1, y1, x2, y2); x1 and y1 get +1 to return to VOC's
    1-based pixel indices, and the text round trip rounds scores to 3 and coordinates to 1 decimal;
  * ground truth comes from the XML boxes as written (1-based, inclusive), "difficult" objects are
    neither true nor false positives and do not count in the number of positives;
  * overlaps use the +1 pixel convention; a detection is a true positive when its best-overlapping
    ground truth (over all of that class in the image) has IoU > threshold and is not yet matched;
  * VOC2007's 11-point interpolated AP (use_07_metric), per class, then the mean over classes;
  * AP50 / AP75 are that mean at IoU 0.50 / 0.75, AP the mean over IoU 0.50:0.05:0.95. Percent.
A class without any non-difficult ground truth (never on VOC07 test, common on tiny data) has AP 0
and stays in the mean, which is what detectron2's 0/0 recall yields. One corner case differs:
detections are ordered by a stable sort on score (np.argsort's default leaves ties unordered).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

LOG = logging.getLogger(__name__)
IOU_THRESHOLDS_PCT = tuple(range(50, 100, 5))  # as detectron2: range(50, 100, 5) / 100


@dataclass(frozen=True)
class ImageTruth:
    """Ground truth of one image: boxes in VOC's 1-based pixel indices, as in the XML."""

    image_id: str
    boxes: np.ndarray  # (M, 4) float
    labels: np.ndarray  # (M,) int, index in the class list
    difficult: np.ndarray  # (M,) bool


@dataclass(frozen=True)
class ImageDetections:
    """A model's detections on one image: continuous 0-based XYXY boxes (detectron2 output)."""

    image_id: str
    boxes: np.ndarray  # (N, 4) float
    scores: np.ndarray  # (N,) float
    labels: np.ndarray  # (N,) int, index in the class list


def voc_ap(rec: np.ndarray, prec: np.ndarray, use_07_metric: bool = True) -> float:
    """AP from a precision/recall curve: VOC07 11-point interpolation, or the area (VOC2010+)."""
    if use_07_metric:
        ap = 0.0
        for t in np.arange(0.0, 1.1, 0.1):
            above = rec >= t
            ap += (float(np.max(prec[above])) if np.any(above) else 0.0) / 11.0
        return ap
    mrec = np.concatenate(([0.0], rec, [1.0]))
    mpre = np.concatenate(([0.0], prec, [0.0]))
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    idx = np.where(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[idx + 1] - mrec[idx]) * mpre[idx + 1]))


def _overlaps(boxes: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(N, M) IoU with VOC's +1 pixel convention."""
    ix1 = np.maximum(boxes[:, None, 0], gt[None, :, 0])
    iy1 = np.maximum(boxes[:, None, 1], gt[None, :, 1])
    ix2 = np.minimum(boxes[:, None, 2], gt[None, :, 2])
    iy2 = np.minimum(boxes[:, None, 3], gt[None, :, 3])
    inter = np.maximum(ix2 - ix1 + 1.0, 0.0) * np.maximum(iy2 - iy1 + 1.0, 0.0)
    area_d = (boxes[:, 2] - boxes[:, 0] + 1.0) * (boxes[:, 3] - boxes[:, 1] + 1.0)
    area_g = (gt[:, 2] - gt[:, 0] + 1.0) * (gt[:, 3] - gt[:, 1] + 1.0)
    return inter / (area_d[:, None] + area_g[None, :] - inter)


@dataclass(frozen=True)
class _ClassDets:
    """One class's detections sorted by score, each with its best ground truth (global index)."""

    best_iou: np.ndarray  # (D,) -inf where the image has no ground truth of the class
    best_gt: np.ndarray  # (D,) index into the class's ground-truth arrays, -1 where none
    gt_difficult: np.ndarray  # (G,) bool
    npos: int


def _class_detections(cls: int, truths: Sequence[ImageTruth], dets: Sequence[ImageDetections]) -> _ClassDets:
    gt_boxes: dict[str, np.ndarray] = {}
    gt_offset: dict[str, int] = {}
    difficult: list[np.ndarray] = []
    offset = 0
    for t in truths:
        keep = t.labels == cls
        gt_boxes[t.image_id] = t.boxes[keep].astype(np.float64)
        gt_offset[t.image_id] = offset
        difficult.append(t.difficult[keep].astype(bool))
        offset += int(keep.sum())
    gt_difficult = np.concatenate(difficult) if difficult else np.zeros(0, dtype=bool)
    scores, ious, gts = [], [], []
    for d in dets:
        if d.image_id not in gt_boxes:
            raise KeyError(f"detections for image {d.image_id!r}, which is not in the ground truth")
        keep = d.labels == cls
        if not np.any(keep):
            continue
        boxes = np.round(d.boxes[keep].astype(np.float64) + np.array([1.0, 1.0, 0.0, 0.0]), 1)
        scores.append(np.round(d.scores[keep].astype(np.float64), 3))
        gt = gt_boxes[d.image_id]
        if len(gt):
            ov = _overlaps(boxes, gt)
            ious.append(ov.max(axis=1))
            gts.append(ov.argmax(axis=1) + gt_offset[d.image_id])
        else:
            ious.append(np.full(len(boxes), -np.inf))
            gts.append(np.full(len(boxes), -1))
    if not scores:
        empty = np.zeros(0)
        return _ClassDets(empty, empty.astype(np.int64), gt_difficult, int((~gt_difficult).sum()))
    order = np.argsort(-np.concatenate(scores), kind="stable")
    return _ClassDets(np.concatenate(ious)[order], np.concatenate(gts)[order].astype(np.int64),
                      gt_difficult, int((~gt_difficult).sum()))


def _class_ap(cd: _ClassDets, threshold: float, use_07_metric: bool) -> float:
    hit = cd.best_iou > threshold
    on_difficult = np.zeros_like(hit)
    if len(cd.gt_difficult):
        on_difficult = hit & cd.gt_difficult[np.where(hit, cd.best_gt, 0)]
    candidate = hit & ~on_difficult
    tp = np.zeros(len(hit), dtype=bool)
    positions = np.flatnonzero(candidate)
    _, first = np.unique(cd.best_gt[positions], return_index=True)
    tp[positions[first]] = True  # the first (highest-scoring) hit on each ground truth
    fp = ~tp & ~on_difficult
    tp_cum = np.cumsum(tp).astype(np.float64)
    fp_cum = np.cumsum(fp).astype(np.float64)
    rec = tp_cum / float(cd.npos)
    prec = tp_cum / np.maximum(tp_cum + fp_cum, np.finfo(np.float64).eps)
    return voc_ap(rec, prec, use_07_metric)


def evaluate_voc(truths: Sequence[ImageTruth], dets: Sequence[ImageDetections], class_names: Sequence[str],
                 use_07_metric: bool = True) -> dict[str, float]:
    """{'AP', 'AP50', 'AP75'} in percent over `class_names` (detectron2's VOC evaluator)."""
    aps: dict[int, list[float]] = {t: [] for t in IOU_THRESHOLDS_PCT}
    absent = []
    for cls, name in enumerate(class_names):
        cd = _class_detections(cls, truths, dets)
        if cd.npos == 0:
            absent.append(name)
        for t in IOU_THRESHOLDS_PCT:
            aps[t].append(_class_ap(cd, t / 100.0, use_07_metric) * 100.0 if cd.npos else 0.0)
    if len(absent) == len(class_names):
        raise ValueError("VOC eval: no class has any non-difficult ground truth in the test set")
    if absent:
        LOG.warning("VOC eval: classes without non-difficult ground truth count as AP 0 "
                    "(as in detectron2): %s", absent)
    per_iou = {t: float(np.mean(v)) for t, v in aps.items()}
    return {"AP": float(np.mean(list(per_iou.values()))), "AP50": per_iou[50], "AP75": per_iou[75]}
