"""Faster R-CNN R50-C4 from torchvision's detection classes, shaped as detectron2's C4 model.

detectron2's C4 (GeneralizedRCNN + Res5ROIHeads): the trunk is stem + res2..res4 (stride 16,
1024 channels) feeding a one-level RPN; each proposal is RoIAligned (V2) to 14x14 on res4,
run through res5 (first block stride 2 -> 7x7, 2048 channels) and average-pooled for the box
predictor. MoCo's Res5ROIHeadsExtraNorm appends one more norm layer after res5.

Here: torchvision's FasterRCNN with `C4Trunk` as backbone, AnchorGenerator (one level, 5 sizes x
3 ratios), RPNHead, our AlignedRoIPool (ROIAlignV2) and `Res5BoxHead` as box head. Weights come
from `Backbone.build_resnet()`: res5 of the checkpoint becomes the box head, as detectron2 loads it.
torchvision's Bottleneck strides in the 3x3 conv, which is STRIDE_IN_1X1 False.
BatchNorm: detectron2 trains SyncBN; this engine runs one process, so the layers are plain
BatchNorm2d in train mode (batch statistics of each forward), recomputed by PreciseBN at the end.
"""

from __future__ import annotations

import torch
import torchvision
from torch import nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor
from torchvision.models.detection.rpn import RPNHead

from dcbench.backbone import Backbone, input_filter
from evaluators.detection.configs import Inputs, Model
from evaluators.detection.pooler import AlignedRoIPool

C4_STRIDE = 16
RES4_CHANNELS = 1024
RES5_CHANNELS = 2048


class C4Trunk(nn.Module):
    """Stem + res2..res4 of a torchvision ResNet-50 (optionally behind the Sobel filter)."""

    def __init__(self, resnet: torchvision.models.ResNet, sobel: bool) -> None:
        super().__init__()
        self.input_filter = input_filter(sobel)
        self.stem = nn.Sequential(resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool)
        self.res2, self.res3, self.res4 = resnet.layer1, resnet.layer2, resnet.layer3
        self.out_channels = RES4_CHANNELS

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.res4(self.res3(self.res2(self.stem(self.input_filter(x)))))


class Res5BoxHead(nn.Module):
    """res5 on pooled RoI features, the optional extra norm (MoCo), then the spatial mean."""

    def __init__(self, res5: nn.Module, extra_norm: bool) -> None:
        super().__init__()
        self.res5 = res5
        self.norm = nn.BatchNorm2d(RES5_CHANNELS) if extra_norm else nn.Identity()
        self.out_channels = RES5_CHANNELS

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.res5(x)).mean(dim=(2, 3))


def init_box_predictor(predictor: FastRCNNPredictor) -> FastRCNNPredictor:
    """detectron2 FastRCNNOutputLayers init: N(0, 0.01) scores, N(0, 0.001) deltas, zero biases."""
    nn.init.normal_(predictor.cls_score.weight, std=0.01)
    nn.init.normal_(predictor.bbox_pred.weight, std=0.001)
    for layer in (predictor.cls_score, predictor.bbox_pred):
        nn.init.constant_(layer.bias, 0.0)
    return predictor


def rcnn_kwargs(inputs: Inputs, model: Model) -> dict[str, object]:
    """FasterRCNN / MaskRCNN keyword arguments shared by C4 and FPN (sizes, RPN and RoI settings)."""
    rpn, roi = model.rpn, model.roi
    return dict(
        min_size=inputs.min_size_train, max_size=inputs.max_size_train,
        image_mean=[m / 255.0 for m in inputs.pixel_mean], image_std=[s / 255.0 for s in inputs.pixel_std],
        rpn_pre_nms_top_n_train=rpn.pre_nms_topk_train, rpn_pre_nms_top_n_test=rpn.pre_nms_topk_test,
        rpn_post_nms_top_n_train=rpn.post_nms_topk_train, rpn_post_nms_top_n_test=rpn.post_nms_topk_test,
        rpn_nms_thresh=rpn.nms_thresh, rpn_bg_iou_thresh=rpn.iou_thresholds[0],
        rpn_fg_iou_thresh=rpn.iou_thresholds[1], rpn_batch_size_per_image=rpn.batch_size_per_image,
        rpn_positive_fraction=rpn.positive_fraction,
        box_score_thresh=roi.score_thresh_test, box_nms_thresh=roi.nms_thresh_test,
        box_detections_per_img=roi.detections_per_image, box_fg_iou_thresh=roi.iou_threshold,
        box_bg_iou_thresh=roi.iou_threshold, box_batch_size_per_image=roi.batch_size_per_image,
        box_positive_fraction=roi.positive_fraction, bbox_reg_weights=roi.bbox_reg_weights,
    )


def anchor_generator(model: Model) -> AnchorGenerator:
    sizes = tuple(tuple(s) for s in model.rpn.anchor_sizes)
    return AnchorGenerator(sizes=sizes, aspect_ratios=(tuple(model.rpn.aspect_ratios),) * len(sizes))


def build_faster_rcnn_c4(backbone: Backbone, inputs: Inputs, model: Model, num_classes: int) -> FasterRCNN:
    """Faster R-CNN R50-C4 with `num_classes` foreground classes, initialised from `backbone`."""
    if model.arch != "C4":
        raise ValueError(f"build_faster_rcnn_c4 needs model.arch 'C4', got {model.arch!r}")
    resnet = backbone.build_resnet()
    anchors = anchor_generator(model)
    net = FasterRCNN(
        C4Trunk(resnet, backbone.sobel), num_classes=None,
        rpn_anchor_generator=anchors,
        rpn_head=RPNHead(RES4_CHANNELS, anchors.num_anchors_per_location()[0]),
        box_roi_pool=AlignedRoIPool(["0"], [C4_STRIDE], model.roi.box_pooler_resolution),
        box_head=Res5BoxHead(resnet.layer4, model.res5_extra_norm),
        box_predictor=init_box_predictor(FastRCNNPredictor(RES5_CHANNELS, num_classes + 1)),
        **rcnn_kwargs(inputs, model),
    )
    net.transform.size_divisible = 1  # detectron2's C4 backbone has SIZE_DIVISIBILITY 0
    return net
