from __future__ import annotations

import pytest
import torch

from dcbench.backbone import ALL_TAPS, LAYERS, TAP_SPECS, Backbone, FeatureTaps, Sobel, build_resnet50


def test_reference_pooling_dims() -> None:
    dims = [TAP_SPECS[name].dim for name in LAYERS]
    assert dims == [9216, 9216, 8192, 9216, 8192]


@pytest.fixture(scope="module")
def taps() -> FeatureTaps:
    torch.manual_seed(0)
    return FeatureTaps(build_resnet50()).eval()


def test_taps_keep_dims_at_small_input(taps: FeatureTaps) -> None:
    with torch.no_grad():
        out = taps(torch.randn(2, 3, 64, 64))
    assert set(out) == set(ALL_TAPS)
    for name in LAYERS:
        assert out[name].shape == (2, TAP_SPECS[name].dim)
    assert out["avgpool"].shape == (2, 2048)


def test_reference_pooling_used_at_224() -> None:
    fmap = torch.randn(1, 2048, 7, 7)
    from dcbench.backbone import _pool

    expected = torch.nn.functional.avg_pool2d(fmap, 6, 1, 0).flatten(1)
    assert torch.equal(_pool("feature5", fmap), expected)


def test_sobel_backbone_round_trip() -> None:
    model = build_resnet50(sobel=True)
    state = {k: v for k, v in model.state_dict().items()}
    bb = Backbone(state_dict=state, sobel=True, sha256="0" * 64, source_format="test")
    out = bb.build_taps().eval()(torch.randn(1, 3, 32, 32), taps=("feature5",))
    assert out["feature5"].shape == (1, 8192)
    assert Sobel()(torch.randn(1, 3, 8, 8)).shape == (1, 2, 8, 8)


def test_unknown_tap_raises(taps: FeatureTaps) -> None:
    with pytest.raises(KeyError, match="feature9"):
        taps(torch.randn(1, 3, 32, 32), taps=("feature9",))
