"""The canonical backbone: torchvision ResNet-50 (no fc), optional fixed Sobel input,
and the Feature1..5 / AvgPool taps used by every frozen-feature evaluator.

Feature1 is the stem after conv1/bn/relu and before max-pool; Feature2..5 are res2..res5.
Each is average-pooled as MMSelfSup's MultiPooling does (kernel/stride/padding per layer),
giving 9216, 9216, 8192, 9216, 8192 dims at 224 px.  At other input sizes (the tiny CI data)
the map is adaptively pooled to the same output grid, so dimensions never change.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torchvision
from torch import nn

from dcbench.layers import LAYERS

# The input normalization of torchvision's ResNet-50 and of every reference pipeline (RGB, [0, 1] input).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
ALL_TAPS = (*LAYERS, "avgpool")


@dataclass(frozen=True)
class TapSpec:
    channels: int
    ref_size: int  # spatial size of this map at 224 px input
    kernel: int
    stride: int
    padding: int

    @property
    def out_size(self) -> int:
        return (self.ref_size + 2 * self.padding - self.kernel) // self.stride + 1

    @property
    def dim(self) -> int:
        return self.channels * self.out_size**2


# MMSelfSup MultiPooling (mmselfsup/models/utils/multi_pooling.py), POOL_PARAMS for resnet50.
TAP_SPECS: Mapping[str, TapSpec] = {
    "feature1": TapSpec(64, 112, 10, 10, 4),
    "feature2": TapSpec(256, 56, 16, 8, 0),
    "feature3": TapSpec(512, 28, 13, 5, 0),
    "feature4": TapSpec(1024, 14, 8, 3, 0),
    "feature5": TapSpec(2048, 7, 6, 1, 0),
}


SOBEL_FILTER_KEYS = ("0.weight", "0.bias", "1.weight", "1.bias")  # MMSelfSup's `Sobel.sobel` Sequential


def fixed_sobel_filter() -> dict[str, torch.Tensor]:
    """DeepCluster's fixed filter: `0` = grayscale 1x1 conv (3 -> 1), `1` = Sobel-x/y 3x3 conv (1 -> 2)."""
    return {
        "0.weight": torch.full((1, 3, 1, 1), 1.0 / 3.0),
        "0.bias": torch.zeros(1),
        "1.weight": torch.tensor(
            [[[[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]]],
             [[[1.0, 2.0, 1.0], [0.0, 0.0, 0.0], [-1.0, -2.0, -1.0]]]]
        ),
        "1.bias": torch.zeros(2),
    }


