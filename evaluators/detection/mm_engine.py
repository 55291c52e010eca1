"""The mmdetection engine: the page's protocol run by mmdet 3.x through mmengine's Runner, in this process.

Flow of one trial: the mmengine config dict (mm_configs + the dataset entries below, plain data)
-> import our registered modules (a dict Config runs no `custom_imports`) -> Runner -> before the
first iteration, our canonical backbone is placed into the detector and checked key by key
(adapters.mmdet.load_into_detector: any missing, unexpected or wrong-shape key raises
`BackboneLoadError` before training) -> train, validating with mmdet's own `VOCMetric`
(11-point, VOC07 test) or `CocoMetric` (bbox + segm) -> the last validation's metrics, in percent.

Resume: CheckpointHook writes mmengine checkpoints into the trial folder at the reference's
interval; a rerun resumes from the newest one that loads (`evaluators.mm_checkpoints.resume_point`: a torn
or corrupt file is skipped with a warning), loading it with torch's
`weights_only=True` under evaluators.mm_runtime's allowlist, never `weights_only=False`.  The
checkpoints are deleted once the trial's metrics are written.
mmdet, mmengine and mmcv (compiled ops) are optional dependencies (`scripts/install_seg.sh`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dcbench.backbone import Backbone
from evaluators.detection.mm_configs import (
    MMDetProtocol,
    model_dict,
    runtime_dicts,
    schedule_dicts,
    test_loader,
    test_pipeline,
    train_loader,
    train_pipeline,
)
from evaluators.mm_checkpoints import remove_checkpoints, resume_point  # noqa: F401  (voc0712 / coco call remove_)

INSTALL_HINT = (
    "the mmdetection engine needs mmdet==3.3.0, mmengine==0.10.7 and mmcv==2.1.0 with its compiled ops: "
    "run `scripts/install_seg.sh <your venv's python>`"
)
VOC_METRIC_IOUS = tuple(round(0.5 + 0.05 * i, 2) for i in range(10))  # AP = mean over IoU .50:.95
VOC_PREFIX = "pascal_voc"
COCO_PREFIX = "coco"
WORK_SUBDIR = "mmdet"


class DetectionSetupError(RuntimeError):
    """mmdetection / mmcv are missing or broken."""


def require_mmdet() -> None:
    try:
        import mmdet.models  # noqa: F401
    except (ImportError, AssertionError) as err:
        raise DetectionSetupError(f"{INSTALL_HINT}; import failed with {type(err).__name__}: {err}") from err


def mmdet_available() -> bool:
    try:
        require_mmdet()
    except DetectionSetupError:
        return False
    return True


def voc_data(devkit: Path, train: Sequence[tuple[str, str]], test: tuple[str, str], p: MMDetProtocol,
             num_workers: int) -> dict[str, Any]:
    """VOC07+12 trainval -> VOC07 test (MSS-VOC), VOCMetric 11-point at IoU .50:.95 (AP50 is the page's mAP).

    `train` / `test` are (VOC<year> folder, split).  ConcatDataset ignores `dataset_type` (VOC2007 vs
    VOC2012 metainfo), as mmdet's own voc0712 base does; without it mmengine 0.10 refuses the pair.
    """
    def entry(folder: str, split: str, test_mode: bool) -> dict[str, Any]:
        pipeline = test_pipeline(p.inputs, False) if test_mode else train_pipeline(p.inputs, False)
        out: dict[str, Any] = {"type": "VOCDataset", "data_root": str(devkit),
                               "ann_file": f"{folder}/ImageSets/Main/{split}.txt",
                               "data_prefix": {"sub_data_root": f"{folder}/"}, "pipeline": pipeline}
        if test_mode:
            out["test_mode"] = True
        else:
            out["filter_cfg"] = {"filter_empty_gt": True, "min_size": p.inputs.min_size}
        return out

    train_set = {"type": "ConcatDataset", "ignore_keys": ["dataset_type"],
                 "datasets": [entry(f, s, False) for f, s in train]}
    return {
        "train_dataloader": train_loader(p.inputs, train_set, num_workers, infinite=not p.schedule.by_epoch),
        "val_dataloader": test_loader(entry(*test, True), num_workers),
        "val_evaluator": {"type": "VOCMetric", "metric": "mAP", "eval_mode": "11points",
                          "iou_thrs": list(VOC_METRIC_IOUS)},
    }


def coco_data(train: tuple[Path, Path], test: tuple[Path, Path], classes: Sequence[str], p: MMDetProtocol,
              num_workers: int) -> dict[str, Any]:
    """COCO2017 train -> val (MSS-COCO / MMD-COCOD), CocoMetric bbox + segm; (image dir, json) pairs.

    `classes` (the json's category names in id order) set the dataset's metainfo, so a COCO-format
    set with other categories than COCO's 80 works too; for COCO2017 they are mmdet's own list.
    """
    masks = p.detector.mask_on

    def entry(image_dir: Path, json_file: Path, test_mode: bool) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": "CocoDataset", "data_root": "", "ann_file": str(json_file),
            "data_prefix": {"img": f"{image_dir}/"}, "metainfo": {"classes": tuple(classes)},
            "pipeline": test_pipeline(p.inputs, masks) if test_mode else train_pipeline(p.inputs, masks),
        }
        if test_mode:
            out["test_mode"] = True
        else:
            out["filter_cfg"] = {"filter_empty_gt": True, "min_size": p.inputs.min_size}
        return out

    return {
        "train_dataloader": train_loader(p.inputs, entry(*train, False), num_workers,
                                         infinite=not p.schedule.by_epoch),
        "val_dataloader": test_loader(entry(*test, True), num_workers),
        "val_evaluator": {"type": "CocoMetric", "ann_file": str(test[1]),
                          "metric": ["bbox", "segm"] if masks else ["bbox"], "format_only": False},
    }


def mmdet_config(p: MMDetProtocol, data: Mapping[str, Any], num_classes: int, work_dir: Path, seed: int,
                 sobel: bool) -> dict[str, Any]:
    """The whole mmengine config dict of one trial (plain Python data)."""
    return {
        "model": model_dict(p.detector, num_classes, p.inputs, sobel),
        **data,
        **schedule_dicts(p.schedule),
        **runtime_dicts(p.schedule, seed),
        "work_dir": str(work_dir),
    }


def voc_metrics(metrics: Mapping[str, float]) -> dict[str, float]:
    """AP / AP50 / AP75 in percent from VOCMetric's fractions (`pascal_voc/mAP`, `.../AP50`, ...)."""
    names = {"AP": "mAP", "AP50": "AP50", "AP75": "AP75"}
    return _percent(metrics, {ours: f"{VOC_PREFIX}/{theirs}" for ours, theirs in names.items()})


def coco_metrics(metrics: Mapping[str, float], tasks: Sequence[str] = ("bbox", "segm")) -> dict[str, float]:
    """{task}_AP / _AP50 / _AP75 in percent from CocoMetric's `coco/{task}_mAP`, `_mAP_50`, `_mAP_75`."""
    names = {}
    for task in tasks:
        names.update({f"{task}_AP": f"{COCO_PREFIX}/{task}_mAP",
                      f"{task}_AP50": f"{COCO_PREFIX}/{task}_mAP_50",
                      f"{task}_AP75": f"{COCO_PREFIX}/{task}_mAP_75"})
    return _percent(metrics, names)


def _percent(metrics: Mapping[str, float], names: Mapping[str, str]) -> dict[str, float]:
    missing = [theirs for theirs in names.values() if theirs not in metrics]
    if missing:
        raise KeyError(f"mmdet's evaluator did not report {missing} (got {sorted(metrics)}); an empty "
                       "prediction set gives no metric")
    out = {ours: 100.0 * float(metrics[theirs]) for ours, theirs in names.items()}
    bad = {k: v for k, v in out.items() if not math.isfinite(v) or v < 0}
    if bad:
        raise ValueError(f"mmdet's evaluator gave invalid metrics {bad} (no usable predictions?)")
    return out


def last_validation(history: Sequence[tuple[int, int, dict[str, float]]],
                    p: MMDetProtocol) -> dict[str, float]:
    """The metrics of the validation at the end of training (what mmdet reports for the run)."""
    at = 1 if p.schedule.by_epoch else 0  # history rows: (iteration, epoch, metrics)
    final = [m for row in history if row[at] == p.schedule.length for m in (row[2],)]
    if not final:
        raise RuntimeError(f"no validation ran at the end of training ({p.schedule.length}); "
                           f"validations at {[row[at] for row in history]}")
    return final[-1]


def train_and_validate(cfg_dict: Mapping[str, Any], backbone: Backbone, arch: str, p: MMDetProtocol,
                       log_level: str) -> dict[str, float]:
    """Run mmengine's Runner on `cfg_dict` (resuming from its work_dir when a checkpoint is there)."""
    from mmengine.config import Config
    from mmengine.runner import Runner

    from adapters.mmdet import load_into_detector, to_mmdet
    from evaluators.detection.mm_modules import register
    from evaluators.mm_runtime import LoadWeightsHook, MetricsRecorder, close_file_logs, resume_allowlist

    register()
    resume_from = resume_point(Path(cfg_dict["work_dir"]))  # newest readable one; a torn file is skipped
    resume = {"resume": resume_from is not None, "load_from": resume_from and str(resume_from)}
    config = Config({**cfg_dict, **resume, "launcher": "none", "log_level": log_level,
                     "experiment_name": f"det_{time.time_ns()}"})
    parts = to_mmdet(backbone, arch)  # type: ignore[arg-type]
    loader = LoadWeightsHook(lambda model: load_into_detector(model, parts))
    recorder = MetricsRecorder()
    runner = Runner.from_cfg(config)
    runner.register_hook(loader)
    runner.register_hook(recorder)
    try:
        with resume_allowlist():
            runner.train()
    finally:
        close_file_logs(runner)
    if not (loader.loaded or loader.resumed):
        raise RuntimeError("the backbone was never loaded into the detector (before_train did not run)")
    return last_validation(recorder.history, p)
