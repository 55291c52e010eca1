"""The embedded torchvision engine: train one trial of a detection config and predict the test set.

What it follows from detectron2 (DefaultTrainer with the MoCo configs): SGD with momentum and
weight decay (none on norm layers, SOLVER.WEIGHT_DECAY_NORM), linear warmup then step decay per
iteration, IMS_PER_BATCH images per iteration, PreciseBN over NUM_ITER training batches after the
last iteration, test at MIN_SIZE_TEST one image at a time, resumable from its own checkpoint.
Where it differs (documented, not hidden): one process on one device, plain BatchNorm2d with batch
statistics of each forward of `tv_micro_batch` images instead of SyncBN over 16 images (gradients
of the micro-batches are accumulated into one step of IMS_PER_BATCH images); torchvision's
box-regression losses are smooth-L1 with beta 1/9 where detectron2 uses L1; anchors are rounded
to integers as torchvision's AnchorGenerator does; no aspect-ratio grouping of batches.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from torchvision.models.detection.generalized_rcnn import GeneralizedRCNN
from tqdm import tqdm

from dcbench.fileio import atomic_write
from dcbench.optim import split_norm_params, step_factor
from evaluators.detection.configs import Inputs, PreciseBN, Solver
from evaluators.detection.tv_data import TestDataset, TrainDataset, TrainKey, collate, train_batches

LOG = logging.getLogger(__name__)
CHECKPOINT = "tv_checkpoint.pth"


@dataclass(frozen=True)
class TrainSpec:
    """What one trial's training needs besides the model and the data."""

    solver: Solver
    inputs: Inputs
    precise_bn: PreciseBN
    micro_batch: int
    seed: int
    device: torch.device
    num_workers: int
    progress: bool
    with_masks: bool


@dataclass(frozen=True)
class Prediction:
    """One test image's detections at its original size (continuous 0-based XYXY boxes)."""

    index: int  # into the test records
    boxes: np.ndarray  # (N, 4) float32
    scores: np.ndarray  # (N,)
    labels: np.ndarray  # (N,) contiguous class id (0-based)
    masks: np.ndarray | None  # (N, H, W) bool, pasted and thresholded at 0.5 (detectron2)


def lr_factor(solver: Solver, it: int) -> float:
    """detectron2 WarmupMultiStepLR: gamma**(#steps passed), linear warmup from warmup_factor."""
    value = step_factor(it, solver.steps, solver.gamma)
    if it >= solver.warmup_iters:
        return value
    alpha = it / solver.warmup_iters
    start = solver.warmup_factor * step_factor(0, solver.steps, solver.gamma)
    end = step_factor(solver.warmup_iters, solver.steps, solver.gamma)
    return start * (1.0 - alpha) + end * alpha


def param_groups(model: nn.Module, solver: Solver) -> list[dict[str, object]]:
    """Norm-layer parameters get WEIGHT_DECAY_NORM, the rest WEIGHT_DECAY (detectron2's groups)."""
    other, norm = split_norm_params(model)
    return [{"params": other, "weight_decay": solver.weight_decay},
            {"params": norm, "weight_decay": solver.weight_decay_norm}]


def set_sizes(model: GeneralizedRCNN, inputs: Inputs, train: bool) -> None:
    """Shortest-edge sizes: a random choice of min_size_train when training, min_size_test else."""
    model.transform.min_size = tuple(inputs.min_size_train) if train else (inputs.min_size_test,)
    model.transform.max_size = inputs.max_size_train if train else inputs.max_size_test


def _loader(dataset: torch.utils.data.Dataset, batches: Iterable[list[TrainKey]] | None,
            workers: int) -> DataLoader:
    if batches is None:
        return DataLoader(dataset, batch_size=1, shuffle=False, num_workers=workers, collate_fn=collate)
    return DataLoader(dataset, batch_sampler=batches, num_workers=workers, collate_fn=collate)


def _chunks(items: Sequence, size: int) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _forward_losses(model: GeneralizedRCNN, batch: Sequence, device: torch.device) -> dict[str, torch.Tensor]:
    images = [img.to(device) for img, _ in batch]
    targets = [{k: v.to(device) for k, v in t.items()} for _, t in batch]
    return model(images, targets)


def _step(model: GeneralizedRCNN, batch: Sequence, spec: TrainSpec, it: int) -> float:
    total = 0.0
    for chunk in _chunks(batch, spec.micro_batch):
        losses = _forward_losses(model, chunk, spec.device)
        loss = sum(losses.values()) * (len(chunk) / len(batch))
        if not torch.isfinite(loss):
            raise FloatingPointError(f"loss became infinite or NaN at iteration {it}: "
                                     f"{ {k: float(v) for k, v in losses.items()} }")
        loss.backward()
        total += float(loss.detach())
    return total


