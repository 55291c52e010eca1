"""Optimisation rules shared by the pretrainer and the evaluators.

The step learning-rate schedule (MultiStepLR by epoch, MoCo `adjust_learning_rate`, the step
part of detectron2's WarmupMultiStepLR by iteration) and the norm-layer parameter rule (norm
parameters get their own weight decay: MMSelfSup `norm_decay_mult`, detectron2
`WEIGHT_DECAY_NORM`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

# Every torch norm layer: BatchNorm / SyncBatchNorm / InstanceNorm (`_NormBase`), GroupNorm, LayerNorm,
# LocalResponseNorm (detectron2's get_default_optimizer_params list).
NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm, nn.LocalResponseNorm)


def step_factor(step: int, milestones: Sequence[int], gamma: float) -> float:
    """gamma ** (number of milestones <= step): the lr multiplier of a step schedule at `step`."""
    return gamma ** sum(step >= m for m in milestones)


def set_epoch_lr(
    optimizer: torch.optim.Optimizer, epoch: int, milestones: Sequence[int], gamma: float
) -> None:
    """Set every group's lr from its `initial_lr` for this (0-based) epoch."""
    factor = step_factor(epoch, milestones, gamma)
    for group in optimizer.param_groups:
        group["lr"] = group["initial_lr"] * factor


def is_norm(module: nn.Module) -> bool:
    return isinstance(module, NORM_TYPES)


def split_norm_params(module: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(other, norm): the trainable parameters of `module` in `parameters()` order, norm-layer ones apart."""
    norm_ids = {id(p) for m in module.modules() if is_norm(m) for p in m.parameters(recurse=False)}
    params = [p for p in module.parameters() if p.requires_grad]
    return [p for p in params if id(p) not in norm_ids], [p for p in params if id(p) in norm_ids]
