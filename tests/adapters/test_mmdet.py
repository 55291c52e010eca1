from __future__ import annotations

import pytest
import torch

from adapters.mmdet import detector_parts, load_into_detector, to_mmdet
from adapters.mmseg import BackboneLoadError
from dcbench.backbone import Backbone, build_resnet50


@pytest.fixture(scope="module")
def backbone() -> Backbone:
    torch.manual_seed(0)
    return Backbone(state_dict=build_resnet50().state_dict(), sobel=False, sha256="2" * 64,
                    source_format="test")


def test_c4_puts_res5_in_the_roi_head_and_fpn_keeps_all_in_the_backbone(backbone: Backbone) -> None:
    c4 = to_mmdet(backbone, "C4")
    assert sorted(c4) == ["backbone", "roi_head.shared_head"]
    assert {k.split(".")[0] for k in c4["roi_head.shared_head"]} == {"layer4"}
    assert "layer4" not in {k.split(".")[0] for k in c4["backbone"]}
    assert len(c4["backbone"]) + len(c4["roi_head.shared_head"]) == len(backbone.state_dict) == 318
    (fpn,) = to_mmdet(backbone, "FPN").values()
    assert fpn.keys() == backbone.state_dict.keys()
    with pytest.raises(ValueError, match="architecture"):
        detector_parts(backbone.state_dict, "DC5")  # type: ignore[arg-type]


def _detector(arch: str, sobel: bool = False):
    pytest.importorskip("mmdet.models", reason="needs mmdet (scripts/install_seg.sh)")
    from mmdet.registry import MODELS
    from mmengine.config import ConfigDict
    from mmengine.registry import init_default_scope

    from evaluators.detection.mm_configs import TINY_COCO_PROTOCOL, TINY_VOC_PROTOCOL, model_dict
    from evaluators.detection.mm_modules import register

    init_default_scope("mmdet")
    register()
    p = TINY_VOC_PROTOCOL if arch == "C4" else TINY_COCO_PROTOCOL
    return MODELS.build(ConfigDict(model_dict(p.detector, 3, p.inputs, sobel=sobel)))


@pytest.mark.parametrize("arch", ["C4", "FPN"])
def test_every_tensor_lands_in_the_real_mmdet_detector(backbone: Backbone, arch: str) -> None:
    model = _detector(arch)
    assert load_into_detector(model, to_mmdet(backbone, arch)) == 318
    state = model.state_dict()
    prefix = {"C4": "roi_head.shared_head.", "FPN": "backbone."}[arch]
    for key, value in backbone.state_dict.items():
        placed = prefix + key if key.startswith("layer4") else "backbone." + key
        assert torch.equal(state[placed], value), placed
    if arch == "C4":  # MMSelfSup's extra norm after res5 is the head's own, initialised as a fresh BN
        norm = model.roi_head.shared_head.norm
        assert norm.num_features == 2048 and torch.equal(norm.weight.detach(), torch.ones(2048))


@pytest.mark.parametrize("damage", ["missing", "unexpected", "shape"])
def test_a_wrong_key_fails_naming_it(backbone: Backbone, damage: str) -> None:
    model = _detector("C4")
    parts = to_mmdet(backbone, "C4")
    head = dict(parts["roi_head.shared_head"])
    if damage == "missing":
        del head["layer4.0.conv1.weight"]
    elif damage == "unexpected":
        head["layer4.9.conv1.weight"] = torch.zeros(1)
    else:
        head["layer4.0.conv1.weight"] = torch.zeros(3, 3)
    with pytest.raises(BackboneLoadError, match=r"roi_head\.shared_head: .*layer4\.[09]\.conv1\.weight"):
        load_into_detector(model, {**parts, "roi_head.shared_head": head})


def test_the_sobel_backbone_takes_the_2_channel_stem() -> None:
    torch.manual_seed(1)
    sobel = Backbone(state_dict=build_resnet50(sobel=True).state_dict(), sobel=True, sha256="3" * 64,
                     source_format="test")
    model = _detector("C4", sobel=True)
    assert load_into_detector(model, to_mmdet(sobel, "C4")) == 318
    assert tuple(model.backbone.conv1.weight.shape) == (64, 2, 7, 7)
    assert not any("sobel" in k for k in model.state_dict())  # the fixed filter is no state
    image = torch.rand(1, 3, 64, 64)
    expected = model.backbone.sobel(image)
    assert tuple(expected.shape) == (1, 2, 64, 64)
    (features,) = model.backbone(image)
    assert tuple(features.shape) == (1, 1024, 4, 4)
