from __future__ import annotations

import json
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from adapters import SobelExportError
from adapters.detectron2 import (
    MODEL_BACKBONE,
    check_detectron2_load,
    detectron2_key,
    place_under,
    read_detectron2_pkl,
    to_detectron2,
    write_detectron2_pkl,
)
from adapters.mmseg import BackboneLoadError
from dcbench.backbone import Backbone, build_resnet50

# detectron2's parameter names and shapes for R50-C4 / R50-FPN (provenance: tests/data/README.md).
REFERENCE = Path(__file__).parents[1] / "data" / "detectron2_model_keys.json"
# Which entries of each reference model are the ResNet-50 backbone (everything else is heads/FPN).
BACKBONE_KEYS = {
    "faster_rcnn_R_50_C4": re.compile(r"(backbone\.(stem|res[2-4])|roi_heads\.res5)\."),
    "mask_rcnn_R_50_FPN": re.compile(r"backbone\.bottom_up\."),
}


@pytest.fixture(scope="module")
def reference() -> dict[str, dict[str, list[int]]]:
    return json.loads(REFERENCE.read_text())["models"]


@pytest.fixture(scope="module")
def backbone() -> Backbone:
    torch.manual_seed(0)
    state = build_resnet50().state_dict()
    return Backbone(state_dict=state, sobel=False, sha256="0" * 64, source_format="test")


def moco_converter_name(key: str) -> str:
    """The renaming of moco/detection/convert-pretrain-to-detectron2.py, applied as it is written there."""
    if "layer" not in key:
        key = "stem." + key
    for t in (1, 2, 3, 4):
        key = key.replace(f"layer{t}", f"res{t + 1}")
    for t in (1, 2, 3):
        key = key.replace(f"bn{t}", f"conv{t}.norm")
    return key.replace("downsample.0", "shortcut").replace("downsample.1", "shortcut.norm")


@pytest.mark.parametrize("model", sorted(BACKBONE_KEYS))
def test_exported_keys_are_exactly_detectron2_backbone_keys(
    reference: dict[str, dict[str, list[int]]], backbone: Backbone, model: str
) -> None:
    exported = to_detectron2(backbone)
    placed = place_under(exported, model)
    ours = {placed[k]: list(v.shape) for k, v in exported.items()}
    theirs = {k: v for k, v in reference[model].items() if BACKBONE_KEYS[model].match(k)}
    assert len(theirs) == 318  # num_batches_tracked included on both sides
    assert sorted(set(theirs) - set(ours)) == [] and sorted(set(ours) - set(theirs)) == []
    assert ours == theirs


def test_names_follow_moco_converter(backbone: Backbone) -> None:
    exported = to_detectron2(backbone)
    assert list(exported) == [moco_converter_name(k) for k in backbone.state_dict]
    assert detectron2_key("layer4.2.downsample.1.running_var") == "res5.2.shortcut.norm.running_var"
    assert detectron2_key("bn1.num_batches_tracked") == "stem.conv1.norm.num_batches_tracked"
    for bad in ("fc.weight", "layer5.0.conv1.weight", "layer1.0.bn4.weight", "conv1"):
        with pytest.raises(KeyError, match="not a torchvision ResNet-50 key"):
            detectron2_key(bad)


def test_values_are_numpy_copies_of_the_tensors(backbone: Backbone) -> None:
    exported = to_detectron2(backbone)
    for key, tensor in backbone.state_dict.items():
        array = exported[detectron2_key(key)]
        assert isinstance(array, np.ndarray) and array.dtype == tensor.numpy().dtype
        assert np.array_equal(array, tensor.numpy())


def test_write_pkl(backbone: Backbone, tmp_path: Path) -> None:
    path = tmp_path / "out" / "model.pkl"
    write_detectron2_pkl(backbone, path)
    with open(path, "rb") as fh:
        obj = pickle.load(fh)
    assert set(obj) == {"model", "__author__", "matching_heuristics", "sobel"} and obj["sobel"] is False
    assert obj["__author__"] == "deepcluster-bench" and obj["matching_heuristics"] is True
    expected = backbone.state_dict["layer2.1.conv2.weight"].numpy()
    assert np.array_equal(obj["model"]["res3.1.conv2.weight"], expected)
    assert [p.name for p in path.parent.iterdir()] == ["model.pkl"]  # no temporary left behind


@pytest.fixture(scope="module")
def sobel_backbone() -> Backbone:
    torch.manual_seed(1)
    return Backbone(state_dict=build_resnet50(sobel=True).state_dict(), sobel=True, sha256="1" * 64,
                    source_format="test")


def test_sobel_backbone_is_refused_by_default(sobel_backbone: Backbone, tmp_path: Path) -> None:
    with pytest.raises(SobelExportError, match="Sobel backbone .* to detectron2"):
        write_detectron2_pkl(sobel_backbone, tmp_path / "s.pkl")
    assert list(tmp_path.iterdir()) == []


