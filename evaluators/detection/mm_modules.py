"""Our modules in mmdetection's MODELS registry (this module imports mmdet; import it lazily).

- `ResLayerExtraNorm`: mmdet's `ResLayer` shared head (res5 of R50-C4) followed by one more
  BatchNorm of its 2048 output channels, as MMSelfSup 1.x's `ResLayerExtraNorm` (the config
  MSS-VOC names; MoCo's Res5ROIHeadsExtraNorm in detectron2).  MMSelfSup is not a dependency, so
  the head is registered here under the same name.
- `DCBenchSobelResNet`: mmdet's `ResNet` with a 2-channel conv1 behind DeepCluster's fixed
  grayscale + Sobel filter (dcbench.backbone.SobelInputMixin), for Sobel checkpoints.

A Config built from a dict does not run `custom_imports`, so the engine imports this module
before building the model.
"""

from __future__ import annotations

import torch
from mmcv.cnn import build_norm_layer
from mmdet.models.backbones import ResNet
from mmdet.models.roi_heads.shared_heads import ResLayer
from mmdet.registry import MODELS

from dcbench.backbone import SobelInputMixin
from evaluators.detection.mm_configs import EXTRA_NORM_HEAD, SOBEL_BACKBONE


class ResLayerExtraNorm(ResLayer):
    """`ResLayer` + BatchNorm (`norm`) on its output; the norm is not in any backbone checkpoint."""

    def __init__(self, depth: int, stage: int = 3, **kwargs: object) -> None:
        super().__init__(depth, stage=stage, **kwargs)
        block = ResNet.arch_settings[depth][0]
        channels = 64 * 2**stage * block.expansion
        self.add_module("norm", build_norm_layer(self.norm_cfg, channels)[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(super().forward(x))


class SobelResNet(SobelInputMixin, ResNet):
    """mmdet `ResNet(in_channels=2, ...)` whose input first goes through the fixed Sobel filter."""


def register() -> None:
    """Register both modules once (idempotent: the registry refuses a second registration)."""
    for name, cls in ((EXTRA_NORM_HEAD, ResLayerExtraNorm), (SOBEL_BACKBONE, SobelResNet)):
        if MODELS.get(name) is None:
            MODELS.register_module(name=name, module=cls)
