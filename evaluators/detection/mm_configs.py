"""The page's own detection protocol on mmdetection 3.x: frozen configs and the config dicts made from them.

Sources (abbreviations used below; MMSelfSup 1.x files inherit mmdet's with `mmdet::`):
  MSS-VOC   MMSelfSup 1.x configs/benchmarks/mmdetection/voc0712/faster-rcnn_r50-c4_ms-24k_voc0712.py
  MMD-VOC   mmdet configs/pascal_voc/faster-rcnn_r50-caffe-c4_ms-18k_voc0712.py (the _base_ of MSS-VOC)
  MMD-C4    mmdet configs/_base_/models/faster-rcnn_r50-caffe-c4.py
  MMD-VOCD  mmdet configs/_base_/datasets/voc0712.py
  MSS-COCO  MMSelfSup 1.x configs/benchmarks/mmdetection/coco/mask-rcnn_r50_fpn_ms-1x_coco.py
  MMD-FPN   mmdet configs/mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py + _base_/models/mask-rcnn_r50_fpn.py
  MMD-COCOD mmdet configs/_base_/datasets/coco_instance.py
  MMD-1X    mmdet configs/_base_/schedules/schedule_1x.py;  MMD-RT  _base_/default_runtime.py
The page's tables name the 0.x configs `faster_rcnn_r50_c4_mstrain_24k` and
`mask_rcnn_r50_fpn_mstrain_1x`; MSS-VOC / MSS-COCO are their 1.x form.

MSS-VOC turns mmdet's caffe-style C4 into the torchvision one (style pytorch, RGB mean/std,
SyncBN, nothing frozen, norm_eval False) and replaces the res5 head by MMSelfSup's
`ResLayerExtraNorm` (res5 + one more BatchNorm, MoCo's Res5ROIHeadsExtraNorm): we register our own
(evaluators/detection/mm_modules.py).  Structural values that no config here changes (loss types,
box coders, anchor scales, assigner IoUs) are written in the dict builders with their source.
Pixel normalisation: MSS-VOC writes the RGB ImageNet `data_preprocessor` at the top level of the
file, while its mmdet base sets a caffe one (BGR mean, std 1) inside `model`; mmengine's Runner
takes a top-level preprocessor only when `model` has none, so the file as run keeps the caffe
values.  We use the RGB ImageNet mean/std the backbone was pretrained with (MSS-VOC's evident
intent, and MMD-FPN's own values for COCO); `Inputs.mean/std` is where to change it.
One process runs the reference's whole batch (images_per_gpu x reference_gpus), as segmentation
does; SyncBN then reverts to BatchNorm over that batch (mmengine, not distributed).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

RGB_MEAN = (123.675, 116.28, 103.53)  # MSS-VOC / MMD-FPN data_preprocessor (RGB, 0-255)
RGB_STD = (58.395, 57.12, 57.375)
VOC_TRAIN_SCALES = tuple((1333, s) for s in range(480, 801, 32))  # MSS-VOC RandomChoiceResize
COCO_TRAIN_SCALES = tuple((1333, s) for s in range(640, 801, 32))  # MSS-COCO RandomChoiceResize
EXTRA_NORM_HEAD = "ResLayerExtraNorm"  # MSS-VOC shared_head type; ours in mm_modules.py
SOBEL_BACKBONE = "DCBenchSobelResNet"  # ours in mm_modules.py: mmdet ResNet behind the Sobel filter


@dataclass(frozen=True)
class Inputs:
    """Pipelines, batching and the data preprocessor."""

    train_scales: tuple[tuple[int, int], ...] = VOC_TRAIN_SCALES
    test_scale: tuple[int, int] = (1333, 800)  # MMD-VOC / MMD-COCOD test Resize
    flip_prob: float = 0.5  # RandomFlip
    min_size: int = 32  # filter_cfg min_size (MSS-VOC, MMD-COCOD); filter_empty_gt True
    images_per_gpu: int = 2  # MMD-VOCD / MMD-COCOD train batch_size
    reference_gpus: int = 8  # the 8x2 = 16-image batch of lr 0.02 (MMD-1X auto_scale_lr base_batch_size)
    pad_size_divisor: int = 32
    mean: tuple[float, float, float] = RGB_MEAN
    std: tuple[float, float, float] = RGB_STD
    source: str = "MSS-VOC pipelines; MMD-VOCD batching"

    @property
    def total_batch(self) -> int:
        return self.images_per_gpu * self.reference_gpus


@dataclass(frozen=True)
class Schedule:
    """SGD, linear warmup, step decay; iteration- (VOC) or epoch-based (COCO 1x)."""

    by_epoch: bool = False
    length: int = 24000  # MSS-VOC max_iters (epochs when by_epoch)
    milestones: tuple[int, ...] = (18000, 22000)  # MSS-VOC MultiStepLR
    val_interval: int = 2000  # MSS-VOC train_cfg
    checkpoint_interval: int = 2000  # MSS-VOC default_hooks.checkpoint (resume points)
    warmup_iters: int = 100  # MSS-VOC LinearLR end
    warmup_factor: float = 0.001  # LinearLR start_factor
    gamma: float = 0.1
    lr: float = 0.02  # MMD-VOC / MMD-1X SGD
    momentum: float = 0.9
    weight_decay: float = 1e-4
    log_interval: int = 50  # MMD-RT LoggerHook
    source: str = "MSS-VOC schedule (24k iterations); MMD-VOC optimiser"


@dataclass(frozen=True)
class Proposals:
    """RPN proposals kept in training (rpn_proposal) and testing (test_cfg.rpn), and RPN sampling."""

    nms_pre_train: int = 12000  # MMD-C4; MMD-FPN 2000
    max_train: int = 2000  # MMD-C4; MMD-FPN 1000
    nms_pre_test: int = 6000  # MMD-C4; MMD-FPN 1000
    max_test: int = 1000
    nms_iou: float = 0.7
    sampled: int = 256  # train_cfg.rpn.sampler.num
    pos_fraction: float = 0.5


@dataclass(frozen=True)
class RoIs:
    """R-CNN stage: RoI sampling in training, detections kept in testing."""

    sampled: int = 512  # train_cfg.rcnn.sampler.num
    pos_fraction: float = 0.25
    match_low_quality: bool = False  # MMD-C4 False; MMD-FPN True
    score_thr: float = 0.05  # test_cfg.rcnn
    nms_iou: float = 0.5
    max_per_img: int = 100


@dataclass(frozen=True)
class Detector:
    """The architecture: Faster R-CNN R50-C4 (VOC) or Mask R-CNN R50-FPN (COCO)."""

    arch: Literal["C4", "FPN"] = "C4"
    norm_type: str = "SyncBN"  # MSS-VOC / MSS-COCO norm_cfg (backbone, head; FPN neck, box and mask heads)
    norm_eval: bool = False  # MSS-VOC / MSS-COCO
    frozen_stages: int = -1  # MSS-VOC / MSS-COCO
    extra_norm: bool = True  # MSS-VOC shared_head ResLayerExtraNorm (C4 only)
    bbox_head: str = "BBoxHead"  # MMD-C4; MSS-COCO Shared4Conv1FCBBoxHead
    mask_on: bool = False
    proposals: Proposals = Proposals()
    rois: RoIs = RoIs()
    source: str = "MSS-VOC model over MMD-C4"


@dataclass(frozen=True)
class MMDetProtocol:
    """One benchmark's whole mmdetection protocol."""

    detector: Detector = Detector()
    inputs: Inputs = Inputs()
    schedule: Schedule = Schedule()
    trials: int = 1  # the page reports one fine-tuning run per model
    source: str = "MSS-VOC"


