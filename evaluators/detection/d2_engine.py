"""The detectron2 engine: MoCo's detection protocol driven in-process through detectron2's own API.

As MoCo's detection/train_net.py does: detectron2's default config merged with ours, a
DefaultTrainer whose evaluator is PascalVOCDetectionEvaluator (VOC) or COCOEvaluator (COCO),
`resume_or_load` + `train()` (PreciseBN and the final evaluation are DefaultTrainer's hooks), all
under detectron2's `launch` with `ctx.num_gpus` processes, and MoCo's Res5ROIHeadsExtraNorm (res5
of the C4 box head followed by one more norm layer). Weights: adapters.detectron2's `.pkl`
(MoCo's converter layout, loaded with detectron2's matching heuristics, then checked tensor by
tensor in the worker). A Sobel backbone runs on our registered Sobel-stem backbones (d2_modules).

The job sent to the launched processes (`D2Job`, `D2Dataset`) lives in the leaf module d2_job,
which d2_worker imports instead of this module.
Everything that does not need detectron2 (the config as a nested dict of KEY: value, dataset
records, result parsing) is plain Python here and in records.py, so it is tested without it;
detectron2 is imported only inside the functions that run it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from dcbench.backbone import Backbone
from dcbench.context import RunContext
from evaluators.detection.d2_configs import D2COCOProtocol, D2VOCProtocol
from evaluators.detection.d2_job import (
    C4_MODEL,
    EXTRA_NORM_HEAD,
    FPN_MODEL,
    SOBEL_C4_BACKBONE,
    SOBEL_FPN_BACKBONE,
    D2Dataset,
    D2Job,
)

RESULTS_FILE = "d2_results.json"
WEIGHTS_FILE = "backbone_detectron2.pkl"
FPN_FEATURES = ["res2", "res3", "res4", "res5"]


def _backbone_name(fpn: bool, sobel: bool) -> str:
    if sobel:  # ours, registered by d2_modules: detectron2's backbone with the Sobel stem
        return SOBEL_FPN_BACKBONE if fpn else SOBEL_C4_BACKBONE
    return "build_resnet_fpn_backbone" if fpn else "build_resnet_backbone"


def _model_dict(config: D2VOCProtocol | D2COCOProtocol, num_classes: int, weights: str, device: str,
                sobel: bool) -> dict:
    m, rpn, roi, inputs = config.model, config.model.rpn, config.model.roi, config.inputs
    fpn = m.arch == "FPN"
    roi_name = "StandardROIHeads" if fpn else (EXTRA_NORM_HEAD if m.res5_extra_norm else "Res5ROIHeads")
    model: dict[str, Any] = {
        "META_ARCHITECTURE": "GeneralizedRCNN", "DEVICE": device, "WEIGHTS": weights, "MASK_ON": m.mask_on,
        "PIXEL_MEAN": list(inputs.pixel_mean), "PIXEL_STD": list(inputs.pixel_std),
        "BACKBONE": {"NAME": _backbone_name(fpn, sobel), "FREEZE_AT": m.freeze_at},
        "RESNETS": {"DEPTH": 50, "NORM": m.norm, "STRIDE_IN_1X1": m.stride_in_1x1,
                    "OUT_FEATURES": list(FPN_FEATURES) if fpn else ["res4"]},
        "ANCHOR_GENERATOR": {"SIZES": [list(s) for s in rpn.anchor_sizes],
                             "ASPECT_RATIOS": [list(rpn.aspect_ratios)]},
        "RPN": {"IN_FEATURES": ["p2", "p3", "p4", "p5", "p6"] if fpn else ["res4"],
                "PRE_NMS_TOPK_TRAIN": rpn.pre_nms_topk_train, "POST_NMS_TOPK_TRAIN": rpn.post_nms_topk_train,
                "PRE_NMS_TOPK_TEST": rpn.pre_nms_topk_test, "POST_NMS_TOPK_TEST": rpn.post_nms_topk_test,
                "NMS_THRESH": rpn.nms_thresh, "IOU_THRESHOLDS": list(rpn.iou_thresholds),
                "BATCH_SIZE_PER_IMAGE": rpn.batch_size_per_image, "POSITIVE_FRACTION": rpn.positive_fraction},
        "ROI_HEADS": {"NAME": roi_name, "NUM_CLASSES": num_classes,
                      "IN_FEATURES": ["p2", "p3", "p4", "p5"] if fpn else ["res4"],
                      "BATCH_SIZE_PER_IMAGE": roi.batch_size_per_image,
                      "POSITIVE_FRACTION": roi.positive_fraction,
                      "IOU_THRESHOLDS": [roi.iou_threshold], "SCORE_THRESH_TEST": roi.score_thresh_test,
                      "NMS_THRESH_TEST": roi.nms_thresh_test},
        "ROI_BOX_HEAD": {"POOLER_RESOLUTION": roi.box_pooler_resolution,
                         "BBOX_REG_WEIGHTS": tuple(roi.bbox_reg_weights)},
    }
    if fpn:
        model["FPN"] = {"IN_FEATURES": list(FPN_FEATURES), "NORM": m.fpn_norm,
                        "OUT_CHANNELS": m.fpn_out_channels}
        model["ROI_BOX_HEAD"].update({"NAME": "FastRCNNConvFCHead", "NUM_FC": roi.box_num_fc,
                                      "FC_DIM": roi.box_fc_dim})
    if m.mask_on:
        model["ROI_MASK_HEAD"] = {"NAME": "MaskRCNNConvUpsampleHead", "NUM_CONV": roi.mask_num_conv,
                                  "CONV_DIM": roi.mask_conv_dim,
                                  "POOLER_RESOLUTION": roi.mask_pooler_resolution}
    return model


def build_cfg_dict(config: D2VOCProtocol | D2COCOProtocol, *, num_classes: int, train_names: Sequence[str],
                   test_names: Sequence[str], weights: str, output_dir: str, device: str, seed: int,
                   num_workers: int, sobel: bool = False) -> dict[str, Any]:
    """The detectron2 config we set, as a nested {KEY: value} dict (merged into get_cfg()).

    `sobel`: the backbone is ours with DeepCluster's Sobel stem (d2_modules).
    """
    s, inputs = config.solver, config.inputs
    return {
        "MODEL": _model_dict(config, num_classes, weights, device, sobel),
        "INPUT": {"FORMAT": inputs.format, "MIN_SIZE_TRAIN": tuple(inputs.min_size_train),
                  "MAX_SIZE_TRAIN": inputs.max_size_train, "MIN_SIZE_TEST": inputs.min_size_test,
                  "MAX_SIZE_TEST": inputs.max_size_test, "RANDOM_FLIP": inputs.random_flip},
        "DATASETS": {"TRAIN": tuple(train_names), "TEST": tuple(test_names)},
        "DATALOADER": {"NUM_WORKERS": num_workers},
        "SOLVER": {"IMS_PER_BATCH": s.ims_per_batch, "BASE_LR": s.base_lr, "MAX_ITER": s.max_iter,
                   "STEPS": tuple(s.steps), "WARMUP_ITERS": s.warmup_iters, "WARMUP_FACTOR": s.warmup_factor,
                   "GAMMA": s.gamma, "MOMENTUM": s.momentum, "WEIGHT_DECAY": s.weight_decay,
                   "WEIGHT_DECAY_NORM": s.weight_decay_norm, "CHECKPOINT_PERIOD": s.checkpoint_period},
        "TEST": {"PRECISE_BN": {"ENABLED": config.precise_bn.enabled, "NUM_ITER": config.precise_bn.num_iter},
                 "DETECTIONS_PER_IMAGE": config.model.roi.detections_per_image, "EVAL_PERIOD": 0},
        "OUTPUT_DIR": output_dir,
        "SEED": seed,
    }


def parse_d2_results(results: Mapping[str, Any], kind: Literal["voc", "coco"]) -> dict[str, float]:
    """Our metrics from detectron2's evaluator output ({'bbox': {'AP', 'AP50', 'AP75', ...}, 'segm': ...})."""
    tasks = ("bbox",) if kind == "voc" else ("bbox", "segm")
    out: dict[str, float] = {}
    for task in tasks:
        if task not in results:
            raise KeyError(f"detectron2 results have no {task!r} entry (got {sorted(results)})")
        for metric in ("AP", "AP50", "AP75"):
            if metric not in results[task]:
                raise KeyError(f"detectron2 {task!r} results have no {metric!r} "
                               f"(got {sorted(results[task])})")
            value = float(results[task][metric])
            out[metric if kind == "voc" else f"{task}_{metric}"] = value
    bad = {k: v for k, v in out.items() if not math.isfinite(v)}
    if bad:
        raise ValueError(f"detectron2 reported non-finite {bad} (no predictions from the model?)")
    return out


