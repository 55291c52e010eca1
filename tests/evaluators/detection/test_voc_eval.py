from __future__ import annotations

import numpy as np
import pytest

from evaluators.detection.voc_eval import ImageDetections, ImageTruth, evaluate_voc, voc_ap


def _loop_class_ap(truths, dets, cls, thresh):
    """The protocol written as the devkit's per-detection loop (the behaviour we must match)."""
    gts = {
        t.image_id: (
            t.boxes[t.labels == cls].astype(float),
            t.difficult[t.labels == cls].copy(),
            [False] * int((t.labels == cls).sum()),
        )
        for t in truths
    }
    npos = sum(int((~d).sum()) for _, d, _ in gts.values())
    lines = []
    for d in dets:
        for box, score, label in zip(d.boxes, d.scores, d.labels, strict=True):
            if label == cls:
                lines.append(
                    (
                        d.image_id,
                        round(float(score), 3),
                        [round(float(v), 1) for v in (box[0] + 1, box[1] + 1, box[2], box[3])],
                    )
                )
    lines.sort(key=lambda x: -x[1])  # stable, like our evaluator
    tp, fp = np.zeros(len(lines)), np.zeros(len(lines))
    for i, (image_id, _, bb) in enumerate(lines):
        gt, difficult, taken = gts[image_id]
        ovmax, jmax = -np.inf, -1
        if gt.size:
            ix1, iy1 = np.maximum(gt[:, 0], bb[0]), np.maximum(gt[:, 1], bb[1])
            ix2, iy2 = np.minimum(gt[:, 2], bb[2]), np.minimum(gt[:, 3], bb[3])
            inter = np.maximum(ix2 - ix1 + 1, 0) * np.maximum(iy2 - iy1 + 1, 0)
            uni = (
                (bb[2] - bb[0] + 1) * (bb[3] - bb[1] + 1)
                + (gt[:, 2] - gt[:, 0] + 1) * (gt[:, 3] - gt[:, 1] + 1)
                - inter
            )
            ov = inter / uni
            ovmax, jmax = ov.max(), int(ov.argmax())
        if ovmax > thresh:
            if not difficult[jmax]:
                if not taken[jmax]:
                    tp[i], taken[jmax] = 1, True
                else:
                    fp[i] = 1
        else:
            fp[i] = 1
    tp, fp = np.cumsum(tp), np.cumsum(fp)
    rec = tp / npos
    prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    ap = 0.0
    for t in np.arange(0.0, 1.1, 0.1):
        ap += (np.max(prec[rec >= t]) if np.sum(rec >= t) else 0) / 11.0
    return ap


