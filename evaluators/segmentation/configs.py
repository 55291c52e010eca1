"""FCN-D8 on a plain ResNet-50: frozen configs and the mmsegmentation config dicts made from them.

Reference values and where they come from (mmsegmentation 1.x, the configs MMSelfSup 1.x's
`configs/benchmarks/mmsegmentation/{voc12aug,cityscapes}/*.py` inherit with `mmseg::`):
- model: mmseg `configs/_base_/models/fcn_r50-d8.py` with the backbone of MMSelfSup's
  `configs/benchmarks/mmsegmentation/_base_/models/fcn_r50-d8.py`: type `ResNet` (torchvision
  layout, 7x7 stem), depth 50, dilations (1,1,2,4), strides (1,2,1,1), contract_dilation, SyncBN
  (reverted to BN by mmengine when not distributed), norm_eval False, style pytorch.
  FCNHead on stage 4: 512 channels, 2 convs, concat input, dropout 0.1, loss weight 1.0;
  auxiliary FCNHead on stage 3: 256 channels, 1 conv, no concat, dropout 0.1, loss weight 0.4.
  Never `ResNetV1c` (mmseg's default): its deep stem has no counterpart in our checkpoints.
  A Sobel backbone (DeepCluster's published variant) uses our `SobelResNet` instead
  (evaluators/segmentation/mm_backbone.py): the same ResNet with a 2-channel conv1, behind the fixed
  grayscale + Sobel filter, as MMSelfSup 1.x's `ResNetSobel`; everything else is unchanged.
- schedule: mmseg `configs/_base_/schedules/schedule_{20k,40k}.py`: SGD lr 0.01, momentum 0.9,
  weight decay 5e-4; PolyLR power 0.9, eta_min 1e-4, by iteration; IterBasedTrainLoop.
- VOC12+Aug: `configs/fcn/fcn_r50-d8_4xb4-20k_voc12aug-512x512.py` + `_base_/datasets/pascal_voc12_aug.py`:
  512x512 crops, RandomResize scale (2048,512) ratio (0.5,2.0), cat_max_ratio 0.75, flip 0.5,
  PhotoMetricDistortion, Pad; 4 GPUs x 4 images; 20k iterations, val every 2k; whole inference.
- Cityscapes: `configs/fcn/fcn_r50-d8_4xb2-40k_cityscapes-769x769.py` + `_base_/datasets/
  cityscapes_769x769.py`: 769x769 crops, scale (2049,1025); 4 GPUs x 2 images; 40k iterations,
  val every 4k; align_corners True; slide inference, window 769, stride 513.
- resume points: the schedules' CheckpointHook (every 2k / 4k iterations, by iteration); we keep
  the newest `MAX_KEEP_CHECKPOINTS` (a torn newest file leaves the one before it to resume from).

We train in one process: the batch is images_per_gpu x reference_gpus (16 / 8), so the total
batch, the learning rate and the BatchNorm statistics (SyncBN over all GPUs) match the reference.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dcbench.config import execution_detail

MMSEG_SOURCE = "mmsegmentation 1.x configs (MMSelfSup 1.x configs/benchmarks/mmsegmentation inherit them)"
BACKBONE_TYPE = "ResNet"  # MMSelfSup's benchmark backbone; torchvision keys fit it one to one
SOBEL_BACKBONE_TYPE = "SobelResNet"  # ours, registered by evaluators.segmentation.mm_backbone
SOBEL_CHANNELS = 2
MAX_KEEP_CHECKPOINTS = 2  # mmengine iteration checkpoints kept while a run trains (deleted after it)


@dataclass(frozen=True)
class SlideWindow:
    """Sliding-window inference (mmseg test_cfg mode='slide'): window and stride in pixels (h, w)."""

    crop: tuple[int, int]
    stride: tuple[int, int]


@dataclass(frozen=True)
class FCNModel:
    """FCN-D8 with an auxiliary head (mmseg `_base_/models/fcn_r50-d8.py`)."""

    depth: int = 50
    dilations: tuple[int, ...] = (1, 1, 2, 4)
    strides: tuple[int, ...] = (1, 2, 1, 1)
    contract_dilation: bool = True
    norm_type: str = "SyncBN"
    norm_eval: bool = False
    head_channels: int = 512
    head_num_convs: int = 2
    head_concat_input: bool = True
    aux_channels: int = 256
    aux_num_convs: int = 1
    aux_concat_input: bool = False
    aux_loss_weight: float = 0.4
    dropout_ratio: float = 0.1
    align_corners: bool = False
    slide: SlideWindow | None = None  # None: whole-image inference (mmseg test_cfg mode='whole')
    mean: tuple[float, float, float] = (123.675, 116.28, 103.53)  # ImageNet RGB, as SegDataPreProcessor
    std: tuple[float, float, float] = (58.395, 57.12, 57.375)
    source: str = "mmseg configs/_base_/models/fcn_r50-d8.py; backbone: MMSelfSup 1.x benchmark base"


@dataclass(frozen=True)
class Schedule:
    """SGD + poly decay by iteration (mmseg `_base_/schedules/schedule_20k.py` / `_40k.py`)."""

    max_iters: int = 20000
    val_interval: int = 2000
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    poly_power: float = 0.9
    min_lr: float = 1e-4
    log_interval: int = 50
    # default_hooks.checkpoint interval of schedule_20k.py (schedule_40k.py: 4000): the resume points.
    # An execution detail (dcbench.config): it changes where a rerun can continue, not the numbers.
    checkpoint_interval: int = execution_detail(2000)
    source: str = "mmseg configs/_base_/schedules/schedule_20k.py"


@dataclass(frozen=True)
class Pipeline:
    """Augmentation and batching (mmseg `_base_/datasets/pascal_voc12_aug.py` / `cityscapes_769x769.py`)."""

    crop_size: tuple[int, int] = (512, 512)
    scale: tuple[int, int] = (2048, 512)  # RandomResize base scale (train) and Resize scale (val)
    ratio_range: tuple[float, float] = (0.5, 2.0)
    cat_max_ratio: float = 0.75
    flip_prob: float = 0.5
    pad_to_crop: bool = True  # pascal_voc12_aug.py pads in the pipeline; cityscapes pads in the preprocessor
    images_per_gpu: int = 4
    reference_gpus: int = 4
    source: str = "mmseg configs/_base_/datasets/pascal_voc12_aug.py; fcn_r50-d8_4xb4-20k_voc12aug-512x512.py"

    @property
    def total_batch(self) -> int:
        """The reference's total batch, run here in one process."""
        return self.images_per_gpu * self.reference_gpus


