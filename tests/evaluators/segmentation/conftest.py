"""Fixtures: the tiny VOC2012(+aug) and Cityscapes layouts (dcbench.tiny), a random Sobel backbone (the
RGB one is tests/conftest.py's `random_backbone`)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from dcbench.backbone import Backbone, build_resnet50


@pytest.fixture(scope="session")
def seg_data_root(tiny_tree: Path) -> Path:
    return tiny_tree  # the session's one full tree (tests/conftest.py): VOC2012(+aug) and Cityscapes


@pytest.fixture(scope="session")
def sobel_backbone() -> Backbone:
    torch.manual_seed(1)
    return Backbone(state_dict=build_resnet50(sobel=True).state_dict(), sobel=True, sha256="1" * 64,
                    source_format="test")
