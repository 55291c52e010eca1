from __future__ import annotations

import json
import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from adapters import SobelExportError
from adapters.detectron2 import detectron2_key, place_under, to_detectron2, write_detectron2_pkl
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
    assert set(obj) == {"model", "__author__", "matching_heuristics"}
    assert obj["__author__"] == "deepcluster-bench" and obj["matching_heuristics"] is True
    expected = backbone.state_dict["layer2.1.conv2.weight"].numpy()
    assert np.array_equal(obj["model"]["res3.1.conv2.weight"], expected)
    assert [p.name for p in path.parent.iterdir()] == ["model.pkl"]  # no temporary left behind


def test_sobel_backbone_is_refused(tmp_path: Path) -> None:
    with torch.device("meta"):
        state = build_resnet50(sobel=True).state_dict()
    sobel = Backbone(state_dict=state, sobel=True, sha256="0" * 64, source_format="test")
    with pytest.raises(SobelExportError, match="Sobel backbone .* to detectron2"):
        write_detectron2_pkl(sobel, tmp_path / "s.pkl")
    assert list(tmp_path.iterdir()) == []


def test_place_under_rejects_unknown_names() -> None:
    with pytest.raises(KeyError, match="unknown detectron2 model"):
        place_under(["stem.conv1.weight"], "retinanet_R_50_FPN")
    with pytest.raises(KeyError, match="not a detectron2 ResNet key"):
        place_under(["fc.weight"], "mask_rcnn_R_50_FPN")
