"""Mask R-CNN R50-FPN from torchvision's detection classes, shaped as detectron2's R50-FPN model.

detectron2 (configs/Base-RCNN-FPN.yaml): FPN on res2..res5 (256 channels, P6 by stride-2 max pool
of P5), RPN on P2..P6 with one anchor size per level, StandardROIHeads pooling 7x7 boxes for a
2x1024 fc head and 14x14 masks for a 4-conv + deconv head, levels chosen by box size.
MoCo's COCO protocol trains SyncBN in the backbone and in the FPN (norm in lateral and output
convs, which then have no bias).

Here: torchvision's MaskRCNN around BackboneWithFPN built from `Backbone.build_resnet()` (the Sobel
filter, if any, sits in front of conv1) with LastLevelMaxPool, AnchorGenerator, TwoMLPHead,
MaskRCNNHeads and our AlignedRoIPool (ROIAlignV2). BatchNorm: plain BatchNorm2d in train mode
in this one-process engine (see c4.py); the FPN's norm is BatchNorm2d when `fpn_norm` is set.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.models.detection.rpn import RPNHead
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from dcbench.backbone import Backbone, input_filter
from evaluators.detection.c4 import anchor_generator, init_box_predictor, rcnn_kwargs
from evaluators.detection.configs import Inputs, Model
from evaluators.detection.pooler import AlignedRoIPool

FPN_IN_CHANNELS = [256, 512, 1024, 2048]  # res2..res5
FPN_STRIDES = [4, 8, 16, 32]  # P2..P5
FPN_SIZE_DIVISIBILITY = 32  # detectron2 FPN.size_divisibility


def build_fpn_backbone(backbone: Backbone, model: Model) -> BackboneWithFPN:
    """res2..res5 of `backbone` + FPN (+ P6), outputs '0'..'3' and 'pool'."""
    resnet = backbone.build_resnet()
    trunk = nn.Sequential(OrderedDict([
        ("input_filter", input_filter(backbone.sobel)), ("conv1", resnet.conv1), ("bn1", resnet.bn1),
        ("relu", resnet.relu), ("maxpool", resnet.maxpool), ("layer1", resnet.layer1),
        ("layer2", resnet.layer2), ("layer3", resnet.layer3), ("layer4", resnet.layer4),
    ]))
    return BackboneWithFPN(
        trunk, return_layers={"layer1": "0", "layer2": "1", "layer3": "2", "layer4": "3"},
        in_channels_list=FPN_IN_CHANNELS, out_channels=model.fpn_out_channels,
        extra_blocks=LastLevelMaxPool(), norm_layer=nn.BatchNorm2d if model.fpn_norm else None,
    )


def build_mask_rcnn_fpn(backbone: Backbone, inputs: Inputs, model: Model, num_classes: int) -> MaskRCNN:
    """Mask R-CNN R50-FPN with `num_classes` foreground classes, initialised from `backbone`."""
    if model.arch != "FPN" or not model.mask_on:
        raise ValueError("build_mask_rcnn_fpn needs model.arch 'FPN' with mask_on")
    roi, ch = model.roi, model.fpn_out_channels
    if roi.box_num_fc != 2:
        raise ValueError(f"the FPN box head is torchvision's TwoMLPHead (2 fc); box_num_fc={roi.box_num_fc}")
    anchors = anchor_generator(model)
    if len(anchors.sizes) != len(FPN_STRIDES) + 1:
        raise ValueError(f"FPN needs one anchor size tuple per level P2..P6, got {model.rpn.anchor_sizes}")
    names = [str(i) for i in range(len(FPN_STRIDES))]
    net = MaskRCNN(
        build_fpn_backbone(backbone, model), num_classes=None,
        rpn_anchor_generator=anchors, rpn_head=RPNHead(ch, anchors.num_anchors_per_location()[0]),
        box_roi_pool=AlignedRoIPool(names, FPN_STRIDES, roi.box_pooler_resolution),
        box_head=TwoMLPHead(ch * roi.box_pooler_resolution**2, roi.box_fc_dim),
        box_predictor=init_box_predictor(FastRCNNPredictor(roi.box_fc_dim, num_classes + 1)),
        mask_roi_pool=AlignedRoIPool(names, FPN_STRIDES, roi.mask_pooler_resolution),
        mask_head=MaskRCNNHeads(ch, [roi.mask_conv_dim] * roi.mask_num_conv, 1),
        mask_predictor=MaskRCNNPredictor(roi.mask_conv_dim, roi.mask_conv_dim, num_classes + 1),
        **rcnn_kwargs(inputs, model),
    )
    net.transform.size_divisible = FPN_SIZE_DIVISIBILITY
    return net
