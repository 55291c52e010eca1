"""det_coco: Mask R-CNN R50-FPN 1x fine-tuned on COCO2017 train, box and mask AP on val.

MoCo's protocol (configs.COCODetConfig names every value's source), run by detectron2 when it is
importable and by the embedded torchvision engine otherwise (rows carry the engine's name).
Rows: dataset 'coco2017', metrics bbox_AP, bbox_AP50, bbox_AP75, segm_AP, segm_AP50, segm_AP75,
variants trial<i> and mean (percent).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from dcbench.backbone import Backbone
from dcbench.context import RunContext
from dcbench.datasets.coco import coco_paths
from dcbench.results import Measurement
from evaluators.detection import runner, tv_engine
from evaluators.detection.coco_eval import detections_to_coco_json, evaluate_coco
from evaluators.detection.configs import TINY_COCO, COCODetConfig
from evaluators.detection.fpn import build_mask_rcnn_fpn
from evaluators.detection.records import CocoMeta, Record, coco_records
from evaluators.detection.tv_data import TestDataset, TrainDataset, trainable

Config = COCODetConfig
TINY = TINY_COCO
DATASET = "coco2017"
METRICS = ("bbox_AP", "bbox_AP50", "bbox_AP75", "segm_AP", "segm_AP50", "segm_AP75")


@dataclass(frozen=True)
class COCOSplit:
    image_dir: Path
    json_file: Path


def coco_splits(data_root: Path, config: COCODetConfig) -> tuple[COCOSplit, COCOSplit]:
    root = Path(data_root) / "coco"
    return (COCOSplit(*coco_paths(root, config.train_split)), COCOSplit(*coco_paths(root, config.test_split)))


def _tv_trial(backbone: Backbone, config: COCODetConfig, ctx: RunContext, train: list[Record],
              test: list[Record], test_meta: CocoMeta, trial: int, trial_dir: Path) -> Mapping[str, float]:
    seed = ctx.seed + trial
    torch.manual_seed(seed)
    model = build_mask_rcnn_fpn(backbone, config.inputs, config.model, len(test_meta.thing_classes))
    spec = tv_engine.TrainSpec(
        solver=config.solver, inputs=config.inputs, precise_bn=config.precise_bn,
        micro_batch=config.tv_micro_batch, seed=seed, device=ctx.device, num_workers=ctx.num_workers,
        progress=ctx.progress, with_masks=True,
    )
    tv_engine.train(model, TrainDataset(train, with_masks=True), spec, trial_dir)
    preds = tv_engine.predict(model, TestDataset(test), spec)
    to_dataset_id = {v: k for k, v in test_meta.thing_dataset_id_to_contiguous_id.items()}
    results = [r for p in preds for r in detections_to_coco_json(
        test[p.index]["image_id"], p.boxes, p.scores, p.labels, to_dataset_id, p.masks)]
    metrics = evaluate_coco(Path(test_meta.json_file), results, [r["image_id"] for r in test])
    tv_engine.remove_checkpoint(trial_dir)
    return metrics


def run(backbone: Backbone, data_root: Path, config: COCODetConfig, ctx: RunContext) -> list[Measurement]:
    """Train and test `config.trials` times; rows per trial and their mean."""
    train_split, test_split = coco_splits(data_root, config)
    test, test_meta = coco_records(test_split.image_dir, test_split.json_file)
    engine = runner.resolve_engine(config.engine, backbone.sobel)
    base = runner.run_dir(ctx, engine, config, backbone)
    if engine == runner.DETECTRON2:
        from evaluators.detection import d2_engine

        def trial(i: int, trial_dir: Path) -> Mapping[str, float]:
            return d2_engine.run_coco_trial(backbone, (train_split, test_split), config, ctx, i, trial_dir,
                                            len(test_meta.thing_classes))
    else:
        train, train_meta = coco_records(train_split.image_dir, train_split.json_file)
        if train_meta.thing_classes != test_meta.thing_classes:
            raise ValueError(f"{train_split.json_file} and {test_split.json_file} list different categories")
        kept = trainable(train)

        def trial(i: int, trial_dir: Path) -> Mapping[str, float]:
            return _tv_trial(backbone, config, ctx, kept, test, test_meta, i, trial_dir)

    per_trial = runner.run_trials(config.trials, base, METRICS, trial)
    return runner.trial_rows(DATASET, METRICS, per_trial, engine)
