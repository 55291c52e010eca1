from __future__ import annotations

import pytest
import torch

from dcbench.backbone import Backbone, build_resnet50
from evaluators.detection.c4 import C4Trunk, Res5BoxHead, build_faster_rcnn_c4
from evaluators.detection.configs import TINY_VOC, VOCDetConfig
from evaluators.detection.pooler import AlignedRoIPool


def test_c4_shapes_follow_detectron2(backbone) -> None:
    cfg = VOCDetConfig()
    model = build_faster_rcnn_c4(backbone, cfg.inputs, cfg.model, 20)
    assert isinstance(model.backbone, C4Trunk) and model.backbone.out_channels == 1024
    assert model.backbone(torch.zeros(1, 3, 64, 96)).shape == (1, 1024, 4, 6)  # stride 16
    pool = model.roi_heads.box_roi_pool
    assert (
        isinstance(pool, AlignedRoIPool) and pool.output_size == (14, 14) and pool.spatial_scales == [1 / 16]
    )
    head = model.roi_heads.box_head
    assert isinstance(head, Res5BoxHead) and isinstance(head.norm, torch.nn.BatchNorm2d)  # MoCo's extra norm
    head.eval()
    assert head.res5(torch.zeros(2, 1024, 14, 14)).shape == (2, 2048, 7, 7)  # res5 stride 2
    assert head(torch.zeros(2, 1024, 14, 14)).shape == (2, 2048)  # then the spatial mean
    assert model.roi_heads.box_predictor.cls_score.out_features == 21
    assert model.rpn.anchor_generator.num_anchors_per_location() == [15]
    assert model.rpn._pre_nms_top_n == {"training": 12000, "testing": 6000}
    assert model.rpn._post_nms_top_n == {"training": 2000, "testing": 1000}
    assert model.transform.image_mean == pytest.approx([0.485, 0.456, 0.406])
    assert model.transform.image_std == pytest.approx([0.229, 0.224, 0.225])
    assert model.roi_heads.box_coder.weights == (10.0, 10.0, 5.0, 5.0)


def test_c4_weights_come_from_the_backbone_res5_included(backbone) -> None:
    model = build_faster_rcnn_c4(backbone, TINY_VOC.inputs, TINY_VOC.model, 20)
    sd = backbone.state_dict
    torch.testing.assert_close(model.backbone.stem[0].weight, sd["conv1.weight"])
    torch.testing.assert_close(model.backbone.res4[5].conv3.weight, sd["layer3.5.conv3.weight"])
    torch.testing.assert_close(model.roi_heads.box_head.res5[0].conv2.weight, sd["layer4.0.conv2.weight"])
    assert model.roi_heads.box_head.res5[0].conv2.stride == (2, 2)  # STRIDE_IN_1X1 False


def test_sobel_backbone_keeps_its_filter() -> None:
    torch.manual_seed(0)
    sobel = Backbone(
        state_dict=build_resnet50(sobel=True).state_dict(), sobel=True, sha256="0" * 64, source_format="test"
    )
    model = build_faster_rcnn_c4(sobel, TINY_VOC.inputs, TINY_VOC.model, 20)
    assert model.backbone(torch.zeros(1, 3, 32, 32)).shape == (1, 1024, 2, 2)


def test_c4_trains_one_step_and_predicts(backbone) -> None:
    torch.manual_seed(0)
    model = build_faster_rcnn_c4(backbone, TINY_VOC.inputs, TINY_VOC.model, 20)
    images = [torch.rand(3, 64, 64)]
    targets = [{"boxes": torch.tensor([[4.0, 6.0, 40.0, 50.0]]), "labels": torch.tensor([3])}]
    losses = model(images, targets)
    assert set(losses) == {"loss_classifier", "loss_box_reg", "loss_objectness", "loss_rpn_box_reg"}
    sum(losses.values()).backward()
    model.eval()
    with torch.no_grad():
        (det,) = model(images)
    assert det["boxes"].shape[1] == 4 and len(det["scores"]) <= TINY_VOC.model.roi.detections_per_image
