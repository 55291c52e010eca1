from __future__ import annotations

import pytest
import torch

from dcbench.backbone import (
    ALL_TAPS,
    LAYERS,
    TAP_SPECS,
    Backbone,
    FeatureTaps,
    Sobel,
    build_resnet50,
    fixed_sobel_filter,
    input_filter,
    weights_sha256,
)


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


def test_sobel_default_is_the_fixed_filter_and_takes_a_checkpoint_filter() -> None:
    x = torch.randn(2, 3, 9, 9)
    gray = x.mean(dim=1, keepdim=True)
    kx = torch.tensor([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]])
    expected_x = torch.nn.functional.conv2d(gray, kx[None, None], padding=1)
    assert torch.allclose(Sobel()(x)[:, :1], expected_x, atol=1e-5)
    weights = {k: torch.randn(v.shape) for k, v in fixed_sobel_filter().items()}
    g = torch.nn.functional.conv2d(x, weights["0.weight"], weights["0.bias"])
    expected = torch.nn.functional.conv2d(g, weights["1.weight"], weights["1.bias"], padding=1)
    assert torch.allclose(Sobel(weights)(x), expected, atol=1e-6)
    assert list(Sobel(weights).parameters()) == []
    with pytest.raises(ValueError, match="non-Sobel"):
        input_filter(False, weights)


def test_weights_sha256_identifies_tensors_not_their_order() -> None:
    a = {"x": torch.arange(4.0), "y": torch.tensor(3)}
    same = {"y": torch.tensor(3), "x": torch.arange(4.0).clone()}
    assert weights_sha256(a) == weights_sha256(same)
    assert weights_sha256(a) != weights_sha256(a | {"y": torch.tensor(4)})
    assert weights_sha256(a) != weights_sha256(a | {"x": torch.arange(4.0).reshape(2, 2)})  # shape counts
    assert weights_sha256(a) != weights_sha256(a | {"x": torch.arange(4.0).double()})  # dtype counts
    assert weights_sha256(a) != weights_sha256(a, sobel_filter=fixed_sobel_filter())


def test_backbone_records_its_input_filter() -> None:
    state = build_resnet50(sobel=True).state_dict()
    fixed = Backbone(state_dict=state, sobel=True, sha256="0" * 64, source_format="test")
    carried = Backbone(state_dict=state, sobel=True, sha256="0" * 64, source_format="test",
                       sobel_filter=fixed_sobel_filter(), file_sha256="1" * 64)
    rgb = Backbone(state_dict=build_resnet50().state_dict(), sobel=False, sha256="0" * 64, source_format="t")
    kinds = [b.input_filter_kind for b in (rgb, fixed, carried)]
    assert kinds == ["rgb", "sobel-fixed", "sobel-from-checkpoint"]
    assert isinstance(carried.build_taps().input_filter, Sobel)