@dataclass(frozen=True)
class SegConfig:
    """One segmentation benchmark; the benchmark modules subclass this with their own defaults."""

    model: FCNModel = FCNModel()
    schedule: Schedule = Schedule()
    pipeline: Pipeline = Pipeline()
    source: str = MMSEG_SOURCE


@dataclass(frozen=True)
class Split:
    """One mmseg dataset entry: folders and optional id list under the dataset root."""

    img_path: str
    seg_map_path: str
    ann_file: str | None = None


@dataclass(frozen=True)
class DatasetSpec:
    """What differs between the two benchmarks besides hyperparameters (constants, not config)."""

    benchmark: str
    dataset: str  # the result rows' dataset name
    mmseg_type: str
    subdir: tuple[str, ...]  # the dataset root under --data-root
    num_classes: int
    train: tuple[Split, ...]
    val: Split
    reader: Callable[[Path, str], Sequence[object]]  # dcbench reader: validates the layout, lists a split


def _norm_cfg(model: FCNModel) -> dict[str, Any]:
    return {"type": model.norm_type, "requires_grad": True}


def _head(model: FCNModel, num_classes: int, aux: bool) -> dict[str, Any]:
    return {
        "type": "FCNHead",
        "in_channels": 1024 if aux else 2048,
        "in_index": 2 if aux else 3,
        "channels": model.aux_channels if aux else model.head_channels,
        "num_convs": model.aux_num_convs if aux else model.head_num_convs,
        "concat_input": model.aux_concat_input if aux else model.head_concat_input,
        "dropout_ratio": model.dropout_ratio,
        "num_classes": num_classes,
        "norm_cfg": _norm_cfg(model),
        "align_corners": model.align_corners,
        "loss_decode": {"type": "CrossEntropyLoss", "use_sigmoid": False,
                        "loss_weight": model.aux_loss_weight if aux else 1.0},
    }