VOC_PROTOCOL = MMDetProtocol()
COCO_PROTOCOL = MMDetProtocol(
    detector=Detector(
        arch="FPN", extra_norm=False, bbox_head="Shared4Conv1FCBBoxHead", mask_on=True,
        proposals=Proposals(nms_pre_train=2000, max_train=1000, nms_pre_test=1000, max_test=1000),
        rois=RoIs(match_low_quality=True), source="MSS-COCO model over MMD-FPN",
    ),
    inputs=Inputs(train_scales=COCO_TRAIN_SCALES, source="MSS-COCO pipeline; MMD-COCOD batching"),
    schedule=Schedule(by_epoch=True, length=12, milestones=(8, 11), val_interval=1, checkpoint_interval=1,
                      warmup_iters=500, source="MMD-1X (12 epochs, warmup 500 iterations)"),
    source="MSS-COCO",
)

# CI-sized variants: the same models and pipelines on ~100 px images, a few iterations and few RoIs
# (the C4 res5 head runs once per sampled RoI in training and once per kept proposal in testing, the
# dominant CPU cost: 8 / 10 instead of 32 / 50 halve a tiny VOC run).  At random init no box passes
# score_thr 0.05, and an empty result gives no metric: the tiny configs keep every box.
_TINY_INPUTS = Inputs(train_scales=((160, 64), (160, 80), (160, 96)), test_scale=(160, 96), min_size=16,
                      images_per_gpu=2, reference_gpus=1, source="CI-sized")