class Sobel(nn.Module):
    """Grayscale + Sobel-x/y input filter (DeepCluster's `sobel=True` input): 3 -> 2 channels.

    Without `weights` it is the fixed filter; `weights` ({SOBEL_FILTER_KEYS: tensor}) is a filter a
    checkpoint carries (MMSelfSup 1.x re-initialises its frozen `sobel_layer`, see adapters.convert).
    Never trained: buffers, not parameters.
    """

    def __init__(self, weights: Mapping[str, torch.Tensor] | None = None) -> None:
        super().__init__()
        custom = weights is not None
        weights = fixed_sobel_filter() if weights is None else weights
        self.register_buffer("gray", weights["0.weight"].detach().float().clone(), persistent=False)
        self.register_buffer("sobel", weights["1.weight"].detach().float().clone(), persistent=False)
        self.gray_bias: torch.Tensor | None
        self.sobel_bias: torch.Tensor | None
        self.register_buffer("gray_bias", weights["0.bias"].detach().float().clone() if custom else None,
                             persistent=False)
        self.register_buffer("sobel_bias", weights["1.bias"].detach().float().clone() if custom else None,
                             persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = nn.functional.conv2d(x, self.gray, self.gray_bias)
        return nn.functional.conv2d(g, self.sobel, self.sobel_bias, padding=1)


class SobelInputMixin:
    """Put the fixed `Sobel` filter in front of an OpenMMLab ResNet with a 2-channel conv1.

    Mix in before the ResNet class (``class SobelResNet(SobelInputMixin, ResNet)``): the filter sees
    exactly what the backbone is given (the normalised, padded image), as MMSelfSup 1.x's
    `ResNetSobel` and `FeatureTaps` apply it.  Its weights are non-persistent buffers: no
    parameters and no state-dict keys, so the state dict is exactly a 2-channel ResNet's.
    """

    SOBEL_CHANNELS = 2

    def __init__(self, in_channels: int = SOBEL_CHANNELS, **kwargs: object) -> None:
        if in_channels != self.SOBEL_CHANNELS:
            raise ValueError(f"{type(self).__name__} takes the {self.SOBEL_CHANNELS} Sobel channels in "
                             "conv1, "
                             f"not in_channels={in_channels}")
        super().__init__(in_channels=in_channels, **kwargs)  # type: ignore[call-arg]
        self.sobel = Sobel()

    def forward(self, x: torch.Tensor) -> object:
        return super().forward(self.sobel(x))  # type: ignore[misc]


def build_resnet50(sobel: bool = False) -> torchvision.models.ResNet:
    """A randomly initialised torchvision ResNet-50 with `fc` removed (Identity).

    With `sobel`, conv1 takes the 2 Sobel channels; call `input_filter(sobel)` in front.
    """
    model = torchvision.models.resnet50(weights=None)
    if sobel:
        model.conv1 = nn.Conv2d(2, 64, kernel_size=7, stride=2, padding=3, bias=False)
    model.fc = nn.Identity()
    return model


def input_filter(sobel: bool, sobel_filter: Mapping[str, torch.Tensor] | None = None) -> nn.Module:
    """What goes in front of conv1: the Sobel filter (fixed, or the checkpoint's own), or nothing."""
    if sobel_filter is not None and not sobel:
        raise ValueError("a Sobel filter was given for a non-Sobel (RGB) backbone")
    return Sobel(sobel_filter) if sobel else nn.Identity()


def _pool(name: str, fmap: torch.Tensor) -> torch.Tensor:
    spec = TAP_SPECS[name]
    if fmap.shape[-1] == spec.ref_size and fmap.shape[-2] == spec.ref_size:
        pooled = nn.functional.avg_pool2d(fmap, spec.kernel, spec.stride, spec.padding)
    else:
        pooled = nn.functional.adaptive_avg_pool2d(fmap, spec.out_size)
    return pooled.flatten(1)


class FeatureTaps(nn.Module):
    """Run the trunk once and return the requested pooled taps, flattened to (N, dim)."""

    def __init__(
        self, resnet: torchvision.models.ResNet, sobel: bool = False,
        sobel_filter: Mapping[str, torch.Tensor] | None = None,
    ) -> None:
        super().__init__()
        self.input_filter = input_filter(sobel, sobel_filter)
        self.resnet = resnet

    def forward(self, x: torch.Tensor, taps: Sequence[str] = ALL_TAPS) -> dict[str, torch.Tensor]:
        unknown = sorted(set(taps) - set(ALL_TAPS))
        if unknown:
            raise KeyError(f"unknown feature tap(s) {unknown}; known: {list(ALL_TAPS)}")
        r = self.resnet
        out: dict[str, torch.Tensor] = {}
        x = r.relu(r.bn1(r.conv1(self.input_filter(x))))
        maps = {"feature1": x}
        x = r.maxpool(x)
        for name, stage in zip(LAYERS[1:], (r.layer1, r.layer2, r.layer3, r.layer4), strict=True):
            x = stage(x)
            maps[name] = x
        for name in taps:
            if name == "avgpool":
                out[name] = torch.flatten(nn.functional.adaptive_avg_pool2d(maps["feature5"], 1), 1)
            else:
                out[name] = _pool(name, maps[name])
        return out


def weights_sha256(
    state_dict: Mapping[str, torch.Tensor], sobel_filter: Mapping[str, torch.Tensor] | None = None
) -> str:
    """sha256 over the tensors in sorted key order (key, dtype, shape, raw bytes of each).

    The identity of the weights, not of the file: the same tensors saved twice (another epoch
    counter, RNG state, optimiser, container format or dtype already made canonical by the loader)
    give the same hash.  A checkpoint-specific Sobel filter is part of the network and is hashed
    under ``input_filter.*``; the fixed filter (None) adds nothing.
    """
    items = dict(state_dict)
    if sobel_filter is not None:
        items |= {f"input_filter.{k}": v for k, v in sobel_filter.items()}
    digest = hashlib.sha256()
    for key in sorted(items):
        tensor = items[key].detach().cpu().contiguous()
        digest.update(f"{key}|{tensor.dtype}|{list(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class Backbone:
    """A loaded checkpoint in canonical form: torchvision ResNet-50 keys without `fc.*`.

    Made by `adapters.load_checkpoint`; every evaluator takes one of these.
    `sha256` identifies the weights (`weights_sha256`: caches and result rows key on it);
    `file_sha256` is the hash of the file they were read from (provenance only).
    `sobel_filter` is None for RGB backbones and for the fixed DeepCluster filter; otherwise the
    checkpoint's own filter ({SOBEL_FILTER_KEYS: tensor}), which every consumer must apply
    (`input_filter()`).
    """

    state_dict: Mapping[str, torch.Tensor]
    sobel: bool
    sha256: str
    source_format: str
    pretrain_config: str | None = None
    file_sha256: str | None = None
    sobel_filter: Mapping[str, torch.Tensor] | None = None

    @property
    def input_filter_kind(self) -> str:
        """'rgb', 'sobel-fixed' or 'sobel-from-checkpoint' (what a result row should record)."""
        if not self.sobel:
            return "rgb"
        return "sobel-fixed" if self.sobel_filter is None else "sobel-from-checkpoint"

    def input_filter(self) -> nn.Module:
        return input_filter(self.sobel, self.sobel_filter)

    def build_resnet(self) -> torchvision.models.ResNet:
        """A fresh ResNet-50 (fc = Identity) with these weights, loaded strictly."""
        model = build_resnet50(sobel=self.sobel)
        model.load_state_dict(dict(self.state_dict), strict=True)
        return model

    def build_taps(self) -> FeatureTaps:
        return FeatureTaps(self.build_resnet(), sobel=self.sobel, sobel_filter=self.sobel_filter)