def model_dict(
    model: FCNModel, num_classes: int, crop_size: tuple[int, int], sobel: bool = False,
) -> dict[str, Any]:
    """mmseg EncoderDecoder config; the backbone starts random (no init_cfg) and is loaded strictly later.

    `sobel`: the backbone is `SobelResNet` (2-channel conv1 behind the fixed Sobel filter).
    """
    test_cfg: dict[str, Any] = {"mode": "whole"}
    if model.slide is not None:
        slide = model.slide
        test_cfg = {"mode": "slide", "crop_size": tuple(slide.crop), "stride": tuple(slide.stride)}
    return {
        "type": "EncoderDecoder",
        "data_preprocessor": {
            "type": "SegDataPreProcessor", "mean": list(model.mean), "std": list(model.std),
            "bgr_to_rgb": True, "pad_val": 0, "seg_pad_val": 255, "size": tuple(crop_size),
        },
        "backbone": {
            "type": SOBEL_BACKBONE_TYPE if sobel else BACKBONE_TYPE, "depth": model.depth,
            "in_channels": SOBEL_CHANNELS if sobel else 3, "num_stages": 4,
            "out_indices": (0, 1, 2, 3), "dilations": tuple(model.dilations), "strides": tuple(model.strides),
            "norm_cfg": _norm_cfg(model), "norm_eval": model.norm_eval, "style": "pytorch",
            "contract_dilation": model.contract_dilation,
        },
        "decode_head": _head(model, num_classes, aux=False),
        "auxiliary_head": _head(model, num_classes, aux=True),
        "train_cfg": {},
        "test_cfg": test_cfg,
    }


def train_pipeline(p: Pipeline) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = [
        {"type": "LoadImageFromFile"},
        {"type": "LoadAnnotations"},
        {"type": "RandomResize", "scale": tuple(p.scale), "ratio_range": tuple(p.ratio_range),
         "keep_ratio": True},
        {"type": "RandomCrop", "crop_size": tuple(p.crop_size), "cat_max_ratio": p.cat_max_ratio},
        {"type": "RandomFlip", "prob": p.flip_prob},
        {"type": "PhotoMetricDistortion"},
    ]
    if p.pad_to_crop:
        steps.append({"type": "Pad", "size": tuple(p.crop_size)})
    return [*steps, {"type": "PackSegInputs"}]


def val_pipeline(p: Pipeline) -> list[dict[str, Any]]:
    return [
        {"type": "LoadImageFromFile"},
        {"type": "Resize", "scale": tuple(p.scale), "keep_ratio": True},
        {"type": "LoadAnnotations"},
        {"type": "PackSegInputs"},
    ]


def _dataset(spec: DatasetSpec, split: Split, root: Path, pipeline: list[dict[str, Any]]) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "type": spec.mmseg_type, "data_root": str(root),
        "data_prefix": {"img_path": split.img_path, "seg_map_path": split.seg_map_path},
        "pipeline": pipeline,
    }
    if split.ann_file is not None:
        entry["ann_file"] = split.ann_file
    return entry


