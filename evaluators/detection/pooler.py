"""RoIAlign pooling with detectron2's ROIPooler semantics and torchvision's MultiScaleRoIAlign call.

torchvision's MultiScaleRoIAlign uses roi_align(aligned=False); detectron2's default POOLER_TYPE is
ROIAlignV2 (aligned=True: the half-pixel shift). This module keeps MultiScaleRoIAlign's
`forward(features, boxes, image_shapes)` so it drops into torchvision's RoIHeads, with:
  * fixed feature strides (detectron2 uses the backbone's strides, not a guess from image sizes);
  * aligned=True, sampling_ratio from POOLER_SAMPLING_RATIO (0 = adaptive);
  * FPN level = floor(4 + log2(sqrt(box area) / 224 + 1e-8)) clamped to the available levels
    (detectron2/modeling/poolers.py::assign_boxes_to_levels).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torchvision.ops import MultiScaleRoIAlign, roi_align

CANONICAL_BOX_SIZE = 224  # detectron2 ROIPooler default
CANONICAL_LEVEL = 4  # detectron2 ROIPooler default


def boxes_to_rois(boxes: Sequence[torch.Tensor]) -> torch.Tensor:
    """(K, 5) rois: batch index, x1, y1, x2, y2."""
    rois = [torch.cat([torch.full((len(b), 1), float(i), dtype=b.dtype, device=b.device), b], dim=1)
            for i, b in enumerate(boxes)]
    return torch.cat(rois, dim=0)


def assign_levels(boxes: torch.Tensor, min_level: int, max_level: int) -> torch.Tensor:
    """Index (0-based from min_level) of the FPN level each (K, 4) box is pooled from."""
    sizes = torch.sqrt((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))
    levels = torch.floor(CANONICAL_LEVEL + torch.log2(sizes / CANONICAL_BOX_SIZE + 1e-8))
    return torch.clamp(levels, min=min_level, max=max_level).to(torch.int64) - min_level


class AlignedRoIPool(MultiScaleRoIAlign):
    """Pool `output_size` RoIAlignV2 features from the maps named `featmap_names` (fine to coarse).

    A MultiScaleRoIAlign (torchvision's RoIHeads accept only that type) whose forward is ours.
    """

    def __init__(self, featmap_names: Sequence[str], strides: Sequence[int], output_size: int,
                 sampling_ratio: int = 0) -> None:
        super().__init__(list(featmap_names), output_size, sampling_ratio)
        if len(featmap_names) != len(strides):
            raise ValueError("AlignedRoIPool needs one stride per feature map")
        levels = [math.log2(s) for s in strides]
        consecutive = [float(int(levels[0]) + i) for i in range(len(levels))]
        if levels != consecutive:
            raise ValueError(f"strides must be consecutive powers of two, got {list(strides)}")
        self.spatial_scales = [1.0 / s for s in strides]
        self.min_level, self.max_level = int(levels[0]), int(levels[-1])
        self.output_size = (output_size, output_size)

    def _pool(self, feature: torch.Tensor, rois: torch.Tensor, scale: float) -> torch.Tensor:
        return roi_align(feature, rois, self.output_size, spatial_scale=scale,
                         sampling_ratio=self.sampling_ratio, aligned=True)

    def forward(self, features: dict[str, torch.Tensor], boxes: list[torch.Tensor],
                image_shapes: list[tuple[int, int]]) -> torch.Tensor:
        del image_shapes  # strides are fixed by the backbone
        maps = [features[name] for name in self.featmap_names]
        rois = boxes_to_rois(boxes).to(maps[0].dtype)
        if len(maps) == 1:
            return self._pool(maps[0], rois, self.spatial_scales[0])
        level = assign_levels(rois[:, 1:], self.min_level, self.max_level)
        out = rois.new_zeros((len(rois), maps[0].shape[1], *self.output_size))
        for i, (fmap, scale) in enumerate(zip(maps, self.spatial_scales, strict=True)):
            idx = torch.nonzero(level == i).squeeze(1)
            if len(idx):
                out[idx] = self._pool(fmap, rois[idx], scale).to(out.dtype)
        return out
