"""det_voc0712: Faster R-CNN R50-C4 fine-tuned on VOC07+12 trainval, AP/AP50/AP75 on VOC07 test.

MoCo's protocol (configs.VOCDetConfig names every value's source), run by detectron2 when it is
importable and by the embedded torchvision engine otherwise (rows carry the engine's name).
Rows: dataset 'voc0712', metrics AP, AP50, AP75, variants trial<i> and mean (percent).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch

from dcbench.backbone import Backbone
from dcbench.context import RunContext
from dcbench.datasets.voc import VOC_CLASSES, read_voc_det
from dcbench.results import Measurement
from evaluators.detection import runner, tv_engine
from evaluators.detection.c4 import build_faster_rcnn_c4
from evaluators.detection.configs import TINY_VOC, VOCDetConfig
from evaluators.detection.records import Record, voc_records
from evaluators.detection.tv_data import TestDataset, TrainDataset, trainable
from evaluators.detection.voc_eval import ImageDetections, ImageTruth, evaluate_voc

Config = VOCDetConfig
TINY = TINY_VOC
DATASET = "voc0712"
METRICS = ("AP", "AP50", "AP75")


@dataclass(frozen=True)
class VOCSplits:
    """The VOC folders and splits a config names, under data_root/VOCdevkit."""

    train: tuple[tuple[Path, str, int], ...]  # (VOC<year> folder, split, year)
    test: tuple[Path, str, int]


def voc_splits(data_root: Path, config: VOCDetConfig) -> VOCSplits:
    devkit = Path(data_root) / "VOCdevkit"

    def entry(folder: str, split: str) -> tuple[Path, str, int]:
        return devkit / folder, split, int(folder[-4:])

    return VOCSplits(tuple(entry(f, s) for f, s in config.train_sets), entry(*config.test_set))


def _truths(test: tuple[Path, str, int]) -> list[ImageTruth]:
    return [ImageTruth(r.image_id, r.boxes, r.labels, r.difficult) for r in read_voc_det(test[0], test[1])]


def _tv_trial(backbone: Backbone, config: VOCDetConfig, ctx: RunContext, train: list[Record],
              test: list[Record], truths: list[ImageTruth], trial: int,
              trial_dir: Path) -> Mapping[str, float]:
    seed = ctx.seed + trial
    torch.manual_seed(seed)
    model = build_faster_rcnn_c4(backbone, config.inputs, config.model, config.num_classes)
    spec = tv_engine.TrainSpec(
        solver=config.solver, inputs=config.inputs, precise_bn=config.precise_bn,
        micro_batch=config.tv_micro_batch, seed=seed, device=ctx.device, num_workers=ctx.num_workers,
        progress=ctx.progress, with_masks=False,
    )
    tv_engine.train(model, TrainDataset(train, with_masks=False), spec, trial_dir)
    preds = tv_engine.predict(model, TestDataset(test), spec)
    dets = [ImageDetections(test[p.index]["image_id"], p.boxes, p.scores, p.labels) for p in preds]
    metrics = evaluate_voc(truths, dets, VOC_CLASSES)
    tv_engine.remove_checkpoint(trial_dir)
    return metrics


def run(backbone: Backbone, data_root: Path, config: VOCDetConfig, ctx: RunContext) -> list[Measurement]:
    """Train and test `config.trials` times; rows per trial and their mean."""
    splits = voc_splits(data_root, config)
    train = [rec for folder, split, _ in splits.train for rec in voc_records(folder, split)]
    test = voc_records(splits.test[0], splits.test[1])
    truths = _truths(splits.test)
    engine = runner.resolve_engine(config.engine, backbone.sobel)
    base = runner.run_dir(ctx, engine, config, backbone)
    if engine == runner.DETECTRON2:
        from evaluators.detection import d2_engine

        def trial(i: int, trial_dir: Path) -> Mapping[str, float]:
            return d2_engine.run_voc_trial(backbone, splits, config, ctx, i, trial_dir)
    else:
        kept = trainable(train)

        def trial(i: int, trial_dir: Path) -> Mapping[str, float]:
            return _tv_trial(backbone, config, ctx, kept, test, truths, i, trial_dir)

    per_trial = runner.run_trials(config.trials, base, METRICS, trial)
    return runner.trial_rows(DATASET, METRICS, per_trial, engine)
