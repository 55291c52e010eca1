"""Train and evaluate FCN-D8 with mmsegmentation's own Runner, in this process.

Flow: check the dataset layout (dcbench readers) -> write the backbone as an mmseg checkpoint
(adapters.mmseg) -> build mmengine's Runner from our config dict -> before the first iteration,
load that checkpoint into `model.backbone` strictly (every parameter and buffer, no extra key, same
shapes; anything else raises `BackboneLoadError`) -> train -> read mIoU from the last validation
-> write `metrics.json`, delete mmengine's iteration checkpoints.
A Sobel backbone gets our `SobelResNet` (mm_backbone.py): mmseg's ResNet with its 2-channel conv1
behind the fixed grayscale + Sobel filter, applied to the normalised image; the rest is the same.

mmsegmentation and mmcv (with compiled ops) are optional dependencies: `scripts/install_seg.sh`
installs them; without them the run fails with that instruction.

Mid-run resume: mmengine's CheckpointHook writes `iter_<N>.pth` into `<work_dir>/mmseg/` every
`Schedule.checkpoint_interval` iterations (the newest two are kept).  A rerun on the same state dir
resumes from the newest one that loads (`evaluators.mm_checkpoints.resume_point`: torch's
`weights_only=True` under the project's mmengine allowlist, never `weights_only=False`; an unreadable
file is skipped with a RuntimeWarning naming it, and with none left the run starts again at
iteration 0), through mmengine's own `resume=True` + `load_from`: model, optimizer, poly schedule,
iteration and message hub come back, and only the remaining iterations run.  On a resumed run the
backbone-load hook does nothing (the checkpoint's weights win); a fresh start still loads strictly.
The data order continues (mmengine skips the consumed batches of the seeded InfiniteSampler), the
augmentation RNG does not: a resumed run is the same protocol, not bit-identical to an unbroken one.
Every attempt appends one line to `train_log.jsonl` (first iteration, iterations run, the file it
resumed from).  After success the checkpoints (~400 MB each at reference size) are deleted.
The run is one process: mmengine puts the model on CUDA when a GPU is visible (else the CPU), and
the reference's multi-GPU batch is run as one batch of the same total size (configs.Pipeline).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Mapping, Sequence
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
from evaluators.mm_checkpoints import remove_checkpoints, resume_point
from evaluators.segmentation.configs import DatasetSpec, SegConfig, mmseg_config

INSTALL_HINT = (
    "the segmentation benchmarks need mmsegmentation==1.2.2, mmengine==0.10.7 and mmcv==2.1.0 with its "
    "compiled ops: run `scripts/install_seg.sh <your venv's python>` (builds mmcv once, then installs)"
)
CHECKPOINT_NAME = "backbone_mmseg.pth"
METRICS_NAME = "metrics.json"
TRAIN_LOG_NAME = "train_log.jsonl"  # one line per attempt: first iteration, iterations run, resumed from
MM_WORK_SUBDIR = "mmseg"  # mmengine's work_dir: its logs and iteration checkpoints
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


History = Sequence[tuple[int, int, Mapping[str, float]]]  # (iteration, epoch, metrics) per validation


def final_metrics(history: History, max_iters: int) -> dict[str, float]:
    """The metrics of the validation run at the last iteration (the number mmseg reports).

    `history` rows are (iteration, epoch, metrics) (evaluators.mm_runtime.MetricsRecorder); mmseg's
    IoUMetric rounds percentages to 2 decimals (as float32), so the values are rounded back to those.
    """
    final = [metrics for step, _, metrics in history if step == max_iters]
    if not final:
        steps = [row[0] for row in history]
        raise RuntimeError(f"no validation ran at iteration {max_iters}; validations at {steps}")
    metrics = {k: round(float(v), 2) for k, v in final[-1].items()}
    if METRIC not in metrics or not math.isfinite(metrics[METRIC]):
        raise RuntimeError(f"validation did not give a finite {METRIC}: {metrics}")
    return metrics


def _append_train_log(path: Path, record: Mapping[str, Any]) -> None:
    if int(os.environ.get("RANK", "0")) != 0:
        return
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(dict(record), sort_keys=True) + "\n")


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


def _train(cfg_dict: dict[str, Any], checkpoint: Path, log_level: str, train_log: Path) -> dict[str, float]:
    """Run mmengine's Runner, resuming from the newest readable checkpoint in its work_dir."""
    from mmengine.config import Config
    from mmengine.runner import Runner

    import evaluators.segmentation.mm_backbone  # noqa: F401  (registers SobelResNet with mmseg)
    from evaluators.mm_runtime import (
        LoadWeightsHook,
        MetricsRecorder,
        TrainProgress,
        close_file_logs,
        resume_allowlist,
    )

    resume_from = resume_point(Path(cfg_dict["work_dir"]))
    resume = {"resume": resume_from is not None, "load_from": resume_from and str(resume_from)}
    config = Config({**distributed_dicts(cfg_dict, int(os.environ.get("WORLD_SIZE", "1"))), **resume,
                     "log_level": log_level, "experiment_name": f"seg_{time.time_ns()}"})
    runner = Runner.from_cfg(config)
    loader = LoadWeightsHook(lambda model: load_backbone_checkpoint(model.backbone, checkpoint))
    recorder, progress = MetricsRecorder(), TrainProgress()
    for hook in (loader, recorder, progress):
        runner.register_hook(hook)
    try:
        with resume_allowlist():
            runner.train()
    finally:
        close_file_logs(runner)
        _append_train_log(train_log, {"first_iter": progress.first_iter, "iters_run": progress.iters_run,
                                      "max_iters": cfg_dict["train_cfg"]["max_iters"],
                                      "resumed_from": None if resume_from is None else resume_from.name})
    if not (loader.loaded or loader.resumed):
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
        mm_dir = work_dir / MM_WORK_SUBDIR
        cfg_dict = mmseg_config(config, spec, root, mm_dir, ctx.seed, ctx.num_workers, sobel=backbone.sobel)
        level = "INFO" if ctx.progress else "WARNING"
        metrics = _train(cfg_dict, checkpoint, level, work_dir / TRAIN_LOG_NAME)
    finally:
        checkpoint.unlink(missing_ok=True)  # a copy of the backbone's weights; ~100 MB
    if int(os.environ.get("RANK", "0")) == 0:
        atomic_write_text(work_dir / METRICS_NAME, json.dumps(metrics, indent=2, sort_keys=True) + "\n")
        remove_checkpoints(mm_dir)  # the resume points (~400 MB each at reference size): the run is done
    return [Measurement(dataset=spec.dataset, metric=METRIC, value=metrics[METRIC], engine="mmseg")]