_TINY_SCHEDULE = Schedule(length=4, milestones=(3,), val_interval=4, checkpoint_interval=2, warmup_iters=2,
                          lr=0.01, log_interval=1, source="CI-sized")
_TINY_PROPOSALS = Proposals(nms_pre_train=300, max_train=100, nms_pre_test=300, max_test=10, sampled=64)
_TINY_ROIS = RoIs(sampled=8, score_thr=0.0, max_per_img=50)
TINY_VOC_PROTOCOL = MMDetProtocol(
    detector=Detector(proposals=_TINY_PROPOSALS, rois=_TINY_ROIS, source="CI-sized MSS-VOC model"),
    inputs=_TINY_INPUTS, schedule=_TINY_SCHEDULE, source="CI-sized variant of MSS-VOC",
)
TINY_COCO_PROTOCOL = MMDetProtocol(
    detector=Detector(arch="FPN", extra_norm=False, bbox_head="Shared4Conv1FCBBoxHead", mask_on=True,
                      proposals=_TINY_PROPOSALS, rois=RoIs(sampled=8, score_thr=0.0, max_per_img=50,
                                                            match_low_quality=True),
                      source="CI-sized MSS-COCO model"),
    inputs=_TINY_INPUTS, schedule=_TINY_SCHEDULE, source="CI-sized variant of MSS-COCO",
)


def _norm(d: Detector) -> dict[str, Any]:
    return {"type": d.norm_type, "requires_grad": True}


def _loss_ce(sigmoid: bool) -> dict[str, Any]:
    return {"type": "CrossEntropyLoss", "use_sigmoid": sigmoid, "loss_weight": 1.0}


def _coder(stds: tuple[float, ...]) -> dict[str, Any]:
    return {"type": "DeltaXYWHBBoxCoder", "target_means": [0.0] * 4, "target_stds": list(stds)}


def _sampler(num: int, pos_fraction: float, gt_as_proposals: bool) -> dict[str, Any]:
    return {"type": "RandomSampler", "num": num, "pos_fraction": pos_fraction, "neg_pos_ub": -1,
            "add_gt_as_proposals": gt_as_proposals}


def _assigner(pos: float, neg: float, min_pos: float, low_quality: bool) -> dict[str, Any]:
    return {"type": "MaxIoUAssigner", "pos_iou_thr": pos, "neg_iou_thr": neg, "min_pos_iou": min_pos,
            "match_low_quality": low_quality, "ignore_iof_thr": -1}


def _nms(iou: float) -> dict[str, Any]:
    return {"type": "nms", "iou_threshold": iou}


