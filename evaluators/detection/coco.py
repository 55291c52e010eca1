"""det_coco: Mask R-CNN R50-FPN 1x fine-tuned on COCO2017 train, box and mask AP on val.

Two engines (runner.resolve_engine, chosen by `ctx.det_engine`): mmdetection with the page's
config (`Config.mmdet`, mm_configs: MMSelfSup 1.x mask-rcnn_r50_fpn_ms-1x_coco.py, scored by mmdet's
CocoMetric) and detectron2 with MoCo's (`Config.detectron2`, d2_configs, COCOEvaluator).
Rows: dataset 'coco2017', metrics bbox_AP, bbox_AP50, bbox_AP75, segm_AP, segm_AP50, segm_AP75,
variants trial<i> and mean (percent); `engine` says which engine made them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from dcbench.backbone import Backbone
from dcbench.context import RunContext
from dcbench.datasets.coco import coco_paths
from dcbench.results import Measurement
from evaluators.detection import mm_engine, runner
from evaluators.detection.d2_configs import TINY_D2_COCO, D2COCOProtocol
from evaluators.detection.mm_configs import COCO_PROTOCOL, TINY_COCO_PROTOCOL, MMDetProtocol
from evaluators.detection.records import coco_records

DATASET = "coco2017"
METRICS = ("bbox_AP", "bbox_AP50", "bbox_AP75", "segm_AP", "segm_AP50", "segm_AP75")


@dataclass(frozen=True)
class Config:
    """Both engines' protocols for det_coco; the run's engine picks one.

    The splits (`detectron2.train_split` / `test_split`: COCO2017 train -> val, the same in
    MSS-COCO) serve both engines.
    """

    mmdet: MMDetProtocol = COCO_PROTOCOL
    detectron2: D2COCOProtocol = D2COCOProtocol()
    source: str = ("mmdet: MMSelfSup 1.x "
                   "configs/benchmarks/mmdetection/coco/mask-rcnn_r50_fpn_ms-1x_coco.py; "
                   "detectron2: MMSelfSup configs/benchmarks/detectron2/coco_R_50_FPN_1x_moco.yaml")


TINY = Config(mmdet=TINY_COCO_PROTOCOL, detectron2=TINY_D2_COCO, source="CI-sized variants of both protocols")


@dataclass(frozen=True)
class COCOSplit:
    image_dir: Path
    json_file: Path


def coco_splits(data_root: Path, config: D2COCOProtocol) -> tuple[COCOSplit, COCOSplit]:
    root = Path(data_root) / "coco"
    return (COCOSplit(*coco_paths(root, config.train_split)), COCOSplit(*coco_paths(root, config.test_split)))


def _classes(train: COCOSplit, test: COCOSplit) -> tuple[str, ...]:
    """The category names in id order; train and test must list the same ones."""
    (_, train_meta), (_, test_meta) = coco_records(train.image_dir, train.json_file), coco_records(
        test.image_dir, test.json_file)
    if train_meta.thing_classes != test_meta.thing_classes:
        raise ValueError(f"{train.json_file} and {test.json_file} list different categories")
    return test_meta.thing_classes


def _mm_trial(backbone: Backbone, splits: tuple[COCOSplit, COCOSplit], classes: tuple[str, ...],
              protocol: MMDetProtocol, ctx: RunContext, trial: int, trial_dir: Path) -> Mapping[str, float]:
    train, test = splits
    data = mm_engine.coco_data((train.image_dir, train.json_file), (test.image_dir, test.json_file), classes,
                               protocol, ctx.num_workers)
    work_dir = trial_dir / mm_engine.WORK_SUBDIR
    cfg = mm_engine.mmdet_config(protocol, data, len(classes), work_dir, ctx.seed + trial, backbone.sobel)
    level = "INFO" if ctx.progress else "WARNING"
    metrics = mm_engine.train_and_validate(cfg, backbone, "FPN", protocol, level)
    mm_engine.remove_checkpoints(work_dir)
    return mm_engine.coco_metrics(metrics)


def run(backbone: Backbone, data_root: Path, config: Config, ctx: RunContext) -> list[Measurement]:
    """Train and test the chosen engine's `trials` times; rows per trial and their mean."""
    splits = coco_splits(data_root, config.detectron2)
    classes = _classes(*splits)
    engine = runner.resolve_engine(ctx.det_engine)
    base = runner.run_dir(ctx, engine, config, backbone)
    if engine == runner.DETECTRON2:
        from evaluators.detection import d2_engine

        trials = config.detectron2.trials

        def trial(i: int, trial_dir: Path) -> Mapping[str, float]:
            return d2_engine.run_coco_trial(backbone, splits, config.detectron2, ctx, i, trial_dir,
                                            len(classes))
    else:
        mm_engine.require_mmdet()
        trials = config.mmdet.trials

        def trial(i: int, trial_dir: Path) -> Mapping[str, float]:
            return _mm_trial(backbone, splits, classes, config.mmdet, ctx, i, trial_dir)

    per_trial = runner.run_trials(trials, base, METRICS, trial)
    return runner.trial_rows(DATASET, METRICS, per_trial, engine)
