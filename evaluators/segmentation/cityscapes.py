"""seg_cityscapes: FCN-D8 R50 fine-tuned on Cityscapes fine (train ids), mIoU on val.

Reference: mmseg configs/fcn/fcn_r50-d8_4xb2-40k_cityscapes-769x769.py (which MMSelfSup 1.x's
configs/benchmarks/mmsegmentation/cityscapes/ inherits), with MMSelfSup's plain `ResNet` backbone;
see evaluators/segmentation/configs.py for every value's source.  CI runs `TINY`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dcbench.backbone import Backbone
from dcbench.context import RunContext
from dcbench.datasets.cityscapes import NUM_CLASSES, read_cityscapes
from dcbench.results import Measurement
from evaluators.segmentation.configs import (
    DatasetSpec,
    FCNModel,
    Pipeline,
    Schedule,
    SegConfig,
    SlideWindow,
    Split,
)
from evaluators.segmentation.runner import run_segmentation

SPEC = DatasetSpec(
    benchmark="seg_cityscapes",
    dataset="cityscapes",
    mmseg_type="CityscapesDataset",
    subdir=("cityscapes",),
    num_classes=NUM_CLASSES,
    train=(Split("leftImg8bit/train", "gtFine/train"),),
    val=Split("leftImg8bit/val", "gtFine/val"),
    reader=read_cityscapes,
)


@dataclass(frozen=True)
class Config(SegConfig):
    model: FCNModel = FCNModel(
        align_corners=True, slide=SlideWindow(crop=(769, 769), stride=(513, 513)),
        source="mmseg configs/_base_/models/fcn_r50-d8.py + fcn_r50-d8_4xb2-40k_cityscapes-769x769.py",
    )
    schedule: Schedule = Schedule(max_iters=40000, val_interval=4000, checkpoint_interval=4000,
                                  source="mmseg configs/_base_/schedules/schedule_40k.py")
    pipeline: Pipeline = Pipeline(
        crop_size=(769, 769), scale=(2049, 1025), pad_to_crop=False, images_per_gpu=2, reference_gpus=4,
        source="mmseg configs/_base_/datasets/cityscapes.py + cityscapes_769x769.py",
    )
    source: str = "mmseg configs/fcn/fcn_r50-d8_4xb2-40k_cityscapes-769x769.py (MMSelfSup 1.x benchmark)"


TINY = Config(
    model=FCNModel(align_corners=True, slide=SlideWindow(crop=(64, 64), stride=(43, 43)), source="CI-sized"),
    schedule=Schedule(max_iters=4, val_interval=4, log_interval=1, checkpoint_interval=2,
                      source="CI-sized"),
    pipeline=Pipeline(crop_size=(64, 64), scale=(128, 64), pad_to_crop=False, images_per_gpu=2,
                      reference_gpus=1, source="CI-sized"),
    source="CI-sized variant of fcn_r50-d8_4xb2-40k_cityscapes-769x769",
)


def run(backbone: Backbone, data_root: Path, config: Config, ctx: RunContext) -> list[Measurement]:
    return run_segmentation(SPEC, backbone, data_root, config, ctx)