def test_sobel_export_for_our_engine_keeps_the_2_channel_stem(
    sobel_backbone: Backbone, backbone: Backbone, tmp_path: Path
) -> None:
    rgb = to_detectron2(backbone)
    sobel = to_detectron2(sobel_backbone, allow_sobel=True)
    assert list(sobel) == list(rgb) and len(sobel) == 318
    assert {k: v.shape for k, v in sobel.items() if k != "stem.conv1.weight"} == {
        k: v.shape for k, v in rgb.items() if k != "stem.conv1.weight"}
    assert sobel["stem.conv1.weight"].shape == (64, 2, 7, 7)
    assert rgb["stem.conv1.weight"].shape == (64, 3, 7, 7)
    write_detectron2_pkl(sobel_backbone, tmp_path / "s.pkl", allow_sobel=True)
    back = read_detectron2_pkl(tmp_path / "s.pkl")
    assert back["sobel"] is True and back["matching_heuristics"] is True
    assert all(np.array_equal(back["model"][k], v) for k, v in sobel.items())


class _Crafted:
    def __reduce__(self):
        return (print, ("not an array",))


def test_reading_an_export_accepts_arrays_only(tmp_path: Path) -> None:
    path = tmp_path / "bad.pkl"
    path.write_bytes(pickle.dumps({"model": {"x": _Crafted()}}))
    with pytest.raises(pickle.UnpicklingError, match="builtins.print is not allowed"):
        read_detectron2_pkl(path)
    path.write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(ValueError, match="no 'model' dict"):
        read_detectron2_pkl(path)


HEAD_KEYS = {  # tensors of the detectron2 models that are not the backbone's (a few of each kind)
    "faster_rcnn_R_50_C4": ("roi_heads.res5.norm.weight", "roi_heads.box_predictor.cls_score.weight",
                            "proposal_generator.rpn_head.conv.weight"),
    "mask_rcnn_R_50_FPN": ("backbone.fpn_lateral2.weight", "roi_heads.mask_head.predictor.weight"),
}


def _loaded_state(exported: dict[str, np.ndarray], model: str) -> dict[str, torch.Tensor]:
    """A model state dict as detectron2 leaves it after loading `exported` (plus some head tensors)."""
    placed = place_under(exported, model)
    state = {name: torch.as_tensor(exported[key]).clone() for key, name in placed.items()}
    return {**state, **{k: torch.zeros(3) for k in HEAD_KEYS[model]}}


@pytest.mark.parametrize("model", sorted(MODEL_BACKBONE))
def test_strict_check_accepts_a_complete_load(backbone: Backbone, sobel_backbone: Backbone,
                                              model: str) -> None:
    for bb in (backbone, sobel_backbone):
        exported = to_detectron2(bb, allow_sobel=True)
        assert check_detectron2_load(_loaded_state(exported, model), exported, model) == 318


@pytest.mark.parametrize("damage", ["missing", "unexpected", "shape", "value"])
def test_strict_check_names_what_did_not_load(backbone: Backbone, damage: str) -> None:
    model = "faster_rcnn_R_50_C4"
    exported = to_detectron2(backbone)
    state = _loaded_state(exported, model)
    name = "roi_heads.res5.2.conv3.norm.running_mean"
    if damage == "missing":  # the model has a backbone tensor the checkpoint does not hold
        state["backbone.res4.5.conv4.weight"] = torch.zeros(1)
        name = "backbone.res4.5.conv4.weight"
    elif damage == "unexpected":  # an exported tensor found no home in the model
        del state[name]
    elif damage == "shape":
        state[name] = torch.zeros(7)
    else:  # heuristics matched the name but the value is not the checkpoint's
        state[name] = state[name] + 1.0
    with pytest.raises(BackboneLoadError, match=re.escape(name)):
        check_detectron2_load(state, exported, model)


def test_place_under_rejects_unknown_names() -> None:
    with pytest.raises(KeyError, match="unknown detectron2 model"):
        place_under(["stem.conv1.weight"], "retinanet_R_50_FPN")
    with pytest.raises(KeyError, match="not a detectron2 ResNet key"):
        place_under(["fc.weight"], "mask_rcnn_R_50_FPN")


@pytest.mark.parametrize("model", sorted(BACKBONE_KEYS))
def test_strict_check_selects_exactly_the_backbone_of_detectron2s_real_models(
    reference: dict[str, dict[str, list[int]]], backbone: Backbone, model: str
) -> None:
    exported = to_detectron2(backbone)
    selected = {k for k in reference[model] if MODEL_BACKBONE[model].match(k)}
    assert selected == set(place_under(exported, model).values())
    state = {k: torch.zeros(v) for k, v in reference[model].items()}  # every tensor of the real model
    state.update({name: torch.as_tensor(exported[key]) for key, name in place_under(exported, model).items()})
    assert check_detectron2_load(state, exported, model) == 318