def train_test_cfg(d: Detector) -> tuple[dict[str, Any], dict[str, Any]]:
    """model.train_cfg / test_cfg (assigner IoUs: MMD-C4 / MMD-FPN, unchanged by MMSelfSup)."""
    p, r = d.proposals, d.rois
    rcnn_train: dict[str, Any] = {
        "assigner": _assigner(0.5, 0.5, 0.5, r.match_low_quality),
        "sampler": _sampler(r.sampled, r.pos_fraction, True), "pos_weight": -1, "debug": False,
    }
    if d.mask_on:
        rcnn_train["mask_size"] = 28  # MMD-FPN
    train = {
        "rpn": {"assigner": _assigner(0.7, 0.3, 0.3, True),
                "sampler": _sampler(p.sampled, p.pos_fraction, False),
                "allowed_border": -1, "pos_weight": -1, "debug": False},
        "rpn_proposal": {"nms_pre": p.nms_pre_train, "max_per_img": p.max_train, "nms": _nms(p.nms_iou),
                         "min_bbox_size": 0},
        "rcnn": rcnn_train,
    }
    rcnn_test: dict[str, Any] = {"score_thr": r.score_thr, "nms": _nms(r.nms_iou),
                                 "max_per_img": r.max_per_img}
    if d.mask_on:
        rcnn_test["mask_thr_binary"] = 0.5  # MMD-FPN
    test = {"rpn": {"nms_pre": p.nms_pre_test, "max_per_img": p.max_test, "nms": _nms(p.nms_iou),
                    "min_bbox_size": 0}, "rcnn": rcnn_test}
    return train, test


def _preprocessor(i: Inputs, masks: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "DetDataPreprocessor", "mean": list(i.mean), "std": list(i.std),
                           "bgr_to_rgb": True, "pad_size_divisor": i.pad_size_divisor}
    if masks:
        out["pad_mask"] = True  # MMD-FPN
    return out


def _resnet(d: Detector, sobel: bool, c4: bool) -> dict[str, Any]:
    """Backbone; random at build (no init_cfg): our checkpoint is loaded and checked before training."""
    stages: dict[str, Any] = ({"num_stages": 3, "strides": (1, 2, 2), "dilations": (1, 1, 1),
                               "out_indices": (2,)} if c4 else {"num_stages": 4, "out_indices": (0, 1, 2, 3)})
    channels = {"in_channels": 2} if sobel else {}  # mmdet's default is 3 (RGB)
    return {"type": SOBEL_BACKBONE if sobel else "ResNet", "depth": 50, **channels, **stages,
            "frozen_stages": d.frozen_stages, "norm_cfg": _norm(d), "norm_eval": d.norm_eval,
            "style": "pytorch"}


def c4_model(d: Detector, num_classes: int, inputs: Inputs, sobel: bool) -> dict[str, Any]:
    """Faster R-CNN R50-C4 (MMD-C4 with the MSS-VOC overrides)."""
    train_cfg, test_cfg = train_test_cfg(d)
    shared_head = {"type": EXTRA_NORM_HEAD if d.extra_norm else "ResLayer", "depth": 50, "stage": 3,
                   "stride": 2, "dilation": 1, "style": "pytorch", "norm_cfg": _norm(d),
                   "norm_eval": d.norm_eval}
    return {
        "type": "FasterRCNN",
        "data_preprocessor": _preprocessor(inputs, masks=False),
        "backbone": _resnet(d, sobel, c4=True),
        "rpn_head": {
            "type": "RPNHead", "in_channels": 1024, "feat_channels": 1024,
            "anchor_generator": {"type": "AnchorGenerator", "scales": [2, 4, 8, 16, 32],
                                 "ratios": [0.5, 1.0, 2.0], "strides": [16]},
            "bbox_coder": _coder((1.0, 1.0, 1.0, 1.0)), "loss_cls": _loss_ce(True),
            "loss_bbox": {"type": "L1Loss", "loss_weight": 1.0},
        },
        "roi_head": {
            "type": "StandardRoIHead", "shared_head": shared_head,
            "bbox_roi_extractor": {"type": "SingleRoIExtractor",
                                   "roi_layer": {"type": "RoIAlign", "output_size": 14, "sampling_ratio": 0},
                                   "out_channels": 1024, "featmap_strides": [16]},
            "bbox_head": {"type": d.bbox_head, "with_avg_pool": True, "roi_feat_size": 7, "in_channels": 2048,
                          "num_classes": num_classes, "bbox_coder": _coder((0.1, 0.1, 0.2, 0.2)),
                          "reg_class_agnostic": False, "loss_cls": _loss_ce(False),
                          "loss_bbox": {"type": "L1Loss", "loss_weight": 1.0}},
        },
        "train_cfg": train_cfg, "test_cfg": test_cfg,
    }


