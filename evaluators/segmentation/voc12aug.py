"""seg_voc12aug: FCN-D8 R50 fine-tuned on PASCAL VOC 2012 + SBD aug, mIoU on VOC12 val.

Reference: mmseg configs/fcn/fcn_r50-d8_4xb4-20k_voc12aug-512x512.py (which MMSelfSup 1.x's
configs/benchmarks/mmsegmentation/voc12aug/ inherits), with MMSelfSup's plain `ResNet` backbone;
see evaluators/segmentation/configs.py for every value's source.  The real config is for GPUs
(about a minute per iteration on a CPU); CI runs `TINY`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dcbench.backbone import Backbone
from dcbench.context import RunContext
from dcbench.datasets.vocseg import NUM_CLASSES, read_voc_aug_seg
from dcbench.results import Measurement
from evaluators.segmentation.configs import DatasetSpec, FCNModel, Pipeline, Schedule, SegConfig, Split
from evaluators.segmentation.runner import run_segmentation

SPEC = DatasetSpec(
    benchmark="seg_voc12aug",
    dataset="voc12aug",
    mmseg_type="PascalVOCDataset",
    subdir=("VOCdevkit", "VOC2012"),
    num_classes=NUM_CLASSES,
    train=(
        Split("JPEGImages", "SegmentationClass", "ImageSets/Segmentation/train.txt"),
        Split("JPEGImages", "SegmentationClassAug", "ImageSets/Segmentation/aug.txt"),
    ),
    val=Split("JPEGImages", "SegmentationClass", "ImageSets/Segmentation/val.txt"),
    reader=read_voc_aug_seg,
)


@dataclass(frozen=True)
class Config(SegConfig):
    model: FCNModel = FCNModel()
    schedule: Schedule = Schedule(max_iters=20000, val_interval=2000,
                                  source="mmseg configs/_base_/schedules/schedule_20k.py")
    pipeline: Pipeline = Pipeline(
        crop_size=(512, 512), scale=(2048, 512), pad_to_crop=True, images_per_gpu=4, reference_gpus=4,
        source="mmseg configs/_base_/datasets/pascal_voc12_aug.py; fcn_r50-d8_4xb4-20k_voc12aug-512x512.py",
    )
    source: str = "mmseg configs/fcn/fcn_r50-d8_4xb4-20k_voc12aug-512x512.py (MMSelfSup 1.x benchmark)"


TINY = Config(
    schedule=Schedule(max_iters=4, val_interval=4, log_interval=1, checkpoint_interval=2,
                      source="CI-sized"),
    pipeline=Pipeline(crop_size=(64, 64), scale=(128, 64), images_per_gpu=2, reference_gpus=1,
                      source="CI-sized"),
    source="CI-sized variant of fcn_r50-d8_4xb4-20k_voc12aug-512x512",
)


def run(backbone: Backbone, data_root: Path, config: Config, ctx: RunContext) -> list[Measurement]:
    return run_segmentation(SPEC, backbone, data_root, config, ctx)
