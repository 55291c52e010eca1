from __future__ import annotations

import pytest
import torch

from dcbench.backbone import Backbone, build_resnet50
from dcbench.distributed import DistInfo
from evaluators.classification.state import (
    BackboneChangedError,
    assert_backbone_unchanged,
    freeze,
    load_state,
    save_state,
)


@pytest.fixture(scope="module")
def backbone() -> Backbone:
    torch.manual_seed(0)
    state = build_resnet50().state_dict()
    return Backbone(state_dict=state, sobel=False, sha256="b" * 64, source_format="test")


def test_frozen_check_catches_a_changed_backbone(backbone: Backbone) -> None:
    taps = freeze(backbone.build_taps())
    assert_backbone_unchanged(taps.resnet, backbone.state_dict)
    with torch.no_grad():
        taps.resnet.layer4[2].conv3.weight[0, 0, 0, 0] += 1e-6
    with pytest.raises(BackboneChangedError, match=r"layer4\.2\.conv3\.weight"):
        assert_backbone_unchanged(taps.resnet, backbone.state_dict)
    moving = backbone.build_taps().train()  # BN statistics move in train mode, even without gradients
    with torch.no_grad():
        moving(torch.randn(2, 3, 32, 32), ("feature2",))
    with pytest.raises(BackboneChangedError, match="running_"):
        assert_backbone_unchanged(moving.resnet, backbone.state_dict)


def test_state_is_reused_only_for_its_key(tmp_path) -> None:
    path = tmp_path / "state.pth"
    assert load_state(path, "k1") is None
    save_state(path, {"key": "k1", "epoch": 3}, DistInfo(0, 1, torch.device("cpu")))
    assert load_state(path, "k1") == {"key": "k1", "epoch": 3}
    assert load_state(path, "k2") is None