def _random_case(seed: int, n_images: int = 12, n_classes: int = 3):
    rng = np.random.default_rng(seed)
    truths, dets = [], []
    for i in range(n_images):
        m = int(rng.integers(0, 4))
        xy = rng.uniform(1, 60, size=(m, 2))
        boxes = np.concatenate([xy, xy + rng.uniform(8, 40, size=(m, 2))], axis=1).round()
        labels = rng.integers(0, n_classes, size=m)
        truths.append(ImageTruth(f"im{i}", boxes, labels, rng.random(m) < 0.2))
        # detections: jittered copies of the truth (some twice), plus random false ones
        jitter = boxes - np.array([1.0, 1.0, 0.0, 0.0]) + rng.normal(0, 3, size=boxes.shape)
        extra_xy = rng.uniform(0, 60, size=(3, 2))
        extra = np.concatenate([extra_xy, extra_xy + 20], axis=1)
        dboxes = np.concatenate([jitter, jitter[: m // 2], extra])
        dlabels = np.concatenate([labels, labels[: m // 2], rng.integers(0, n_classes, size=3)])
        dets.append(ImageDetections(f"im{i}", dboxes, rng.random(len(dboxes)), dlabels))
    return truths, dets


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_the_devkit_loop(seed: int) -> None:
    truths, dets = _random_case(seed)
    names = ["a", "b", "c"]
    got = evaluate_voc(truths, dets, names)
    per_iou = {}
    for t in range(50, 100, 5):
        aps = [_loop_class_ap(truths, dets, c, t / 100.0) * 100 for c in range(3)]
        per_iou[t] = float(np.mean(aps))
    assert got["AP50"] == pytest.approx(per_iou[50])
    assert got["AP75"] == pytest.approx(per_iou[75])
    assert got["AP"] == pytest.approx(np.mean(list(per_iou.values())))


def test_perfect_detections_score_100_and_difficult_is_ignored() -> None:
    boxes = np.array([[1, 1, 20, 20], [30, 30, 50, 60]], dtype=float)
    truths = [ImageTruth("x", boxes, np.array([0, 1]), np.array([False, True]))]
    # exact predictions (0-based continuous, as detectron2 outputs) and none on the difficult one
    dets = [ImageDetections("x", boxes[:1] - np.array([1, 1, 0, 0]), np.array([0.9]), np.array([0]))]
    assert evaluate_voc(truths, dets, ["a"]) == pytest.approx({"AP": 100.0, "AP50": 100.0, "AP75": 100.0})
    # class b has only a difficult object: AP 0 in the mean, as detectron2's 0/0 recall gives
    assert evaluate_voc(truths, dets, ["a", "b"]) == pytest.approx({"AP": 50.0, "AP50": 50.0, "AP75": 50.0})
    # a detection on the difficult object is neither a true nor a false positive
    on_difficult = ImageDetections("x", np.array([[29.0, 29.0, 50.0, 60.0]]), np.array([0.95]), np.array([0]))
    both = ImageDetections(
        "x",
        np.concatenate([dets[0].boxes, [[29.0, 29.0, 50.0, 60.0]]]),
        np.array([0.9, 0.95]),
        np.array([0, 1]),
    )
    assert evaluate_voc(truths, [both], ["a"])["AP"] == pytest.approx(100.0)
    assert evaluate_voc(truths, [on_difficult], ["a"])["AP50"] == 0.0


def test_duplicates_are_false_positives_and_no_detections_score_zero() -> None:
    boxes = np.array([[1, 1, 20, 20]], dtype=float)
    truths = [ImageTruth("x", boxes, np.array([0]), np.array([False]))]
    dup = ImageDetections(
        "x", np.repeat(boxes - [1, 1, 0, 0], 2, axis=0), np.array([0.9, 0.8]), np.array([0, 0])
    )
    assert evaluate_voc(truths, [dup], ["a"])["AP50"] == pytest.approx(100.0)  # 11-pt: max precision at rec 1
    empty = ImageDetections("x", np.zeros((0, 4)), np.zeros(0), np.zeros(0, dtype=int))
    assert evaluate_voc(truths, [empty], ["a"]) == {"AP": 0.0, "AP50": 0.0, "AP75": 0.0}


def test_voc07_eleven_point_ap() -> None:
    rec = np.array([0.25, 0.5, 0.5, 1.0])
    prec = np.array([1.0, 1.0, 0.5, 0.5])
    # recall thresholds 0..0.5 (6 points) reach precision 1, 0.6..1.0 (5 points) reach 0.5
    assert voc_ap(rec, prec, use_07_metric=True) == pytest.approx((6 * 1.0 + 5 * 0.5) / 11)
    assert voc_ap(rec, prec, use_07_metric=False) == pytest.approx(0.5 * 1.0 + 0.5 * 0.5)


def test_unknown_image_and_empty_truth_raise() -> None:
    truths = [ImageTruth("x", np.zeros((0, 4)), np.zeros(0, dtype=int), np.zeros(0, dtype=bool))]
    with pytest.raises(ValueError, match="no class"):
        evaluate_voc(truths, [], ["a"])
    truths = [ImageTruth("x", np.array([[1.0, 1, 5, 5]]), np.array([0]), np.array([False]))]
    with pytest.raises(KeyError, match="'y'"):
        evaluate_voc(
            truths, [ImageDetections("y", np.zeros((1, 4)), np.ones(1), np.zeros(1, dtype=int))], ["a"]
        )


def test_agrees_with_detectron2s_pascal_voc_evaluator(det_data_root) -> None:
    pytest.importorskip("detectron2")
    import torch
    from detectron2.data import MetadataCatalog
    from detectron2.evaluation import PascalVOCDetectionEvaluator
    from detectron2.structures import Boxes, Instances

    from dcbench.datasets.voc import VOC_CLASSES, read_voc_det
    from evaluators.detection.records import voc_metadata

    root = det_data_root / "VOCdevkit" / "VOC2007"
    name = "dcbench_test_voc_eval"
    MetadataCatalog.remove(name) if name in MetadataCatalog.list() else None
    MetadataCatalog.get(name).set(**voc_metadata(root, "test", 2007))
    rng = np.random.default_rng(0)
    truths, dets = [], []
    evaluator = PascalVOCDetectionEvaluator(name)
    evaluator.reset()
    for k, rec in enumerate(read_voc_det(root, "test")):
        truths.append(ImageTruth(rec.image_id, rec.boxes, rec.labels, rec.difficult))
        boxes = np.concatenate(
            [rec.boxes - [1, 1, 0, 0] + rng.normal(0, 2, rec.boxes.shape), [[3, 3, 30, 30]]]
        )
        labels = np.concatenate([rec.labels, [k % 4]])
        scores = (np.arange(len(boxes)) + 10 * k + 1) / 100.0  # distinct: no ties to order
        dets.append(ImageDetections(rec.image_id, boxes, scores, labels))
        inst = Instances(
            (rec.height, rec.width),
            pred_boxes=Boxes(torch.tensor(boxes, dtype=torch.float32)),
            scores=torch.tensor(scores, dtype=torch.float32),
            pred_classes=torch.tensor(labels),
        )
        evaluator.process([{"image_id": rec.image_id}], [{"instances": inst}])
    want = evaluator.evaluate()["bbox"]
    got = evaluate_voc(
        truths,
        [
            ImageDetections(d.image_id, d.boxes.astype(np.float32), d.scores.astype(np.float32), d.labels)
            for d in dets
        ],
        VOC_CLASSES,
    )
    assert got == pytest.approx({k: want[k] for k in ("AP", "AP50", "AP75")}, abs=1e-6)