def fpn_model(d: Detector, num_classes: int, inputs: Inputs, sobel: bool) -> dict[str, Any]:
    """Mask R-CNN R50-FPN (MMD-FPN with the MSS-COCO overrides: SyncBN everywhere, 4conv1fc box head)."""
    train_cfg, test_cfg = train_test_cfg(d)
    extractor = {"type": "SingleRoIExtractor", "out_channels": 256, "featmap_strides": [4, 8, 16, 32]}
    model: dict[str, Any] = {
        "type": "MaskRCNN" if d.mask_on else "FasterRCNN",
        "data_preprocessor": _preprocessor(inputs, masks=d.mask_on),
        "backbone": _resnet(d, sobel, c4=False),
        "neck": {"type": "FPN", "in_channels": [256, 512, 1024, 2048], "out_channels": 256, "num_outs": 5,
                 "norm_cfg": _norm(d)},
        "rpn_head": {
            "type": "RPNHead", "in_channels": 256, "feat_channels": 256,
            "anchor_generator": {"type": "AnchorGenerator", "scales": [8], "ratios": [0.5, 1.0, 2.0],
                                 "strides": [4, 8, 16, 32, 64]},
            "bbox_coder": _coder((1.0, 1.0, 1.0, 1.0)), "loss_cls": _loss_ce(True),
            "loss_bbox": {"type": "L1Loss", "loss_weight": 1.0},
        },
        "roi_head": {
            "type": "StandardRoIHead",
            "bbox_roi_extractor": {**extractor,
                                   "roi_layer": {"type": "RoIAlign", "output_size": 7, "sampling_ratio": 0}},
            "bbox_head": {"type": d.bbox_head, "in_channels": 256, "fc_out_channels": 1024,
                          "roi_feat_size": 7,
                          "num_classes": num_classes, "bbox_coder": _coder((0.1, 0.1, 0.2, 0.2)),
                          "reg_class_agnostic": False, "loss_cls": _loss_ce(False),
                          "loss_bbox": {"type": "L1Loss", "loss_weight": 1.0}, "norm_cfg": _norm(d)},
        },
        "train_cfg": train_cfg, "test_cfg": test_cfg,
    }
    if d.mask_on:
        model["roi_head"]["mask_roi_extractor"] = {
            **extractor, "roi_layer": {"type": "RoIAlign", "output_size": 14, "sampling_ratio": 0}}
        model["roi_head"]["mask_head"] = {
            "type": "FCNMaskHead", "num_convs": 4, "in_channels": 256, "conv_out_channels": 256,
            "num_classes": num_classes, "norm_cfg": _norm(d),
            "loss_mask": {"type": "CrossEntropyLoss", "use_mask": True, "loss_weight": 1.0}}
    return model


def model_dict(d: Detector, num_classes: int, inputs: Inputs, sobel: bool = False) -> dict[str, Any]:
    if d.arch == "C4":
        return c4_model(d, num_classes, inputs, sobel)
    if d.arch == "FPN":
        return fpn_model(d, num_classes, inputs, sobel)
    raise ValueError(f"unknown detector architecture {d.arch!r}; use 'C4' or 'FPN'")