def _loader(batch_size: int, num_workers: int, dataset: dict[str, Any], shuffle: bool) -> dict[str, Any]:
    return {
        "batch_size": batch_size, "num_workers": num_workers, "persistent_workers": num_workers > 0,
        "sampler": {"type": "InfiniteSampler" if shuffle else "DefaultSampler", "shuffle": shuffle},
        "dataset": dataset,
    }


def data_dicts(cfg: SegConfig, spec: DatasetSpec, root: Path, num_workers: int) -> dict[str, Any]:
    """train/val dataloaders and the IoU evaluator, reading `root` (the dataset's own folder)."""
    train_sets = [_dataset(spec, s, root, train_pipeline(cfg.pipeline)) for s in spec.train]
    train_set = train_sets[0] if len(train_sets) == 1 else {"type": "ConcatDataset", "datasets": train_sets}
    val_set = _dataset(spec, spec.val, root, val_pipeline(cfg.pipeline))
    return {
        "train_dataloader": _loader(cfg.pipeline.total_batch, num_workers, train_set, shuffle=True),
        "val_dataloader": _loader(1, num_workers, val_set, shuffle=False),
        "val_evaluator": {"type": "IoUMetric", "iou_metrics": ["mIoU"]},
    }


def schedule_dicts(s: Schedule) -> dict[str, Any]:
    return {
        "optim_wrapper": {
            "type": "OptimWrapper", "clip_grad": None,
            "optimizer": {"type": "SGD", "lr": s.lr, "momentum": s.momentum, "weight_decay": s.weight_decay},
        },
        "param_scheduler": [{"type": "PolyLR", "eta_min": s.min_lr, "power": s.poly_power, "begin": 0,
                             "end": s.max_iters, "by_epoch": False}],
        "train_cfg": {"type": "IterBasedTrainLoop", "max_iters": s.max_iters, "val_interval": s.val_interval},
        "val_cfg": {"type": "ValLoop"},
    }


def runtime_dicts(s: Schedule, seed: int) -> dict[str, Any]:
    """mmseg `_base_/default_runtime.py` + the schedule's CheckpointHook, less what we never use.

    CheckpointHook writes `iter_<N>.pth` (model, optimizer, schedulers, message hub) into the
    work_dir every `checkpoint_interval` iterations and at the end, keeping the newest
    `MAX_KEEP_CHECKPOINTS`; the runner resumes from them (`resume` / `load_from` are set there,
    per run, from what is on disk).  No SegVisualizationHook (it only draws on request).
    """
    return {
        "default_scope": "mmseg",
        "env_cfg": {"cudnn_benchmark": True, "mp_cfg": {"mp_start_method": "fork", "opencv_num_threads": 0},
                    "dist_cfg": {"backend": "nccl"}},
        "default_hooks": {
            "timer": {"type": "IterTimerHook"},
            "logger": {"type": "LoggerHook", "interval": s.log_interval, "log_metric_by_epoch": False},
            "param_scheduler": {"type": "ParamSchedulerHook"},
            "checkpoint": {"type": "CheckpointHook", "by_epoch": False, "interval": s.checkpoint_interval,
                           "max_keep_ckpts": MAX_KEEP_CHECKPOINTS, "save_last": True},
            "sampler_seed": {"type": "DistSamplerSeedHook"},
        },
        "log_processor": {"by_epoch": False},
        "randomness": {"seed": seed, "deterministic": False},
        "load_from": None,
        "resume": False,
    }


def mmseg_config(
    cfg: SegConfig, spec: DatasetSpec, dataset_root: Path, work_dir: Path, seed: int,
    num_workers: int = 0, sobel: bool = False,
) -> dict[str, Any]:
    """The whole mmengine config dict for one run (plain Python data: dicts, lists, tuples, numbers)."""
    return {
        "model": model_dict(cfg.model, spec.num_classes, cfg.pipeline.crop_size, sobel),
        **data_dicts(cfg, spec, dataset_root, num_workers),
        **schedule_dicts(cfg.schedule),
        **runtime_dicts(cfg.schedule, seed),
        "work_dir": str(work_dir),
    }
