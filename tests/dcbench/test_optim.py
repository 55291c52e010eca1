from __future__ import annotations

import math

import torch
from torch import nn

from dcbench.optim import set_epoch_lr, split_norm_params, step_factor


def test_step_schedule_steps_at_milestones() -> None:
    steps = (30, 60, 90)
    assert [step_factor(e, steps, 0.1) for e in (0, 29)] == [1.0, 1.0]
    assert math.isclose(step_factor(30, steps, 0.1), 0.1)
    assert math.isclose(step_factor(59, steps, 0.1), 0.1)
    assert math.isclose(step_factor(60, steps, 0.1), 0.01)
    assert math.isclose(step_factor(89, steps, 0.1), 0.01)  # the 90-epoch run never reaches step 90
    layer = nn.Linear(2, 2)
    opt = torch.optim.SGD([{"params": list(layer.parameters()), "initial_lr": 0.01}], lr=0.01, momentum=0.9)
    set_epoch_lr(opt, 7, (7, 14, 21), 0.1)
    assert math.isclose(opt.param_groups[0]["lr"], 0.001)
    set_epoch_lr(opt, 6, (7, 14, 21), 0.1)
    assert math.isclose(opt.param_groups[0]["lr"], 0.01)


def test_norm_parameters_are_split_off_in_order_and_frozen_ones_dropped() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.GroupNorm(2, 4), nn.Linear(4, 2),
                          nn.LayerNorm(2), nn.BatchNorm2d(4, affine=False))
    model[3].bias.requires_grad_(False)
    other, norm = split_norm_params(model)
    assert other == [model[0].weight, model[0].bias, model[3].weight]
    assert norm == [model[1].weight, model[1].bias, model[2].weight, model[2].bias, model[4].weight,
                    model[4].bias]
