"""`SobelResNet`: mmseg's plain ResNet behind DeepCluster's fixed grayscale + Sobel filter.

This module imports mmsegmentation and registers the backbone in mmseg's MODELS registry under
`configs.SOBEL_BACKBONE_TYPE`; the runner imports it lazily, before building the model.

Like MMSelfSup 1.x's `ResNetSobel`, the filter sits inside the backbone, so it sees exactly what
the backbone is given: the image after `SegDataPreProcessor`'s RGB conversion, normalisation and
padding (and, in slide inference, each window) -- as `dcbench.backbone.FeatureTaps` applies
`Sobel` to the normalised RGB tensor.  The filter's weights are non-persistent buffers: no
parameters (never in the optimiser, never trained) and no state-dict keys, so the backbone's state
dict is exactly a 2-channel ResNet's and the runner's strict, checked load is unchanged.
"""

from __future__ import annotations

from typing import Any

import torch
from mmseg.models.backbones import ResNet
from mmseg.registry import MODELS

from dcbench.backbone import Sobel
from evaluators.segmentation.configs import SOBEL_BACKBONE_TYPE, SOBEL_CHANNELS


@MODELS.register_module(name=SOBEL_BACKBONE_TYPE)
class SobelResNet(ResNet):
    """`ResNet(in_channels=2, ...)` whose input first goes through the fixed `Sobel` (3 -> 2 channels)."""

    def __init__(self, in_channels: int = SOBEL_CHANNELS, **kwargs: Any) -> None:
        if in_channels != SOBEL_CHANNELS:
            raise ValueError(f"{SOBEL_BACKBONE_TYPE} takes the {SOBEL_CHANNELS} Sobel channels in conv1, "
                             f"not in_channels={in_channels}")
        super().__init__(in_channels=in_channels, **kwargs)
        self.sobel = Sobel()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return super().forward(self.sobel(x))