def train_pipeline(i: Inputs, masks: bool) -> list[dict[str, Any]]:
    return [
        {"type": "LoadImageFromFile"},
        {"type": "LoadAnnotations", "with_bbox": True, "with_mask": masks},
        {"type": "RandomChoiceResize", "scales": [tuple(s) for s in i.train_scales], "keep_ratio": True},
        {"type": "RandomFlip", "prob": i.flip_prob},
        {"type": "PackDetInputs"},
    ]


def test_pipeline(i: Inputs, masks: bool) -> list[dict[str, Any]]:
    return [
        {"type": "LoadImageFromFile"},
        {"type": "Resize", "scale": tuple(i.test_scale), "keep_ratio": True},
        {"type": "LoadAnnotations", "with_bbox": True, "with_mask": masks},
        {"type": "PackDetInputs",
         "meta_keys": ("img_id", "img_path", "ori_shape", "img_shape", "scale_factor")},
    ]


def train_loader(i: Inputs, dataset: dict[str, Any], num_workers: int, infinite: bool) -> dict[str, Any]:
    """MMD-VOCD / MMD-COCOD train loader (AspectRatioBatchSampler); MSS-VOC samples infinitely."""
    return {"batch_size": i.total_batch, "num_workers": num_workers, "persistent_workers": num_workers > 0,
            "sampler": {"type": "InfiniteSampler" if infinite else "DefaultSampler", "shuffle": True},
            "batch_sampler": {"type": "AspectRatioBatchSampler"}, "dataset": dataset}


def test_loader(dataset: dict[str, Any], num_workers: int) -> dict[str, Any]:
    return {"batch_size": 1, "num_workers": num_workers, "persistent_workers": num_workers > 0,
            "drop_last": False, "sampler": {"type": "DefaultSampler", "shuffle": False}, "dataset": dataset}


def schedule_dicts(s: Schedule) -> dict[str, Any]:
    loop = ({"type": "EpochBasedTrainLoop", "max_epochs": s.length, "val_interval": s.val_interval}
            if s.by_epoch else
            {"type": "IterBasedTrainLoop", "max_iters": s.length, "val_interval": s.val_interval})
    return {
        "optim_wrapper": {"type": "OptimWrapper",
                          "optimizer": {"type": "SGD", "lr": s.lr, "momentum": s.momentum,
                                        "weight_decay": s.weight_decay}},
        "param_scheduler": [
            {"type": "LinearLR", "start_factor": s.warmup_factor, "by_epoch": False, "begin": 0,
             "end": s.warmup_iters},
            {"type": "MultiStepLR", "begin": 0, "end": s.length, "by_epoch": s.by_epoch,
             "milestones": list(s.milestones), "gamma": s.gamma},
        ],
        "train_cfg": loop,
        "val_cfg": {"type": "ValLoop"},
    }


def runtime_dicts(s: Schedule, seed: int) -> dict[str, Any]:
    """MMD-RT less the visualisation hooks; CheckpointHook at the reference's interval (resume points)."""
    return {
        "default_scope": "mmdet",
        "env_cfg": {"cudnn_benchmark": False, "mp_cfg": {"mp_start_method": "fork", "opencv_num_threads": 0},
                    "dist_cfg": {"backend": "nccl"}},
        "default_hooks": {
            "timer": {"type": "IterTimerHook"},
            "logger": {"type": "LoggerHook", "interval": s.log_interval},
            "param_scheduler": {"type": "ParamSchedulerHook"},
            "checkpoint": {"type": "CheckpointHook", "by_epoch": s.by_epoch,
                           "interval": s.checkpoint_interval, "max_keep_ckpts": 1},
            "sampler_seed": {"type": "DistSamplerSeedHook"},
        },
        "log_processor": {"type": "LogProcessor", "window_size": 50, "by_epoch": s.by_epoch},
        "randomness": {"seed": seed, "deterministic": False},
        "load_from": None,
    }
