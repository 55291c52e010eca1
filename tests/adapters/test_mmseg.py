from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision

from adapters import SobelExportError, canonical_shapes, load_checkpoint
from adapters.mmseg import BackboneLoadError, check_backbone_load, to_mmseg, write_mmseg_checkpoint
from dcbench.backbone import Backbone, build_resnet50


@pytest.fixture(scope="module")
def backbone() -> Backbone:
    torch.manual_seed(0)
    state = build_resnet50().state_dict()
    return Backbone(state_dict=state, sobel=False, sha256="1" * 64, source_format="test")


def test_keys_fit_plain_resnet50_without_fc(backbone: Backbone) -> None:
    # mmseg's ResNet(depth=50) uses torchvision's names (conv1/bn1/layerN.M.convK,bnK/downsample.{0,1})
    # and has no fc: its state dict is torchvision's resnet50 state dict minus fc.*.
    with torch.device("meta"):
        reference = torchvision.models.resnet50(weights=None).state_dict()
    expected = {k: list(v.shape) for k, v in reference.items() if not k.startswith("fc.")}
    state = to_mmseg(backbone)["state_dict"]
    assert len(state) == 318
    assert {k: list(v.shape) for k, v in state.items()} == expected
    assert all(torch.equal(state[k], v) for k, v in backbone.state_dict.items())


def test_written_checkpoint_loads_every_backbone_parameter(backbone: Backbone, tmp_path: Path) -> None:
    path = tmp_path / "seg.pth"
    write_mmseg_checkpoint(backbone, path)
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    check_backbone_load(canonical_shapes(sobel=False), ckpt["state_dict"])
    assert ckpt["meta"]["source_sha256"] == "1" * 64 and ckpt["meta"]["sobel"] is False
    again = load_checkpoint(path)
    assert all(torch.equal(again.state_dict[k], v) for k, v in backbone.state_dict.items())
    assert [p.name for p in tmp_path.iterdir()] == ["seg.pth"]


def test_check_backbone_load_names_exact_differences() -> None:
    model = canonical_shapes(sobel=False)
    ckpt: dict[str, object] = dict(model)
    del ckpt["layer4.2.bn3.running_mean"]
    ckpt["decode_head.conv_seg.weight"] = (21, 512, 1, 1)
    ckpt["layer1.0.conv1.weight"] = torch.zeros(64, 64, 3, 3)
    with pytest.raises(BackboneLoadError) as info:
        check_backbone_load(model, ckpt)  # type: ignore[arg-type]
    err = info.value
    assert err.missing == ("layer4.2.bn3.running_mean",)
    assert err.unexpected == ("decode_head.conv_seg.weight",)
    assert err.mismatched == {"layer1.0.conv1.weight": ((64, 64, 1, 1), (64, 64, 3, 3))}
    for text in ("'layer4.2.bn3.running_mean'", "'decode_head.conv_seg.weight'",
                 "layer1.0.conv1.weight: expected [64, 64, 1, 1], got [64, 64, 3, 3]"):
        assert text in str(err)


def test_sobel_backbone_is_refused(tmp_path: Path) -> None:
    with torch.device("meta"):
        state = build_resnet50(sobel=True).state_dict()
    sobel = Backbone(state_dict=state, sobel=True, sha256="0" * 64, source_format="test")
    with pytest.raises(SobelExportError, match="Sobel backbone .* to mmsegmentation"):
        write_mmseg_checkpoint(sobel, tmp_path / "s.pth")
    assert list(tmp_path.iterdir()) == []


def test_sobel_backbone_exports_its_2_channel_stem_when_allowed(tmp_path: Path) -> None:
    # only for deepcluster-bench's own segmentation runner, which puts the fixed Sobel filter in front
    torch.manual_seed(0)
    state = build_resnet50(sobel=True).state_dict()
    sobel = Backbone(state_dict=state, sobel=True, sha256="0" * 64, source_format="test")
    path = tmp_path / "s.pth"
    write_mmseg_checkpoint(sobel, path, allow_sobel=True)
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    assert ckpt["meta"]["sobel"] is True
    check_backbone_load(canonical_shapes(sobel=True), ckpt["state_dict"])
    assert tuple(ckpt["state_dict"]["conv1.weight"].shape) == (64, 2, 7, 7)
    assert all(torch.equal(ckpt["state_dict"][k], v) for k, v in state.items())
    with pytest.raises(BackboneLoadError) as info:  # a plain 3-channel ResNet cannot take it
        check_backbone_load(canonical_shapes(sobel=False), ckpt["state_dict"])
    assert info.value.mismatched == {"conv1.weight": ((64, 3, 7, 7), (64, 2, 7, 7))}