def _worker_count(ctx: RunContext) -> int:
    return ctx.num_workers if ctx.num_workers > 0 else 4  # detectron2's DATALOADER.NUM_WORKERS default


def _weights(backbone: Backbone, trial_dir: Path) -> str:
    from adapters.detectron2 import write_detectron2_pkl

    path = trial_dir.parent / WEIGHTS_FILE
    if not path.exists():
        write_detectron2_pkl(backbone, path, allow_sobel=True)  # our Sobel backbones take the 2-channel stem
    return str(path)


def _run_job(job: D2Job) -> dict[str, Any]:
    from detectron2.engine import launch

    from evaluators.detection import d2_worker

    results = Path(job.results_path)
    if not results.exists():
        launch(d2_worker.main, job.num_gpus, num_machines=1, machine_rank=0, dist_url="auto", args=(job,))
    if not results.exists():
        raise RuntimeError(f"detectron2 finished without writing its results to {results}")
    return json.loads(results.read_text(encoding="utf-8"))


def _job(config: D2VOCProtocol | D2COCOProtocol, train: Sequence[D2Dataset], test: D2Dataset,
         num_classes: int, backbone: Backbone, ctx: RunContext, trial: int, trial_dir: Path) -> D2Job:
    gpus = ctx.num_gpus if ctx.device.type == "cuda" else 1
    datasets = tuple({d.name: d for d in (*train, test)}.values())
    cfg = build_cfg_dict(config, num_classes=num_classes, train_names=[d.name for d in train],
                         test_names=[test.name], weights=_weights(backbone, trial_dir),
                         output_dir=str(trial_dir), device=ctx.device.type, seed=ctx.seed + trial,
                         num_workers=_worker_count(ctx), sobel=backbone.sobel)
    return D2Job(cfg=cfg, datasets=datasets, results_path=str(trial_dir / RESULTS_FILE),
                 num_gpus=max(gpus, 1), model_name=FPN_MODEL if config.model.arch == "FPN" else C4_MODEL)


