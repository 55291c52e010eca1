"""Our modules in detectron2's registries (this module imports detectron2; import it lazily).

- `Res5ROIHeadsExtraNorm` (ROI_HEADS_REGISTRY): MoCo's detection/train_net.py head, "there is an
  extra BN layer following the res5 stage".
- `build_sobel_resnet_backbone` / `build_sobel_resnet_fpn_backbone` (BACKBONE_REGISTRY): detectron2's
  own R50 (C4) and R50-FPN backbones with the stem replaced by `SobelStem`, a `BasicStem` whose
  conv1 takes DeepCluster's 2 Sobel channels behind the fixed grayscale + Sobel filter
  (dcbench.backbone.Sobel, applied to the normalised image as every other path applies it).  The
  filter is a pair of non-persistent buffers: no parameters, no state-dict keys, so the state dict is
  a plain R50's with a [64, 2, 7, 7] `stem.conv1.weight`, which adapters.detectron2 exports strictly.
Needs detectron2 >= 0.3 (Res5ROIHeads built through `from_config` / `_build_res5_block`).
"""

from __future__ import annotations

from typing import Any

import torch
from detectron2.config import CfgNode
from detectron2.layers import ShapeSpec, get_norm
from detectron2.modeling import BACKBONE_REGISTRY
from detectron2.modeling.backbone import Backbone as D2Backbone
from detectron2.modeling.backbone.fpn import build_resnet_fpn_backbone
from detectron2.modeling.backbone.resnet import BasicStem, ResNet, build_resnet_backbone
from detectron2.modeling.roi_heads import ROI_HEADS_REGISTRY, Res5ROIHeads

from dcbench.backbone import Sobel
from evaluators.detection.d2_job import EXTRA_NORM_HEAD, SOBEL_C4_BACKBONE, SOBEL_FPN_BACKBONE

SOBEL_CHANNELS = 2


class Res5ROIHeadsExtraNorm(Res5ROIHeads):
    """Res5ROIHeads whose res5 ends with one more norm layer (MoCo's C4 head)."""

    @classmethod
    def _build_res5_block(cls, cfg: CfgNode) -> tuple[Any, int]:
        seq, out_channels = super()._build_res5_block(cfg)
        seq.add_module("norm", get_norm(cfg.MODEL.RESNETS.NORM, out_channels))
        return seq, out_channels


class SobelStem(BasicStem):
    """detectron2's BasicStem on the 2 Sobel channels of the fixed filter in front of it."""

    def __init__(self, out_channels: int = 64, norm: str = "BN") -> None:
        super().__init__(in_channels=SOBEL_CHANNELS, out_channels=out_channels, norm=norm)
        self.sobel = Sobel()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(self.sobel(x))


def with_sobel_stem(resnet: ResNet, cfg: CfgNode) -> ResNet:
    """Replace `resnet.stem` by a `SobelStem` (same width and norm; frozen when FREEZE_AT >= 1)."""
    stem = SobelStem(out_channels=cfg.MODEL.RESNETS.STEM_OUT_CHANNELS, norm=cfg.MODEL.RESNETS.NORM)
    if cfg.MODEL.BACKBONE.FREEZE_AT >= 1:
        stem.freeze()
    resnet.stem = stem
    return resnet


def build_sobel_resnet_backbone(cfg: CfgNode, input_shape: ShapeSpec) -> D2Backbone:
    return with_sobel_stem(build_resnet_backbone(cfg, input_shape), cfg)


def build_sobel_resnet_fpn_backbone(cfg: CfgNode, input_shape: ShapeSpec) -> D2Backbone:
    fpn = build_resnet_fpn_backbone(cfg, input_shape)
    with_sobel_stem(fpn.bottom_up, cfg)
    return fpn


def register() -> None:
    """Register the head and both Sobel backbones once (idempotent)."""
    if EXTRA_NORM_HEAD not in ROI_HEADS_REGISTRY:
        ROI_HEADS_REGISTRY.register(Res5ROIHeadsExtraNorm)
    for name, build in ((SOBEL_C4_BACKBONE, build_sobel_resnet_backbone),
                        (SOBEL_FPN_BACKBONE, build_sobel_resnet_fpn_backbone)):
        if name not in BACKBONE_REGISTRY:
            BACKBONE_REGISTRY.register(build)
