from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from evaluators.detection.configs import TINY_VOC, PreciseBN, Solver
from evaluators.detection.records import XYXY_ABS
from evaluators.detection.tv_data import build_target, train_batches, trainable
from evaluators.detection.tv_engine import TrainSpec, lr_factor, param_groups, precise_bn


def test_lr_follows_detectron2_warmup_multistep() -> None:
    s = Solver(max_iter=24000, steps=(18000, 22000), warmup_iters=100, warmup_factor=0.001, gamma=0.1)
    assert lr_factor(s, 0) == pytest.approx(0.001)
    assert lr_factor(s, 50) == pytest.approx(0.001 * 0.5 + 0.5)
    assert lr_factor(s, 100) == 1.0 and lr_factor(s, 17999) == 1.0
    assert lr_factor(s, 18000) == pytest.approx(0.1) and lr_factor(s, 22000) == pytest.approx(0.01)


def test_norm_parameters_get_no_weight_decay() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Linear(4, 2))
    groups = param_groups(model, Solver())
    assert groups[0]["weight_decay"] == 1e-4 and len(groups[0]["params"]) == 4  # conv and linear w + b
    assert groups[1]["weight_decay"] == 0.0 and len(groups[1]["params"]) == 2  # bn w + b


def test_train_batches_are_seeded_and_resume_where_they_stopped() -> None:
    full = list(train_batches(5, 3, 0, 6, seed=7, flip=True))
    assert len(full) == 6 and all(len(b) == 3 for b in full)
    assert full == list(train_batches(5, 3, 0, 6, seed=7, flip=True))
    assert full[4:] == list(train_batches(5, 3, 4, 6, seed=7, flip=True))
    assert sorted(i for i, _ in full[0] + full[1][:2]) == [0, 1, 2, 3, 4]  # one epoch = a permutation
    assert not any(f for b in train_batches(5, 3, 0, 6, seed=7, flip=False) for _, f in b)


def test_targets_drop_crowds_clip_boxes_and_flip() -> None:
    record = {
        "image_id": 1,
        "annotations": [
            {"bbox": [2.0, 3.0, 10.0, 20.0], "bbox_mode": XYXY_ABS, "category_id": 4},
            {"bbox": [0.0, 0.0, 5.0, 5.0], "bbox_mode": XYXY_ABS, "category_id": 1, "iscrowd": 1},
            {"bbox": [30.0, 1.0, 45.0, 9.0], "bbox_mode": XYXY_ABS, "category_id": 0},
            {"bbox": [41.0, 1.0, 45.0, 9.0], "bbox_mode": XYXY_ABS, "category_id": 0},  # empty once clipped
        ],
    }
    t = build_target(record, width=40, height=30, flip=False, with_masks=False)
    assert t["boxes"].tolist() == [[2, 3, 10, 20], [30, 1, 40, 9]] and t["labels"].tolist() == [5, 1]
    f = build_target(record, width=40, height=30, flip=True, with_masks=False)
    assert f["boxes"].tolist() == [[30, 3, 38, 20], [0, 1, 10, 9]]
    with pytest.raises(ValueError, match="no training image"):
        trainable([{"annotations": []}])


def test_precise_bn_sets_running_stats_to_the_average_of_batches() -> None:
    class Toy(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bn = nn.BatchNorm2d(1)

        def forward(self, images, targets):
            self.bn(torch.stack(images))
            return {}

    class Data(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return 4

        def __getitem__(self, key):
            i, _ = key
            return torch.full((1, 2, 2), float(i)), {}

    spec = TrainSpec(
        solver=Solver(ims_per_batch=4),
        inputs=TINY_VOC.inputs,
        precise_bn=PreciseBN(num_iter=3),
        micro_batch=2,
        seed=0,
        device=torch.device("cpu"),
        num_workers=0,
        progress=False,
        with_masks=False,
    )
    model = Toy()
    model.bn.running_mean.fill_(100.0)
    precise_bn(model, Data(), spec, seed_offset=0)
    keys = [k for b in train_batches(4, 4, 0, 3, seed=0, flip=True) for k in b]
    means = [np.mean([i for i, _ in keys[j : j + 2]]) for j in range(0, len(keys), 2)]
    assert model.bn.running_mean.item() == pytest.approx(np.mean(means))
    assert model.bn.momentum == 0.1


def test_checkpoint_round_trips_with_weights_only_loading(tmp_path) -> None:
    from evaluators.detection.tv_engine import _resume, _save

    def make():
        model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
        opt = torch.optim.SGD(param_groups(model, Solver()), lr=0.02, momentum=0.9)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda it: lr_factor(Solver(warmup_iters=10), it))
        return model, opt, sched

    model, opt, sched = make()
    for _ in range(3):
        opt.zero_grad()
        model(torch.randn(4, 3)).sum().backward()
        opt.step()
        sched.step()
    _save(tmp_path / "ck.pth", model, opt, sched, 3)
    model2, opt2, sched2 = make()
    assert _resume(tmp_path / "ck.pth", model2, opt2, sched2) == 3
    torch.testing.assert_close(model2[0].weight, model[0].weight)
    assert sched2.last_epoch == 3 and opt2.param_groups[0]["lr"] == pytest.approx(opt.param_groups[0]["lr"])
    assert _resume(tmp_path / "none.pth", model2, opt2, sched2) == 0
