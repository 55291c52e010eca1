"""Export a canonical backbone for mmsegmentation's plain ``ResNet`` (depth 50) backbone.

MMSelfSup's segmentation benchmarks (0.x configs/benchmarks/mmsegmentation/_base_/models/
fcn_r50-d8.py) build ``backbone=dict(type='ResNet', depth=50, ...)`` initialised from
``torchvision://resnet50``: mmseg's ResNet uses torchvision's parameter names (``conv1``, ``bn1``,
``layerN.M.convK`` / ``bnK`` / ``downsample.{0,1}``; dilation does not rename anything) and has no
``fc``.  So the checkpoint is ``{"state_dict": <the 318 canonical tensors>}``, which mmcv/mmengine's
``Pretrained`` initialiser reads from the ``state_dict`` entry.

Sobel backbones (conv1 of shape [64, 2, 7, 7]) are refused by default: a stock mmseg / MMSelfSup
config feeds the normalised RGB image straight into a 3-channel conv1 and has no place for
DeepCluster's fixed grayscale + Sobel filter (see adapters.detectron2 for why it cannot be folded
into a 3-channel conv1).  With ``allow_sobel=True`` the 2-channel conv1 is written unchanged and
``meta["sobel"]`` is True; the reader must build ``ResNet(in_channels=2)`` and apply the filter
(`dcbench.backbone.Sobel`) to the normalised image in front of it: the fixed one, or -- when the
checkpoint carried its own (MMSelfSup 1.x re-initialises ``sobel_layer``; ``meta["input_filter"]`` is
``"sobel-from-checkpoint"``) -- ``Sobel(meta["sobel_filter"])``.  Our own segmentation benchmarks
do exactly that (evaluators.segmentation.mm_backbone.SobelResNet).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from dcbench.backbone import Backbone
from dcbench.fileio import atomic_write

from .load import compare_shapes, require_rgb

AUTHOR = "deepcluster-bench"


class BackboneLoadError(RuntimeError):
    """A segmentation model's backbone would not receive every parameter from the checkpoint."""

    def __init__(self, message: str, missing: Sequence[str], unexpected: Sequence[str],
                 mismatched: Mapping[str, tuple[tuple[int, ...], tuple[int, ...]]]) -> None:
        super().__init__(message)
        self.missing = tuple(missing)
        self.unexpected = tuple(unexpected)
        self.mismatched = dict(mismatched)


def to_mmseg(backbone: Backbone, allow_sobel: bool = False) -> dict[str, Any]:
    """{"state_dict": canonical tensors, "meta": provenance} for mmseg's ResNet(depth=50).

    A Sobel backbone raises `SobelExportError` unless `allow_sobel` (see the module docstring).
    """
    if not allow_sobel:
        require_rgb(backbone, "mmsegmentation", "its ResNet conv1 takes the 3-channel RGB image "
                    "(only deepcluster-bench's own segmentation benchmarks put the Sobel filter in front)")
    meta: dict[str, Any] = {
        "author": AUTHOR, "source_sha256": backbone.sha256, "weights_sha256": backbone.sha256,
        "file_sha256": backbone.file_sha256, "source_format": backbone.source_format, "sobel": backbone.sobel,
        "input_filter": backbone.input_filter_kind,
    }
    if backbone.sobel_filter is not None:
        meta["sobel_filter"] = {k: v.detach().cpu() for k, v in backbone.sobel_filter.items()}
    return {"state_dict": {k: v.detach().cpu() for k, v in backbone.state_dict.items()}, "meta": meta}


def write_mmseg_checkpoint(
    backbone: Backbone, path: str | os.PathLike[str], allow_sobel: bool = False,
) -> None:
    """torch.save `to_mmseg(backbone, allow_sobel)` to `path` atomically (weights_only-loadable)."""
    checkpoint = to_mmseg(backbone, allow_sobel)
    atomic_write(path, lambda fh: torch.save(checkpoint, fh))


def _shape(value: torch.Tensor | np.ndarray | Sequence[int]) -> tuple[int, ...]:
    if isinstance(value, (torch.Tensor, np.ndarray)):
        return tuple(value.shape)
    return tuple(int(d) for d in value)


def check_backbone_load(
    model_state_keys_and_shapes: Mapping[str, Sequence[int]],
    ckpt_state: Mapping[str, torch.Tensor | np.ndarray | Sequence[int]],
) -> None:
    """Raise `BackboneLoadError` unless `ckpt_state` has exactly the backbone's keys and shapes.

    `model_state_keys_and_shapes` is {key: shape} of the mmseg backbone's state dict (e.g.
    ``{k: v.shape for k, v in model.backbone.state_dict().items()}``); `ckpt_state` is the
    checkpoint's ``state_dict`` (tensors, arrays, or shapes).  The error lists the exact missing,
    unexpected and wrong-shape keys (also as attributes).
    """
    report = compare_shapes(model_state_keys_and_shapes, {k: _shape(v) for k, v in ckpt_state.items()})
    if not report.ok:
        raise BackboneLoadError(
            f"checkpoint does not load every backbone parameter: {report.describe()}",
            report.missing, report.unexpected, report.mismatched,
        )
