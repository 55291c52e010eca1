"""The DeepCluster network: (fixed Sobel) -> torchvision ResNet-50 trunk -> avgpool -> Linear head.

`arch` "resnet18" swaps in torchvision's ResNet-18 trunk (512-d avgpool) for the learning check
only; its checkpoints are refused by the adapters, which take ResNet-50 trunks.

Convolution init (`conv_init`, see pretrain/config.py): "kaiming_fan_in" is OpenSelfSup's
`ResNet.init_weights` (every Conv2d `kaiming_init(mode='fan_in', nonlinearity='relu')`, normal,
std sqrt(2 / fan_in); BN weight 1, bias 0), the code that trained the published DeepCluster
checkpoint; "kaiming_fan_out" keeps torchvision's `resnet50()` init (normal, std sqrt(2 / fan_out),
the mode mmcv's `kaiming_init` defaults to).  BN init is the same in both (weight 1, bias 0).
"""

from __future__ import annotations

import torch
import torchvision
from torch import nn

from dcbench.backbone import build_resnet50, input_filter

from .config import ARCHS, CONV_INITS, PretrainConfig


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


def build_trunk(arch: str, sobel: bool) -> torchvision.models.ResNet:
    """A randomly initialised torchvision ResNet trunk, `fc` = Identity (Sobel: 2-channel conv1)."""
    if arch not in ARCHS:
        raise ValueError(f"arch must be one of {sorted(ARCHS)}, got {arch!r}")
    if arch == "resnet50":
        return build_resnet50(sobel)
    trunk = torchvision.models.resnet18(weights=None)
    if sobel:
        trunk.conv1 = nn.Conv2d(2, 64, kernel_size=7, stride=2, padding=3, bias=False)
    trunk.fc = nn.Identity()
    return trunk


class DeepClusterModel(nn.Module):
    def __init__(self, num_clusters: int, sobel: bool, conv_init: str = "kaiming_fan_in",
                 arch: str = "resnet50") -> None:
        super().__init__()
        self.sobel = sobel
        self.input_filter = input_filter(sobel)
        self.trunk = build_trunk(arch, sobel)  # fc is Identity: output is the global avg pool
        if conv_init != "kaiming_fan_out":  # torchvision already drew fan_out
            init_convs(self.trunk, conv_init)
        self.head = nn.Linear(ARCHS[arch], num_clusters)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """last stage -> global average pool, the vector that is clustered (2048-d for ResNet-50)."""
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
    return DeepClusterModel(cfg.num_clusters, cfg.sobel, cfg.conv_init, cfg.arch)


def reset_head_momentum(optimizer: torch.optim.Optimizer, head: nn.Module) -> None:
    """Drop any optimizer state (momentum buffers) of the head's parameters."""
    for p in head.parameters():
        optimizer.state.pop(p, None)


def build_optimizer(model: DeepClusterModel, lr: float, momentum: float, head_momentum: float,
                    weight_decay: float, head_lr_mult: float = 1.0) -> torch.optim.SGD:
    """SGD; the head is its own param group with its own momentum (MMSelfSup paramwise 'head') and
    lr `lr * head_lr_mult` (1 in the reference)."""
    optimizer = torch.optim.SGD(
        [
            {"params": list(model.trunk.parameters()), "momentum": momentum},
            {"params": list(model.head.parameters()), "momentum": head_momentum},
        ],
        lr=lr,
        momentum=momentum,
        weight_decay=weight_decay,
    )
    set_lr(optimizer, lr, head_lr_mult)
    return optimizer


def set_lr(optimizer: torch.optim.Optimizer, lr: float, head_lr_mult: float) -> None:
    """Trunk group at `lr`, head group (the second, see build_optimizer) at `lr * head_lr_mult`."""
    trunk, head = optimizer.param_groups
    trunk["lr"], head["lr"] = lr, lr * head_lr_mult
