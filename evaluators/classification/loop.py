"""The one train / evaluate loop of the classification protocols (frozen probes and fine-tuning).

`train_epochs` runs the remaining epochs of a step schedule: per-(epoch, rank) augmentation seed,
the sampler's epoch, the lr of the epoch, one `train_epoch`, then the caller's `after_epoch`
(checks and the state file). With `EpochPlan.accum_steps` k > 1 the loader's batches are
micro-batches (`micro_batch`: total / (world size x k) per process) and k of them make one
optimizer step (gradient accumulation; see `train_epoch`). `evaluate` gives top-1 / top-5 of every
named output over the whole split, counts summed over ranks. `deterministic_mode` wraps a run in
torch's deterministic mode.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from dcbench.distributed import DistInfo, reduce_sum
from dcbench.optim import set_epoch_lr
from evaluators.classification.data import seed_epoch

LOG = logging.getLogger(__name__)
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (images, target) -> scalar loss
LogitsFn = Callable[[torch.Tensor], Mapping[str, torch.Tensor]]  # images -> {output name: logits}


@dataclass(frozen=True)
class EpochPlan:
    """The step schedule and what names the epochs in progress bars and logs."""

    epochs: int
    milestones: Sequence[int]
    gamma: float
    seed: int
    label: str  # e.g. "imagenet probe" or "lr0.1_head10"
    progress: bool = True
    accum_steps: int = 1  # loader batches (micro-batches) per optimizer step


def micro_batch(total: int, dist: DistInfo, accum_steps: int = 1) -> int:
    """One forward pass's batch on this process: the total batch / (world size x accum_steps)."""
    if accum_steps < 1:
        raise ValueError(f"accum_steps must be at least 1, got {accum_steps}")
    parts = dist.world_size * accum_steps
    if total % parts:
        raise ValueError(f"total batch size {total} is not divisible by the world size {dist.world_size} "
                         f"x accum_steps {accum_steps} = {parts}")
    return total // parts


def train_epochs(
    model: nn.Module, loss_of: LossFn, optimizer: torch.optim.Optimizer, loader: DataLoader,
    plan: EpochPlan, start: int, dist: DistInfo, after_epoch: Callable[[int, float], None],
) -> None:
    """Train epochs start..plan.epochs-1; `after_epoch(epochs_done, mean_loss)` follows each one."""
    for epoch in range(start, plan.epochs):
        seed_epoch(plan.seed, epoch, dist)
        loader.sampler.set_epoch(epoch)  # type: ignore[attr-defined]
        set_epoch_lr(optimizer, epoch, plan.milestones, plan.gamma)
        desc = f"{plan.label} epoch {epoch + 1}/{plan.epochs}"
        loss = train_epoch(model, loss_of, optimizer, loader, dist, plan.progress, desc,
                           accum_steps=plan.accum_steps)
        LOG.info("%s: loss %.4f", desc, loss)
        after_epoch(epoch + 1, loss)


def train_epoch(
    model: nn.Module, loss_of: LossFn, optimizer: torch.optim.Optimizer, loader: DataLoader,
    dist: DistInfo, progress: bool, desc: str, accum_steps: int = 1,
) -> float:
    """One pass over `loader` with `model` in train mode; the mean loss of this rank's optimizer steps.

    Every `accum_steps` consecutive loader batches (the last group may be shorter) make one optimizer
    step; each batch's loss is weighted by its share of the group's samples, so the step's gradient
    is that of the mean loss over the group, what one batch of the group's samples gives (exactly,
    up to float rounding, for a model without batch statistics: the frozen probes' Linear heads;
    a BatchNorm in train mode sees the micro-batch). With 1 this is the plain loop, bit for bit.
    """
    model.train()
    total, steps = torch.zeros((), device=dist.device), 0
    count, remaining, group = len(loader), len(loader.sampler), 0  # type: ignore[arg-type]
    step_loss = torch.zeros((), device=dist.device)
    for i, (images, target) in enumerate(tqdm(loader, desc=desc, disable=not (progress and dist.is_main),
                                              leave=False)):
        images = images.to(dist.device, non_blocking=True)
        target = target.to(dist.device, non_blocking=True)
        if i % accum_steps == 0:  # a new group: its sample count weights its batches' losses
            group = min(int(loader.batch_size or len(target)) * accum_steps, remaining)
            remaining -= group
            optimizer.zero_grad(set_to_none=True)
            step_loss = torch.zeros((), device=dist.device)
        last = (i + 1) % accum_steps == 0 or i + 1 == count
        with _gradient_sync(model, last):
            loss = loss_of(images, target) * (len(target) / group)
            loss.backward()
        step_loss += loss.detach()
        if last:
            optimizer.step()
            total += step_loss
            steps += 1
    mean = float(total) / max(steps, 1)
    if not torch.isfinite(torch.tensor(mean)):
        LOG.warning("non-finite training loss (%s) in %s", mean, desc)
    return mean


def _gradient_sync(model: nn.Module, sync: bool) -> contextlib.AbstractContextManager:
    """DDP's `no_sync` for the batches of a group before its last (their gradients stay local)."""
    if sync or not isinstance(model, nn.parallel.DistributedDataParallel):
        return contextlib.nullcontext()
    return model.no_sync()


def topk_correct(logits: torch.Tensor, target: torch.Tensor, ks: Sequence[int] = (1, 5)) -> torch.Tensor:
    """Number of samples whose target is within the top-k predictions, for each k (float tensor)."""
    maxk = min(max(ks), logits.shape[1])
    hits = logits.topk(maxk, dim=1).indices.eq(target[:, None])
    return torch.stack([hits[:, : min(k, maxk)].any(dim=1).sum() for k in ks]).float()


def evaluate(
    model: nn.Module, logits_of: LogitsFn, names: Sequence[str], loader: DataLoader, dist: DistInfo,
    progress: bool, desc: str,
) -> dict[str, dict[str, float]]:
    """Top-1 / top-5 (percent) of each named output over the whole split, `model` in eval mode."""
    model.eval()
    counts = torch.zeros(len(names), 2, device=dist.device)
    seen = torch.zeros((), device=dist.device)
    with torch.no_grad():
        for images, target in tqdm(loader, desc=desc, disable=not (progress and dist.is_main), leave=False):
            images, target = images.to(dist.device), target.to(dist.device)
            logits = logits_of(images)
            for i, name in enumerate(names):
                counts[i] += topk_correct(logits[name], target)
            seen += target.numel()
    counts, total = reduce_sum(counts, dist).cpu(), float(reduce_sum(seen, dist))
    if total == 0:
        raise ValueError("the validation split is empty")
    return {name: {"top1": 100.0 * float(counts[i, 0]) / total, "top5": 100.0 * float(counts[i, 1]) / total}
            for i, name in enumerate(names)}


@contextlib.contextmanager
def deterministic_mode(enabled: bool = True) -> Iterator[None]:
    """torch deterministic algorithms (warn where none exists) + cuDNN deterministic; restored on exit."""
    if not enabled:
        yield
        return
    prev = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.benchmark,
        torch.backends.cudnn.deterministic,
    )
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = False, True
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(prev[0], warn_only=prev[1])
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = prev[2], prev[3]
