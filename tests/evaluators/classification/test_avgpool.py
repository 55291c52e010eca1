from __future__ import annotations

import math

import pytest
import torch

from dcbench.backbone import Backbone, build_resnet50
from dcbench.config import replace
from evaluators.classification import avgpool as linear_avgpool
from evaluators.classification import linear


@pytest.fixture(scope="module")
def backbone() -> Backbone:
    torch.manual_seed(0)
    state = build_resnet50(sobel=True).state_dict()
    return Backbone(state_dict=state, sobel=True, sha256="c" * 64, source_format="test")


def test_moco_reference_values() -> None:
    names = {"linear_avgpool_imagenet", "linear_avgpool_inat18", "linear_avgpool_places205"}
    assert set(linear_avgpool.CONFIGS) == set(linear_avgpool.TINY_CONFIGS) == names
    classes = {"imagenet": 1000, "inat18": 8142, "places205": 205}
    for name, cfg in linear_avgpool.CONFIGS.items():
        assert isinstance(cfg, linear_avgpool.Config) and cfg.layers == ("avgpool",)
        assert (cfg.lr, cfg.momentum, cfg.weight_decay, cfg.nesterov) == (30.0, 0.9, 0.0, False)
        assert (cfg.epochs, cfg.milestones, cfg.gamma, cfg.batch_size) == (100, (60, 80), 0.1, 256)
        assert cfg.train_transform == "rrc_flip" and (cfg.crop_size, cfg.resize_size) == (224, 256)
        assert cfg.num_classes == classes[cfg.dataset] and "main_lincls" in cfg.source
        tiny = linear_avgpool.TINY_CONFIGS[name]
        assert (tiny.lr, tiny.layers, tiny.dataset) == (30.0, ("avgpool",), cfg.dataset)
    assert linear_avgpool.TINY is linear_avgpool.TINY_CONFIGS["linear_avgpool_imagenet"]


def test_head_is_one_linear_on_the_2048_d_pool() -> None:
    heads = linear.ProbeHeads(("avgpool",), num_classes=205)
    assert isinstance(heads.norms["avgpool"], torch.nn.Identity)
    fc = heads.fcs["avgpool"]
    assert (fc.in_features, fc.out_features) == (2048, 205)
    assert [p.shape for p in heads.parameters()] == [(205, 2048), (205,)]
    out = heads({"avgpool": torch.randn(3, 2048)})
    assert out["avgpool"].shape == (3, 205)


@pytest.mark.parametrize("name", sorted(linear_avgpool.CONFIGS))
def test_tiny_run_gives_avgpool_rows(backbone, cls_data_root, tmp_path, name, make_ctx) -> None:
    cfg = linear_avgpool.TINY_CONFIGS[name]
    rows = linear_avgpool.run(backbone, cls_data_root, cfg, make_ctx(tmp_path))  # a Sobel backbone, too
    assert [(r.dataset, r.layer, r.metric) for r in rows] == [
        (cfg.dataset, "avgpool", "top1"), (cfg.dataset, "avgpool", "top5")]
    assert all(math.isfinite(r.value) and 0.0 <= r.value <= 100.0 for r in rows)
    assert rows[1].value >= rows[0].value


def test_only_the_avgpool_tap_is_accepted(backbone, tmp_path, make_ctx) -> None:
    cfg = replace(linear_avgpool.TINY, layers=("feature5",))
    with pytest.raises(ValueError, match="avgpool"):
        linear_avgpool.run(backbone, tmp_path, cfg, make_ctx(tmp_path))
