from __future__ import annotations

import pytest
import torch
from torchvision.ops import MultiScaleRoIAlign, roi_align

from evaluators.detection.pooler import AlignedRoIPool, assign_levels


def test_single_level_is_roi_align_v2() -> None:
    torch.manual_seed(0)
    feat = torch.randn(2, 4, 8, 8)
    boxes = [
        torch.tensor([[0.0, 0.0, 64.0, 64.0], [10.0, 20.0, 50.0, 40.0]]),
        torch.tensor([[5.0, 5.0, 30.0, 60.0]]),
    ]
    pool = AlignedRoIPool(["0"], [16], output_size=14)
    assert isinstance(pool, MultiScaleRoIAlign)  # torchvision's RoIHeads accept only that type
    out = pool({"0": feat}, boxes, [(128, 128), (128, 128)])
    rois = torch.tensor([[0, 0, 0, 64, 64], [0, 10, 20, 50, 40], [1, 5, 5, 30, 60]], dtype=torch.float32)
    want = roi_align(feat, rois, (14, 14), spatial_scale=1 / 16, sampling_ratio=0, aligned=True)
    assert out.shape == (3, 4, 14, 14)
    torch.testing.assert_close(out, want)


def test_fpn_levels_follow_detectron2() -> None:
    # floor(4 + log2(sqrt(area) / 224)), clamped to [2, 5]
    boxes = torch.tensor(
        [[0, 0, 10, 10], [0, 0, 112, 112], [0, 0, 224, 224], [0, 0, 447, 447], [0, 0, 2000, 2000.0]]
    )
    assert assign_levels(boxes, 2, 5).tolist() == [0, 1, 2, 2, 3]


def test_multi_level_pools_each_box_from_its_level() -> None:
    feats = {str(i): torch.full((1, 2, 64 // 2**i, 64 // 2**i), float(i)) for i in range(4)}
    pool = AlignedRoIPool(["0", "1", "2", "3"], [4, 8, 16, 32], output_size=7)
    out = pool(feats, [torch.tensor([[0.0, 0.0, 20.0, 20.0], [0.0, 0.0, 250.0, 250.0]])], [(256, 256)])
    assert out[0].unique().tolist() == [0.0] and out[1].unique().tolist() == [2.0]


def test_bad_strides_raise() -> None:
    with pytest.raises(ValueError, match="powers of two"):
        AlignedRoIPool(["0", "1"], [4, 16], output_size=7)
    with pytest.raises(ValueError, match="one stride"):
        AlignedRoIPool(["0"], [4, 8], output_size=7)