def run_voc_trial(backbone: Backbone, splits: Any, config: D2VOCProtocol, ctx: RunContext, trial: int,
                  trial_dir: Path) -> dict[str, float]:
    """One VOC trial; `splits` is voc0712.VOCSplits."""
    def spec(folder: Path, split: str, year: int) -> D2Dataset:
        return D2Dataset(f"dcbench_voc_{year}_{split}", "voc", str(folder), split, year)

    train = [spec(*t) for t in splits.train]
    job = _job(config, train, spec(*splits.test), config.num_classes, backbone, ctx, trial, trial_dir)
    return parse_d2_results(_run_job(job), "voc")


def run_coco_trial(backbone: Backbone, splits: Any, config: D2COCOProtocol, ctx: RunContext, trial: int,
                   trial_dir: Path, num_classes: int) -> dict[str, float]:
    """One COCO trial; `splits` is (train, test) coco.COCOSplit."""
    train, test = splits

    def spec(split: str, where: Any) -> D2Dataset:
        return D2Dataset(f"dcbench_coco_2017_{split}", "coco", str(where.image_dir), str(where.json_file),
                         2017)

    job = _job(config, [spec(config.train_split, train)], spec(config.test_split, test), num_classes,
               backbone, ctx, trial, trial_dir)
    return parse_d2_results(_run_job(job), "coco")
