"""The image pipelines of the classification reference configs (train kinds and the eval crop)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torchvision import transforms as T

from dcbench.backbone import IMAGENET_MEAN, IMAGENET_STD

# AlexNet-style PCA lighting noise, RGB order (MMSelfSup 0.x `Lighting`; 1.x lists the same x255, BGR).
LIGHTING_EIGVAL = (0.2175, 0.0188, 0.0045)
LIGHTING_EIGVEC = (
    (-0.5675, 0.7192, 0.4009),
    (-0.5808, -0.0045, -0.8140),
    (-0.5836, -0.6948, 0.4203),
)
TRAIN_TRANSFORMS = ("rrc_flip", "rrc_flip_jitter_lighting", "resize_centercrop_randomcrop_flip")


class Lighting(nn.Module):
    """AlexNet PCA lighting noise on a [0, 1] RGB tensor (MMSelfSup `Lighting`, alphastd 0.1)."""

    def __init__(self, alphastd: float = 0.1) -> None:
        super().__init__()
        self.alphastd = alphastd
        self.register_buffer("eigval", torch.tensor(LIGHTING_EIGVAL))
        self.register_buffer("eigvec", torch.tensor(LIGHTING_EIGVEC))

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        if self.alphastd == 0:
            return img
        alpha = torch.randn(3) * self.alphastd
        rgb = (self.eigvec * (alpha * self.eigval)[None, :]).sum(1)
        return img + rgb.view(3, 1, 1).to(img.dtype)


def _interp(name: str) -> T.InterpolationMode:
    try:
        return T.InterpolationMode(name)
    except ValueError as err:
        raise ValueError(f"unknown interpolation {name!r}; use 'bilinear' or 'bicubic'") from err


def train_transform(kind: str, crop: int, resize: int, interpolation: str) -> T.Compose:
    """The reference training pipeline `kind` (see TRAIN_TRANSFORMS), ending in ToTensor+Normalize."""
    mode = _interp(interpolation)
    if kind == "resize_centercrop_randomcrop_flip":  # Places205 (MMSelfSup places205 dataset config)
        ops: list[Any] = [T.Resize(resize, interpolation=mode), T.CenterCrop(resize), T.RandomCrop(crop),
                          T.RandomHorizontalFlip()]
    elif kind in ("rrc_flip", "rrc_flip_jitter_lighting"):
        ops = [T.RandomResizedCrop(crop, interpolation=mode), T.RandomHorizontalFlip()]
    else:
        raise ValueError(f"unknown train transform {kind!r}; known: {TRAIN_TRANSFORMS}")
    if kind == "rrc_flip_jitter_lighting":
        ops.append(T.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.0))
    ops.append(T.ToTensor())
    if kind == "rrc_flip_jitter_lighting":
        ops.append(Lighting(0.1))
    ops.append(T.Normalize(IMAGENET_MEAN, IMAGENET_STD))
    return T.Compose(ops)


def eval_transform(crop: int, resize: int, interpolation: str) -> T.Compose:
    """Resize the short side to `resize`, center-crop `crop`, normalize."""
    mode = _interp(interpolation)
    return T.Compose([T.Resize(resize, interpolation=mode), T.CenterCrop(crop), T.ToTensor(),
                      T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