def _save(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
          scheduler: torch.optim.lr_scheduler.LRScheduler, it: int) -> None:
    state = {"iter": it, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "scheduler": scheduler.state_dict(), "rng": torch.get_rng_state()}
    atomic_write(path, lambda fh: torch.save(state, fh))


def _resume(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
            scheduler: torch.optim.lr_scheduler.LRScheduler) -> int:
    if not path.exists():
        return 0
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng"])
    LOG.info("resuming torchvision detection training from %s at iteration %d", path, state["iter"])
    return int(state["iter"])


def train(model: GeneralizedRCNN, dataset: TrainDataset, spec: TrainSpec, trial_dir: Path) -> None:
    """Run iterations up to solver.max_iter (resuming from trial_dir), then PreciseBN."""
    solver = spec.solver
    model.to(spec.device)
    set_sizes(model, spec.inputs, train=True)
    optimizer = torch.optim.SGD(param_groups(model, solver), lr=solver.base_lr, momentum=solver.momentum)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda it: lr_factor(solver, it))
    ckpt = trial_dir / CHECKPOINT
    start = _resume(ckpt, model, optimizer, scheduler)
    flip = spec.inputs.random_flip == "horizontal"
    batches = train_batches(len(dataset), solver.ims_per_batch, start, solver.max_iter, spec.seed, flip)
    model.train()
    bar = tqdm(_loader(dataset, batches, spec.num_workers), total=solver.max_iter - start, initial=0,
               desc="detection train", disable=not spec.progress)
    for it, batch in enumerate(bar, start=start):
        optimizer.zero_grad(set_to_none=True)
        loss = _step(model, batch, spec, it)
        optimizer.step()
        scheduler.step()
        bar.set_postfix(loss=f"{loss:.3f}", lr=f"{scheduler.get_last_lr()[0]:.4g}")
        if (it + 1) % solver.checkpoint_period == 0 and it + 1 < solver.max_iter:
            _save(ckpt, model, optimizer, scheduler, it + 1)
    if spec.precise_bn.enabled:
        precise_bn(model, dataset, spec, solver.max_iter)


@torch.no_grad()
def precise_bn(model: GeneralizedRCNN, dataset: TrainDataset, spec: TrainSpec, seed_offset: int) -> None:
    """detectron2's PreciseBN hook: BatchNorm running stats = equal-weight mean over NUM_ITER batches."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training]
    if not bns or spec.precise_bn.num_iter <= 0:
        return
    momenta = [bn.momentum for bn in bns]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over the forwards below
    flip = spec.inputs.random_flip == "horizontal"
    batches = train_batches(len(dataset), spec.solver.ims_per_batch, 0, spec.precise_bn.num_iter,
                            spec.seed + seed_offset, flip)
    model.train()
    loader = _loader(dataset, batches, spec.num_workers)
    for batch in tqdm(loader, total=spec.precise_bn.num_iter, desc="precise BN", disable=not spec.progress):
        for chunk in _chunks(batch, spec.micro_batch):
            _forward_losses(model, chunk, spec.device)
    for bn, momentum in zip(bns, momenta, strict=True):
        bn.momentum = momentum


@torch.no_grad()
def predict(model: GeneralizedRCNN, dataset: TestDataset, spec: TrainSpec) -> list[Prediction]:
    """Detections on every test image at MIN_SIZE_TEST, one image per forward."""
    model.to(spec.device).eval()
    set_sizes(model, spec.inputs, train=False)
    out: list[Prediction] = []
    loader = _loader(dataset, None, spec.num_workers)
    for batch in tqdm(loader, total=len(dataset), desc="detection test", disable=not spec.progress):
        image, index = batch[0]
        det = model([image.to(spec.device)])[0]
        masks = None
        if spec.with_masks:
            masks = (det["masks"][:, 0] >= 0.5).cpu().numpy()
        out.append(Prediction(index=index, boxes=det["boxes"].cpu().numpy(),
                              scores=det["scores"].cpu().numpy(),
                              labels=det["labels"].cpu().numpy().astype(np.int64) - 1, masks=masks))
    return out


def remove_checkpoint(trial_dir: Path) -> None:
    (trial_dir / CHECKPOINT).unlink(missing_ok=True)
