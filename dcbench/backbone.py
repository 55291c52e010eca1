"""The canonical backbone: torchvision ResNet-50 (no fc), optional fixed Sobel input,
and the Feature1..5 / AvgPool taps used by every frozen-feature evaluator.

Feature1 is the stem after conv1/bn/relu and before max-pool; Feature2..5 are res2..res5.
Each is average-pooled as MMSelfSup's MultiPooling does (kernel/stride/padding per layer),
giving 9216, 9216, 8192, 9216, 8192 dims at 224 px.  At other input sizes (the tiny CI data)
the map is adaptively pooled to the same output grid, so dimensions never change.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torchvision
from torch import nn

LAYERS = ("feature1", "feature2", "feature3", "feature4", "feature5")
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


class Sobel(nn.Module):
    """Fixed grayscale + Sobel-x/y filter (DeepCluster's `sobel=True` input): 3 -> 2 channels."""

    def __init__(self) -> None:
        super().__init__()
        gray = torch.full((1, 3, 1, 1), 1.0 / 3.0)
        sobel = torch.tensor(
            [[[[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]]],
             [[[1.0, 2.0, 1.0], [0.0, 0.0, 0.0], [-1.0, -2.0, -1.0]]]]
        )
        self.register_buffer("gray", gray, persistent=False)
        self.register_buffer("sobel", sobel, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = nn.functional.conv2d(x, self.gray)
        return nn.functional.conv2d(g, self.sobel, padding=1)


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


def input_filter(sobel: bool) -> nn.Module:
    return Sobel() if sobel else nn.Identity()


def is_sobel_state_dict(state: Mapping[str, torch.Tensor]) -> bool:
    return tuple(state["conv1.weight"].shape[1:2]) == (2,)


def _pool(name: str, fmap: torch.Tensor) -> torch.Tensor:
    spec = TAP_SPECS[name]
    if fmap.shape[-1] == spec.ref_size and fmap.shape[-2] == spec.ref_size:
        pooled = nn.functional.avg_pool2d(fmap, spec.kernel, spec.stride, spec.padding)
    else:
        pooled = nn.functional.adaptive_avg_pool2d(fmap, spec.out_size)
    return pooled.flatten(1)


class FeatureTaps(nn.Module):
    """Run the trunk once and return the requested pooled taps, flattened to (N, dim)."""

    def __init__(self, resnet: torchvision.models.ResNet, sobel: bool = False) -> None:
        super().__init__()
        self.input_filter = input_filter(sobel)
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


@dataclass(frozen=True)
class Backbone:
    """A loaded checkpoint in canonical form: torchvision ResNet-50 keys without `fc.*`.

    Made by `adapters.load_checkpoint`; every evaluator takes one of these.
    """

    state_dict: Mapping[str, torch.Tensor]
    sobel: bool
    sha256: str
    source_format: str
    pretrain_config: str | None = None

    def build_resnet(self) -> torchvision.models.ResNet:
        """A fresh ResNet-50 (fc = Identity) with these weights, loaded strictly."""
        model = build_resnet50(sobel=self.sobel)
        model.load_state_dict(dict(self.state_dict), strict=True)
        return model

    def build_taps(self) -> FeatureTaps:
        return FeatureTaps(self.build_resnet(), sobel=self.sobel)
