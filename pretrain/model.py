"""The DeepCluster network: (fixed Sobel) -> torchvision ResNet-50 trunk -> avgpool -> Linear head.

Convolution init (`conv_init`, see pretrain/config.py): "kaiming_fan_in" is OpenSelfSup's
`ResNet.init_weights` (every Conv2d `kaiming_init(mode='fan_in', nonlinearity='relu')`, normal,
std sqrt(2 / fan_in); BN weight 1, bias 0), the code that trained the published DeepCluster
checkpoint; "kaiming_fan_out" keeps torchvision's `resnet50()` init (normal, std sqrt(2 / fan_out),
the mode mmcv's `kaiming_init` defaults to).  BN init is the same in both (weight 1, bias 0).
"""

from __future__ import annotations

import torch
from torch import nn

from dcbench.backbone import build_resnet50, input_filter

from .config import CONV_INITS, PretrainConfig

FEAT_DIM = 2048


@torch.no_grad()
def init_convs(trunk: nn.Module, conv_init: str) -> None:
    """Re-draw every Conv2d weight of `trunk` with Kaiming normal in the chosen mode (uses the global RNG)."""
    if conv_init not in CONV_INITS:
        raise ValueError(f"conv_init must be one of {CONV_INITS}, got {conv_init!r}")
    mode = "fan_in" if conv_init == "kaiming_fan_in" else "fan_out"
    for m in trunk.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode=mode, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class DeepClusterModel(nn.Module):
    def __init__(self, num_clusters: int, sobel: bool, conv_init: str = "kaiming_fan_in") -> None:
        super().__init__()
        self.sobel = sobel
        self.input_filter = input_filter(sobel)
        self.trunk = build_resnet50(sobel)  # fc is Identity: output is the 2048-d global avg pool
        if conv_init != "kaiming_fan_out":  # torchvision already drew fan_out
            init_convs(self.trunk, conv_init)
        self.head = nn.Linear(FEAT_DIM, num_clusters)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """res5 -> global average pool, the 2048-d vector that is clustered."""
        return self.trunk(self.input_filter(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    @torch.no_grad()
    def reset_head(self, std: float, seed: int) -> None:
        """Re-initialise the head in place: weight ~ N(0, std), bias 0 (DeepCluster main.py)."""
        gen = torch.Generator().manual_seed(int(seed))
        w = torch.randn(self.head.weight.shape, generator=gen) * std
        self.head.weight.copy_(w)
        self.head.bias.zero_()


def build_model(cfg: PretrainConfig) -> DeepClusterModel:
    """The config's network, drawn from the global torch RNG (seed it first for reproducible weights)."""
    return DeepClusterModel(cfg.num_clusters, cfg.sobel, cfg.conv_init)


def reset_head_momentum(optimizer: torch.optim.Optimizer, head: nn.Module) -> None:
    """Drop any optimizer state (momentum buffers) of the head's parameters."""
    for p in head.parameters():
        optimizer.state.pop(p, None)


def build_optimizer(model: DeepClusterModel, lr: float, momentum: float, head_momentum: float,
                    weight_decay: float) -> torch.optim.SGD:
    """SGD; the head is its own param group with its own momentum (MMSelfSup paramwise 'head')."""
    return torch.optim.SGD(
        [
            {"params": list(model.trunk.parameters()), "momentum": momentum},
            {"params": list(model.head.parameters()), "momentum": head_momentum},
        ],
        lr=lr,
        momentum=momentum,
        weight_decay=weight_decay,
    )
