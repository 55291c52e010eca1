"""Place a canonical backbone into an mmdetection detector, checked key by key.

mmdet's `ResNet` (and our Sobel variant of it) and its `ResLayer` shared head use torchvision's
parameter names (``conv1``, ``bn1``, ``layerN.M.convK`` / ``bnK`` / ``downsample.{0,1}``), so the
canonical keys need no renaming, only a home:

- R50-C4 (Faster R-CNN, MMSelfSup's ``faster-rcnn_r50-c4_ms-24k_voc0712.py``): the backbone is a
  3-stage ResNet (stem + layer1..3) at ``backbone``; res5 is the RoI head's shared head
  (``ResLayer(stage=3)`` names it ``layer4``) at ``roi_head.shared_head``.  MMSelfSup's
  ``ResLayerExtraNorm`` adds one BatchNorm ``norm`` after it, which no ImageNet checkpoint holds:
  it stays as initialised (the only backbone-side tensors that do not come from the checkpoint).
- R50-FPN (Mask R-CNN, ``mask-rcnn_r50_fpn_ms-1x_coco.py``): the whole 4-stage ResNet at ``backbone``.

`load_into_detector` checks each part with `adapters.mmseg.check_backbone_load` (exact keys and
shapes, `BackboneLoadError` naming every missing / unexpected / wrong-shape key), loads it with
``strict=True``, then compares every loaded tensor with the checkpoint's.  A Sobel backbone's
2-channel conv1 goes unchanged into our registered Sobel ResNet (the fixed filter is a
non-persistent buffer, so its state dict is exactly a 2-channel ResNet's).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import torch
from torch import nn

from dcbench.backbone import Backbone

from .mmseg import BackboneLoadError, check_backbone_load

Arch = Literal["C4", "FPN"]
C4_HEAD_STAGE = "layer4"
EXTRA_NORM = "norm"  # ResLayerExtraNorm's extra BatchNorm, not in any backbone checkpoint


def detector_parts(state: Mapping[str, torch.Tensor], arch: Arch) -> dict[str, dict[str, torch.Tensor]]:
    """{module path in the detector: its state dict} for canonical `state` ('C4' or 'FPN')."""
    if arch == "FPN":
        return {"backbone": dict(state)}
    if arch != "C4":
        raise ValueError(f"unknown detector architecture {arch!r}; use 'C4' or 'FPN'")
    head = {k: v for k, v in state.items() if k.split(".", 1)[0] == C4_HEAD_STAGE}
    return {"backbone": {k: v for k, v in state.items() if k not in head}, "roi_head.shared_head": head}


def to_mmdet(backbone: Backbone, arch: Arch) -> dict[str, dict[str, torch.Tensor]]:
    """`detector_parts` of the backbone's canonical tensors (detached, on the CPU)."""
    return detector_parts({k: v.detach().cpu() for k, v in backbone.state_dict.items()}, arch)


def _target_state(module: nn.Module, path: str) -> dict[str, torch.Tensor]:
    """The part's state dict; the C4 head's extra norm is left out (it is not in the checkpoint)."""
    state = module.state_dict()
    if path == "roi_head.shared_head":
        return {k: v for k, v in state.items() if k.split(".", 1)[0] != EXTRA_NORM}
    return state


def _check_values(module: nn.Module, path: str, part: Mapping[str, torch.Tensor]) -> None:
    loaded = module.state_dict()
    differ = [k for k, v in part.items() if not torch.equal(loaded[k].cpu(), v.to(loaded[k].dtype))]
    if differ:
        raise BackboneLoadError(f"{path}: {len(differ)} tensors differ from the checkpoint after loading: "
                                f"{differ[:8]}", missing=(), unexpected=(), mismatched={})


def load_into_detector(model: nn.Module, parts: Mapping[str, Mapping[str, torch.Tensor]]) -> int:
    """Load every part strictly into `model` after checking it (module doc); return #tensors loaded."""
    total = 0
    for path, part in parts.items():
        module = model.get_submodule(path)
        target = _target_state(module, path)
        try:
            check_backbone_load({k: tuple(v.shape) for k, v in target.items()}, part)
        except BackboneLoadError as err:
            raise BackboneLoadError(f"{path}: {err}", err.missing, err.unexpected, err.mismatched) from err
        if len(target) == len(module.state_dict()):
            module.load_state_dict(dict(part), strict=True)
        else:  # the C4 head: layer4 strictly, the extra norm untouched
            module.get_submodule(C4_HEAD_STAGE).load_state_dict(
                {k.split(".", 1)[1]: v for k, v in part.items()}, strict=True)
        _check_values(module, path, part)
        total += len(part)
    return total
