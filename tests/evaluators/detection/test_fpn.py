from __future__ import annotations

import pytest
import torch
from torchvision.ops.misc import Conv2dNormActivation

from dcbench.config import replace
from evaluators.detection.configs import TINY_COCO, COCODetConfig
from evaluators.detection.fpn import build_mask_rcnn_fpn
from evaluators.detection.pooler import AlignedRoIPool


def test_mask_rcnn_fpn_follows_detectron2(backbone) -> None:
    cfg = COCODetConfig()
    model = build_mask_rcnn_fpn(backbone, cfg.inputs, cfg.model, 80)
    feats = model.backbone(torch.zeros(1, 3, 64, 64))
    assert {k: tuple(v.shape[-2:]) for k, v in feats.items()} == {
        "0": (16, 16),
        "1": (8, 8),
        "2": (4, 4),
        "3": (2, 2),
        "pool": (1, 1),
    }
    lateral = model.backbone.fpn.inner_blocks[0]
    assert isinstance(lateral, Conv2dNormActivation) and isinstance(lateral[1], torch.nn.BatchNorm2d)
    assert lateral[0].bias is None  # normed convs have no bias, as in detectron2
    box_pool, mask_pool = model.roi_heads.box_roi_pool, model.roi_heads.mask_roi_pool
    assert isinstance(box_pool, AlignedRoIPool) and box_pool.output_size == (7, 7)
    assert isinstance(mask_pool, AlignedRoIPool) and mask_pool.output_size == (14, 14)
    assert model.roi_heads.box_head.fc7.out_features == 1024
    assert len(model.roi_heads.mask_head) == 4
    assert model.rpn._pre_nms_top_n == {"training": 2000, "testing": 1000}
    assert model.transform.size_divisible == 32
    torch.testing.assert_close(
        model.backbone.body.layer4[2].conv3.weight, backbone.state_dict["layer4.2.conv3.weight"]
    )


def test_mask_rcnn_trains_one_step(backbone) -> None:
    torch.manual_seed(0)
    model = build_mask_rcnn_fpn(backbone, TINY_COCO.inputs, TINY_COCO.model, 3)
    masks = torch.zeros(1, 64, 64, dtype=torch.uint8)
    masks[:, 10:40, 5:30] = 1
    targets = [
        {"boxes": torch.tensor([[5.0, 10.0, 30.0, 40.0]]), "labels": torch.tensor([2]), "masks": masks}
    ]
    losses = model([torch.rand(3, 64, 64)], targets)
    assert "loss_mask" in losses and all(torch.isfinite(v) for v in losses.values())


def test_fpn_needs_five_anchor_levels(backbone) -> None:
    bad = replace(TINY_COCO.model, rpn=replace(TINY_COCO.model.rpn, anchor_sizes=((32, 64),)))
    with pytest.raises(ValueError, match="P2..P6"):
        build_mask_rcnn_fpn(backbone, TINY_COCO.inputs, bad, 3)
