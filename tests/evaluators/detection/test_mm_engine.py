"""The mmdetection engine on the tiny VOC / COCO layouts, with real mmdet (skips cleanly without it)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

pytest.importorskip("mmdet.models", reason="the mmdetection engine needs mmdet (scripts/install_seg.sh)")

from adapters.mmseg import BackboneLoadError  # noqa: E402
from dcbench.backbone import Backbone  # noqa: E402
from dcbench.config import replace  # noqa: E402
from evaluators.detection import coco, mm_engine, voc0712  # noqa: E402
from evaluators.detection.mm_configs import TINY_COCO_PROTOCOL, TINY_VOC_PROTOCOL, Schedule  # noqa: E402


def _voc_cfg(root: Path, work: Path) -> dict:
    splits = voc0712.voc_splits(root, voc0712.TINY.detectron2)
    train = [(f.name, s) for f, s, _ in splits.train]
    data = mm_engine.voc_data(root / "VOCdevkit", train, ("VOC2007", "test"), TINY_VOC_PROTOCOL, 0)
    return mm_engine.mmdet_config(TINY_VOC_PROTOCOL, data, voc0712.NUM_CLASSES, work, 0, sobel=False)


def _coco_cfg(root: Path, work: Path, protocol=TINY_COCO_PROTOCOL) -> dict:
    train, test = coco.coco_splits(root, coco.TINY.detectron2)
    classes = coco._classes(train, test)
    data = mm_engine.coco_data((train.image_dir, train.json_file), (test.image_dir, test.json_file), classes,
                               protocol, 0)
    return mm_engine.mmdet_config(protocol, data, len(classes), work, 0, sobel=False)


def _score_ground_truth(cfg: dict) -> dict[str, float]:
    """Build the config's val dataset and evaluator and score the ground truth as predictions."""
    from mmdet.registry import DATASETS
    from mmengine.evaluator import Evaluator
    from mmengine.registry import init_default_scope
    from mmengine.structures import InstanceData

    init_default_scope("mmdet")
    dataset = DATASETS.build(cfg["val_dataloader"]["dataset"])
    evaluator = Evaluator(cfg["val_evaluator"])
    evaluator.dataset_meta = dataset.metainfo
    for index in range(len(dataset)):
        sample = dataset[index]["data_samples"]
        gt = sample.gt_instances
        boxes = gt.bboxes.tensor if hasattr(gt.bboxes, "tensor") else torch.as_tensor(gt.bboxes)
        pred = InstanceData(bboxes=boxes, scores=torch.ones(len(boxes)), labels=gt.labels)
        if "masks" in gt:
            pred.masks = torch.as_tensor(gt.masks.to_ndarray()).bool()
        sample.pred_instances = pred
        evaluator.process([sample])
    return evaluator.evaluate(len(dataset))


def test_ground_truth_as_predictions_scores_100_on_voc(det_data_root: Path, tmp_path: Path) -> None:
    metrics = mm_engine.voc_metrics(_score_ground_truth(_voc_cfg(det_data_root, tmp_path)))
    assert metrics == {"AP": 100.0, "AP50": 100.0, "AP75": 100.0}


def test_ground_truth_as_predictions_scores_100_on_coco(det_data_root: Path, tmp_path: Path) -> None:
    metrics = mm_engine.coco_metrics(_score_ground_truth(_coco_cfg(det_data_root, tmp_path)))
    assert metrics == {name: 100.0 for name in coco.METRICS}


def test_metric_names_and_percentages() -> None:
    raw = {"pascal_voc/mAP": 0.5, "pascal_voc/AP50": 0.8, "pascal_voc/AP75": 0.25}
    assert mm_engine.voc_metrics(raw) == {"AP": 50.0, "AP50": 80.0, "AP75": 25.0}
    with pytest.raises(KeyError, match="AP75"):
        mm_engine.voc_metrics({"pascal_voc/mAP": 0.5, "pascal_voc/AP50": 0.8})
    with pytest.raises(ValueError, match="invalid"):
        mm_engine.coco_metrics({f"coco/bbox_mAP{s}": -1.0 for s in ("", "_50", "_75")}, tasks=("bbox",))


def test_the_last_validation_is_reported() -> None:
    history = [(2, 0, {"m": 1.0}), (4, 0, {"m": 2.0})]
    assert mm_engine.last_validation(history, TINY_VOC_PROTOCOL) == {"m": 2.0}
    with pytest.raises(RuntimeError, match="no validation"):
        mm_engine.last_validation(history[:1], TINY_VOC_PROTOCOL)
    by_epoch = replace(TINY_COCO_PROTOCOL, schedule=Schedule(by_epoch=True, length=2))
    assert mm_engine.last_validation([(9, 1, {"m": 1.0}), (18, 2, {"m": 3.0})], by_epoch) == {"m": 3.0}


def test_missing_mmdet_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def refuse(name, *args, **kwargs):
        if name.startswith("mmdet"):
            raise ImportError("No module named 'mmdet'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", refuse)
    with pytest.raises(mm_engine.DetectionSetupError, match="install_seg.sh"):
        mm_engine.require_mmdet()


def _without(backbone: Backbone, key: str) -> Backbone:
    state = {k: v for k, v in backbone.state_dict.items() if k != key}
    return dataclasses.replace(backbone, state_dict=state)


def test_a_missing_backbone_key_fails_before_the_first_iteration(det_data_root, backbone, tmp_path) -> None:
    cfg = _coco_cfg(det_data_root, tmp_path / "run")
    with pytest.raises(BackboneLoadError, match="layer4.2.bn3.weight") as err:
        mm_engine.train_and_validate(cfg, _without(backbone, "layer4.2.bn3.weight"), "FPN",
                                     TINY_COCO_PROTOCOL, "WARNING")
    assert err.value.missing == ("layer4.2.bn3.weight",)
    assert not list((tmp_path / "run").glob("*.pth"))  # nothing trained


def test_resume_continues_from_the_runners_checkpoint(det_data_root, backbone, tmp_path) -> None:
    work = tmp_path / "run"
    first = _coco_cfg(det_data_root, work)
    first["default_hooks"]["checkpoint"]["max_keep_ckpts"] = 2  # keep iter_2.pth past iter_4.pth
    mm_engine.train_and_validate(first, backbone, "FPN", TINY_COCO_PROTOCOL, "WARNING")
    # as if killed after its iteration-2 checkpoint: the same config again resumes there (a run
    # resumed into another schedule gets the old one's scheduler state back: not what a rerun does)
    (work / "iter_4.pth").unlink()
    assert (work / "iter_2.pth").exists()
    # the rerun resumes at iteration 2 (torch.load weights_only=True under the allowlist): it never
    # loads the backbone again, so a backbone that would fail the checked load does not matter
    broken = _without(backbone, "conv1.weight")
    metrics = mm_engine.train_and_validate(_coco_cfg(det_data_root, work), broken, "FPN", TINY_COCO_PROTOCOL,
                                           "WARNING")
    assert set(mm_engine.coco_metrics(metrics)) == set(coco.METRICS)
    assert (work / "iter_4.pth").exists()
