"""det_voc0712: Faster R-CNN R50-C4 fine-tuned on VOC07+12 trainval, AP/AP50/AP75 on VOC07 test.

Two engines (runner.resolve_engine, chosen by `ctx.det_engine`): mmdetection with the page's
config (`Config.mmdet`, mm_configs: MMSelfSup 1.x faster-rcnn_r50-c4_ms-24k_voc0712.py, scored by
mmdet's VOCMetric, 11-point) and detectron2 with MoCo's (`Config.detectron2`, d2_configs, scored
by detectron2's PascalVOCDetectionEvaluator).  Rows: dataset 'voc0712', metrics AP (mean over
IoU .50:.95), AP50 (the page's mAP), AP75, variants trial<i> and mean (percent); `engine` says which.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from dcbench.backbone import Backbone
from dcbench.context import RunContext
from dcbench.datasets.voc import read_voc_det
from dcbench.results import Measurement
from evaluators.detection import mm_engine, runner
from evaluators.detection.d2_configs import TINY_D2_VOC, D2VOCProtocol
from evaluators.detection.mm_configs import TINY_VOC_PROTOCOL, VOC_PROTOCOL, MMDetProtocol

DATASET = "voc0712"
METRICS = ("AP", "AP50", "AP75")
NUM_CLASSES = 20


@dataclass(frozen=True)
class Config:
    """Both engines' protocols for det_voc0712; the run's engine picks one.

    The splits (`detectron2.train_sets` / `test_set`: VOC07+12 trainval -> VOC07 test, the same in
    MSS-VOC) serve both engines.
    """

    mmdet: MMDetProtocol = VOC_PROTOCOL
    detectron2: D2VOCProtocol = D2VOCProtocol()
    source: str = ("mmdet: MMSelfSup 1.x "
                   "configs/benchmarks/mmdetection/voc0712/faster-rcnn_r50-c4_ms-24k_voc0712.py; "
                   "detectron2: MoCo detection/configs/pascal_voc_R_50_C4_24k_moco.yaml")


TINY = Config(mmdet=TINY_VOC_PROTOCOL, detectron2=TINY_D2_VOC, source="CI-sized variants of both protocols")


@dataclass(frozen=True)
class VOCSplits:
    """The VOC folders and splits a config names, under data_root/VOCdevkit."""

    train: tuple[tuple[Path, str, int], ...]  # (VOC<year> folder, split, year)
    test: tuple[Path, str, int]


def voc_splits(data_root: Path, config: D2VOCProtocol) -> VOCSplits:
    devkit = Path(data_root) / "VOCdevkit"

    def entry(folder: str, split: str) -> tuple[Path, str, int]:
        return devkit / folder, split, int(folder[-4:])

    return VOCSplits(tuple(entry(f, s) for f, s in config.train_sets), entry(*config.test_set))


def check_layout(splits: VOCSplits) -> None:
    """Read every split once (DatasetMissingError names a missing file or folder)."""
    for folder, split, _ in (*splits.train, splits.test):
        read_voc_det(folder, split)


def _mm_trial(backbone: Backbone, splits: VOCSplits, protocol: MMDetProtocol, ctx: RunContext, trial: int,
              trial_dir: Path) -> Mapping[str, float]:
    devkit = splits.test[0].parent
    train = [(folder.name, split) for folder, split, _ in splits.train]
    data = mm_engine.voc_data(devkit, train, (splits.test[0].name, splits.test[1]), protocol, ctx.num_workers)
    work_dir = trial_dir / mm_engine.WORK_SUBDIR
    cfg = mm_engine.mmdet_config(protocol, data, NUM_CLASSES, work_dir, ctx.seed + trial, backbone.sobel)
    level = "INFO" if ctx.progress else "WARNING"
    metrics = mm_engine.train_and_validate(cfg, backbone, "C4", protocol, level)
    mm_engine.remove_checkpoints(work_dir)
    return mm_engine.voc_metrics(metrics)


def run(backbone: Backbone, data_root: Path, config: Config, ctx: RunContext) -> list[Measurement]:
    """Train and test the chosen engine's `trials` times; rows per trial and their mean."""
    splits = voc_splits(data_root, config.detectron2)
    check_layout(splits)
    engine = runner.resolve_engine(ctx.det_engine)
    base = runner.run_dir(ctx, engine, config, backbone)
    if engine == runner.DETECTRON2:
        from evaluators.detection import d2_engine

        trials = config.detectron2.trials

        def trial(i: int, trial_dir: Path) -> Mapping[str, float]:
            return d2_engine.run_voc_trial(backbone, splits, config.detectron2, ctx, i, trial_dir)
    else:
        mm_engine.require_mmdet()
        trials = config.mmdet.trials

        def trial(i: int, trial_dir: Path) -> Mapping[str, float]:
            return _mm_trial(backbone, splits, config.mmdet, ctx, i, trial_dir)

    per_trial = runner.run_trials(trials, base, METRICS, trial)
    return runner.trial_rows(DATASET, METRICS, per_trial, engine)
