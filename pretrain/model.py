"""The DeepCluster network: (fixed Sobel) -> torchvision ResNet-50 trunk -> avgpool -> Linear head."""

from __future__ import annotations

import torch
from torch import nn

from dcbench.backbone import build_resnet50, input_filter

FEAT_DIM = 2048


class DeepClusterModel(nn.Module):
    def __init__(self, num_clusters: int, sobel: bool) -> None:
        super().__init__()
        self.sobel = sobel
        self.input_filter = input_filter(sobel)
        self.trunk = build_resnet50(sobel)  # fc is Identity: output is the 2048-d global avg pool
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
