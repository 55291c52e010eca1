"""Train and evaluate FCN-D8 with mmsegmentation's own Runner, in this process.

Flow: check the dataset layout (dcbench readers) -> write the backbone as an mmseg checkpoint
(adapters.mmseg) -> build mmengine's Runner from our config dict -> before the first iteration,
load that checkpoint into `model.backbone` strictly (every parameter and buffer, no extra key, same
shapes; anything else raises `BackboneLoadError`) -> train -> read mIoU from the last validation.
A Sobel backbone gets our `SobelResNet` (mm_backbone.py): mmseg's ResNet with its 2-channel conv1
behind the fixed grayscale + Sobel filter, applied to the normalised image; the rest is the same.

mmsegmentation and mmcv (with compiled ops) are optional dependencies: `scripts/install_seg.sh`
installs them; without them the run fails with that instruction.  mmengine's checkpoints are
never written nor loaded (see configs.runtime_dicts), so an interrupted run starts again.
The run is one process: mmengine puts the model on CUDA when a GPU is visible (else the CPU), and
the reference's multi-GPU batch is run as one batch of the same total size (configs.Pipeline).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from adapters.load import require_fixed_sobel
from adapters.mmseg import check_backbone_load, write_mmseg_checkpoint
from dcbench.backbone import Backbone
from dcbench.context import RunContext
from dcbench.fileio import atomic_write_text
from dcbench.results import Measurement
from evaluators.segmentation.configs import DatasetSpec, SegConfig, mmseg_config

INSTALL_HINT = (
    "the segmentation benchmarks need mmsegmentation==1.2.2, mmengine==0.10.7 and mmcv==2.1.0 with its "
    "compiled ops: run `scripts/install_seg.sh <your venv's python>` (builds mmcv once, then installs)"
)
CHECKPOINT_NAME = "backbone_mmseg.pth"
METRICS_NAME = "metrics.json"
METRIC = "mIoU"


class SegmentationSetupError(RuntimeError):
    """mmsegmentation / mmcv are missing or broken."""


def require_mmseg() -> None:
    """Import mmseg's models (which load mmcv's compiled ops) or raise with the install command."""
    try:
        import mmseg.models  # noqa: F401
    except (ImportError, AssertionError) as err:
        reason = f"{type(err).__name__}: {err}"
        raise SegmentationSetupError(f"{INSTALL_HINT}; import failed with {reason}") from err


def check_dataset(spec: DatasetSpec, root: Path) -> tuple[int, int]:
    """Validate the on-disk layout (DatasetMissingError names it); return (#train, #val) images."""
    return len(spec.reader(root, "train")), len(spec.reader(root, "val"))


def load_backbone_checkpoint(module: nn.Module, path: Path) -> None:
    """Load `path` (weights_only) into `module` after checking keys and shapes match exactly."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(checkpoint, Mapping) or not isinstance(checkpoint.get("state_dict"), Mapping):
        raise ValueError(f"{path}: expected a dict with a 'state_dict' mapping (adapters.mmseg format)")
    state = checkpoint["state_dict"]
    check_backbone_load({k: tuple(v.shape) for k, v in module.state_dict().items()}, state)
    module.load_state_dict(dict(state), strict=True)


def final_metrics(history: list[tuple[int, dict[str, float]]], max_iters: int) -> dict[str, float]:
    """The metrics of the validation run at the last iteration (the number mmseg reports)."""
    final = [metrics for step, metrics in history if step == max_iters]
    if not final:
        steps = [s for s, _ in history]
        raise RuntimeError(f"no validation ran at iteration {max_iters}; validations at {steps}")
    metrics = final[-1]
    if METRIC not in metrics or not math.isfinite(metrics[METRIC]):
        raise RuntimeError(f"validation did not give a finite {METRIC}: {metrics}")
    return metrics


def _close_file_logs(runner: Any) -> None:
    for handler in list(runner.logger.handlers):
        if isinstance(handler, logging.FileHandler):
            handler.close()
            runner.logger.removeHandler(handler)


def distributed_dicts(cfg_dict: dict[str, Any], world_size: int) -> dict[str, Any]:
    """mmengine's launcher for `world_size` processes (torchrun / submitit export the env: 'pytorch'),
    with the reference's total batch split over them; one process keeps the whole batch."""
    if world_size <= 1:
        return {**cfg_dict, "launcher": "none"}
    loader = dict(cfg_dict["train_dataloader"])
    total = int(loader["batch_size"])
    if total % world_size:
        raise ValueError(f"total batch {total} is not divisible by the world size {world_size}")
    loader["batch_size"] = total // world_size
    return {**cfg_dict, "launcher": "pytorch", "train_dataloader": loader}


def _train(cfg_dict: dict[str, Any], checkpoint: Path, log_level: str) -> dict[str, float]:
    from mmengine.config import Config
    from mmengine.runner import Runner

    import evaluators.segmentation.mm_backbone  # noqa: F401  (registers SobelResNet with mmseg)
    from evaluators.segmentation.mm_hooks import LoadBackboneHook, MetricsRecorder

    config = Config({**distributed_dicts(cfg_dict, int(os.environ.get("WORLD_SIZE", "1"))),
                     "log_level": log_level, "experiment_name": f"seg_{time.time_ns()}"})
    runner = Runner.from_cfg(config)
    loader = LoadBackboneHook(lambda module: load_backbone_checkpoint(module, checkpoint))
    recorder = MetricsRecorder()
    runner.register_hook(loader)
    runner.register_hook(recorder)
    try:
        runner.train()
    finally:
        _close_file_logs(runner)
    if not loader.loaded:
        raise RuntimeError("the backbone checkpoint was never loaded (before_train did not run)")
    return final_metrics(recorder.history, cfg_dict["train_cfg"]["max_iters"])


def run_segmentation(
    spec: DatasetSpec, backbone: Backbone, data_root: Path, config: SegConfig, ctx: RunContext,
) -> list[Measurement]:
    """Fine-tune FCN-D8 from `backbone` on `spec`'s dataset and return its validation mIoU."""
    root = Path(data_root).joinpath(*spec.subdir)
    check_dataset(spec, root)
    work_dir = Path(ctx.work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = work_dir / CHECKPOINT_NAME
    require_fixed_sobel(backbone, "mmsegmentation")  # our SobelResNet applies the fixed filter only
    write_mmseg_checkpoint(backbone, checkpoint, allow_sobel=True)  # SobelResNet takes the 2-channel stem
    try:
        require_mmseg()
        cfg_dict = mmseg_config(config, spec, root, work_dir / "mmseg", ctx.seed, ctx.num_workers,
                                sobel=backbone.sobel)
        metrics = _train(cfg_dict, checkpoint, "INFO" if ctx.progress else "WARNING")
    finally:
        checkpoint.unlink(missing_ok=True)  # a copy of the backbone's weights; ~100 MB
    atomic_write_text(work_dir / METRICS_NAME, json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    return [Measurement(dataset=spec.dataset, metric=METRIC, value=metrics[METRIC], engine="mmseg")]
