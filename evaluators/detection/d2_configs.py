"""The detectron2 engine's protocol (MoCo's): frozen configs with the source of every reference value.

Sources (abbreviations used in the comments below):
  MOCO-BASE  MoCo detection/configs/Base-RCNN-C4-BN.yaml
  MOCO-VOC   MoCo detection/configs/pascal_voc_R_50_C4_24k.yaml + pascal_voc_R_50_C4_24k_moco.yaml
  MOCO-RD    MoCo detection/README.md ("These results are means of 5 trials")
  MSS-FPN    MMSelfSup configs/benchmarks/detectron2/coco_R_50_FPN_1x.yaml + coco_R_50_FPN_1x_moco.yaml
             (MoCo's protocol for COCO: Mask R-CNN R50-FPN 1x, SyncBN in backbone and FPN)
  D2-FPN     detectron2 configs/Base-RCNN-FPN.yaml (the _BASE_ of MSS-FPN)
  D2         detectron2 detectron2/config/defaults.py (values the configs above leave at default)

MOCO-BASE's first version (and MMSelfSup's copy of it) sets RESNETS.NORM "SyncBN"; a later MoCo
commit (d00ef73, "use naiveSyncBN for moco") switched it to "naiveSyncBN". Both are synchronised
BatchNorm; we keep "SyncBN" as MMSelfSup (whose model-zoo page we reproduce) does.

The page's own protocol (mmdetection configs) is in mm_configs.py; a benchmark's Config holds both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

RGB_MEAN = (123.675, 116.28, 103.53)  # MOCO-VOC / MSS-FPN MODEL.PIXEL_MEAN (RGB, 0-255)
RGB_STD = (58.395, 57.12, 57.375)  # MOCO-VOC / MSS-FPN MODEL.PIXEL_STD
VOC_MIN_SIZES = (480, 512, 544, 576, 608, 640, 672, 704, 736, 768, 800)  # MOCO-VOC INPUT.MIN_SIZE_TRAIN
COCO_MIN_SIZES = (640, 672, 704, 736, 768, 800)  # D2-FPN INPUT.MIN_SIZE_TRAIN


@dataclass(frozen=True)
class Inputs:
    """INPUT.* and the pixel normalisation (MODEL.PIXEL_MEAN/STD)."""

    min_size_train: tuple[int, ...] = VOC_MIN_SIZES
    max_size_train: int = 1333  # D2 INPUT.MAX_SIZE_TRAIN
    min_size_test: int = 800  # MOCO-VOC INPUT.MIN_SIZE_TEST (= D2 default)
    max_size_test: int = 1333  # D2 INPUT.MAX_SIZE_TEST
    random_flip: Literal["horizontal", "none"] = "horizontal"  # D2 INPUT.RANDOM_FLIP
    format: Literal["RGB"] = "RGB"  # MOCO-VOC / MSS-FPN INPUT.FORMAT
    pixel_mean: tuple[float, float, float] = RGB_MEAN
    pixel_std: tuple[float, float, float] = RGB_STD


@dataclass(frozen=True)
class Solver:
    """SOLVER.*: SGD, linear warmup, step decay."""

    ims_per_batch: int = 16  # MOCO-BASE SOLVER.IMS_PER_BATCH
    base_lr: float = 0.02  # MOCO-BASE SOLVER.BASE_LR
    max_iter: int = 24000  # MOCO-VOC SOLVER.MAX_ITER
    steps: tuple[int, ...] = (18000, 22000)  # MOCO-VOC SOLVER.STEPS
    warmup_iters: int = 100  # MOCO-VOC SOLVER.WARMUP_ITERS
    warmup_factor: float = 0.001  # D2 SOLVER.WARMUP_FACTOR (linear warmup)
    gamma: float = 0.1  # D2 SOLVER.GAMMA
    momentum: float = 0.9  # D2 SOLVER.MOMENTUM
    weight_decay: float = 0.0001  # D2 SOLVER.WEIGHT_DECAY
    weight_decay_norm: float = 0.0  # D2 SOLVER.WEIGHT_DECAY_NORM
    checkpoint_period: int = 5000  # D2 SOLVER.CHECKPOINT_PERIOD


@dataclass(frozen=True)
class RPN:
    """MODEL.ANCHOR_GENERATOR.* and MODEL.RPN.*."""

    anchor_sizes: tuple[tuple[int, ...], ...] = ((32, 64, 128, 256, 512),)  # D2 (one C4 level)
    aspect_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)  # D2
    pre_nms_topk_train: int = 12000  # D2 (C4)
    post_nms_topk_train: int = 2000  # D2 (C4)
    pre_nms_topk_test: int = 6000  # MOCO-BASE RPN.PRE_NMS_TOPK_TEST
    post_nms_topk_test: int = 1000  # MOCO-BASE RPN.POST_NMS_TOPK_TEST
    nms_thresh: float = 0.7  # D2
    iou_thresholds: tuple[float, float] = (0.3, 0.7)  # D2
    batch_size_per_image: int = 256  # D2
    positive_fraction: float = 0.5  # D2


@dataclass(frozen=True)
class ROIHeads:
    """MODEL.ROI_HEADS.*, ROI_BOX_HEAD.*, ROI_MASK_HEAD.* and TEST.DETECTIONS_PER_IMAGE."""

    batch_size_per_image: int = 512  # D2
    positive_fraction: float = 0.25  # D2
    iou_threshold: float = 0.5  # D2 ROI_HEADS.IOU_THRESHOLDS
    score_thresh_test: float = 0.05  # D2
    nms_thresh_test: float = 0.5  # D2
    detections_per_image: int = 100  # D2 TEST.DETECTIONS_PER_IMAGE
    bbox_reg_weights: tuple[float, float, float, float] = (10.0, 10.0, 5.0, 5.0)  # D2
    box_pooler_resolution: int = 14  # D2 (C4); D2-FPN sets 7
    box_fc_dim: int = 1024  # D2 ROI_BOX_HEAD.FC_DIM (FPN 2fc head)
    box_num_fc: int = 0  # D2 (C4: res5 is the head); D2-FPN sets 2
    mask_pooler_resolution: int = 14  # D2-FPN ROI_MASK_HEAD.POOLER_RESOLUTION
    mask_num_conv: int = 4  # D2-FPN ROI_MASK_HEAD.NUM_CONV
    mask_conv_dim: int = 256  # D2 ROI_MASK_HEAD.CONV_DIM


@dataclass(frozen=True)
class Model:
    """MODEL.* for the architecture: C4 (Faster R-CNN) or FPN (Mask R-CNN)."""

    arch: Literal["C4", "FPN"] = "C4"
    norm: str = "SyncBN"  # MOCO-BASE RESNETS.NORM (see the module docstring) / MSS-FPN RESNETS.NORM
    fpn_norm: str = ""  # MSS-FPN FPN.NORM "SyncBN"; unused by C4
    fpn_out_channels: int = 256  # D2 FPN.OUT_CHANNELS
    freeze_at: int = 0  # MOCO-BASE / MSS-FPN BACKBONE.FREEZE_AT
    stride_in_1x1: bool = False  # MOCO-VOC / MSS-FPN RESNETS.STRIDE_IN_1X1 (torchvision-style)
    res5_extra_norm: bool = True  # MOCO-BASE ROI_HEADS.NAME "Res5ROIHeadsExtraNorm"
    mask_on: bool = False  # MOCO-VOC MODEL.MASK_ON False; MSS-FPN True
    rpn: RPN = RPN()
    roi: ROIHeads = ROIHeads()


@dataclass(frozen=True)
class PreciseBN:
    enabled: bool = True  # MOCO-BASE / MSS-FPN TEST.PRECISE_BN.ENABLED
    num_iter: int = 200  # D2 TEST.PRECISE_BN.NUM_ITER


@dataclass(frozen=True)
class D2VOCProtocol:
    """det_voc0712: Faster R-CNN R50-C4, VOC07+12 trainval -> VOC07 test (MoCo's protocol)."""

    source: str = "MoCo detection/configs/pascal_voc_R_50_C4_24k_moco.yaml; detectron2 defaults"
    trials: int = 5  # MOCO-RD
    train_sets: tuple[tuple[str, str], ...] = (("VOC2007", "trainval"), ("VOC2012", "trainval"))
    test_set: tuple[str, str] = ("VOC2007", "test")  # MOCO-VOC DATASETS.TEST voc_2007_test
    num_classes: int = 20  # MOCO-VOC ROI_HEADS.NUM_CLASSES
    inputs: Inputs = Inputs()
    solver: Solver = Solver()
    model: Model = Model()
    precise_bn: PreciseBN = PreciseBN()


@dataclass(frozen=True)
class D2COCOProtocol:
    """det_coco: Mask R-CNN R50-FPN 1x on COCO2017 train -> val (MoCo's protocol)."""

    source: str = "MMSelfSup configs/benchmarks/detectron2/coco_R_50_FPN_1x_moco.yaml; detectron2"
    trials: int = 1  # MOCO-RD asks for 5 trials on VOC (its variance note); COCO: one run
    train_split: Literal["train", "val"] = "train"  # D2-FPN DATASETS.TRAIN coco_2017_train
    test_split: Literal["train", "val"] = "val"  # D2-FPN DATASETS.TEST coco_2017_val
    inputs: Inputs = Inputs(min_size_train=COCO_MIN_SIZES)
    solver: Solver = Solver(max_iter=90000, steps=(60000, 80000), warmup_iters=1000)  # MSS-FPN; D2 warmup
    model: Model = Model(
        arch="FPN", norm="SyncBN", fpn_norm="SyncBN", res5_extra_norm=False, mask_on=True,
        rpn=RPN(
            anchor_sizes=((32,), (64,), (128,), (256,), (512,)),  # D2-FPN
            pre_nms_topk_train=2000, post_nms_topk_train=1000,  # D2-FPN (per level / per image)
            pre_nms_topk_test=1000, post_nms_topk_test=1000,  # D2-FPN
        ),
        roi=ROIHeads(box_pooler_resolution=7, box_num_fc=2),  # D2-FPN
    )
    precise_bn: PreciseBN = PreciseBN()


D2Protocol = D2VOCProtocol | D2COCOProtocol

# CI-sized variants: same architecture and protocol, ~64-96 px images, a handful of iterations,
# fewer RoIs (the C4 res5 head runs once per RoI, the dominant cost on a CPU).
_TINY_INPUTS = Inputs(min_size_train=(64, 80, 96), max_size_train=160, min_size_test=96, max_size_test=160)
_TINY_SOLVER = Solver(ims_per_batch=2, base_lr=0.01, max_iter=4, steps=(3,), warmup_iters=2,
                      checkpoint_period=1000)
_TINY_PRECISE_BN = PreciseBN(num_iter=2)

TINY_D2_VOC = D2VOCProtocol(
    trials=1, inputs=_TINY_INPUTS, solver=_TINY_SOLVER, precise_bn=_TINY_PRECISE_BN,
    model=Model(
        rpn=RPN(pre_nms_topk_train=300, post_nms_topk_train=64, pre_nms_topk_test=300, post_nms_topk_test=32),
        roi=ROIHeads(batch_size_per_image=32, detections_per_image=50, box_pooler_resolution=8),
    ),
)
TINY_D2_COCO = D2COCOProtocol(
    trials=1, inputs=_TINY_INPUTS, solver=_TINY_SOLVER, precise_bn=_TINY_PRECISE_BN,
    model=Model(
        arch="FPN", fpn_norm="SyncBN", res5_extra_norm=False, mask_on=True,
        rpn=RPN(anchor_sizes=((32,), (64,), (128,), (256,), (512,)), pre_nms_topk_train=300,
                post_nms_topk_train=64, pre_nms_topk_test=300, post_nms_topk_test=32),
        roi=ROIHeads(batch_size_per_image=32, detections_per_image=50, box_pooler_resolution=7, box_num_fc=2,
                     box_fc_dim=64, mask_pooler_resolution=14, mask_num_conv=1, mask_conv_dim=32),
    ),
)
