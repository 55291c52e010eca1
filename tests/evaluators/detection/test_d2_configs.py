from __future__ import annotations

import dataclasses

import pytest

from dcbench.config import ConfigError, config_hash, from_dict, to_dict
from evaluators.detection import coco, voc0712
from evaluators.detection.d2_configs import D2COCOProtocol, D2VOCProtocol


def test_voc_reference_values_are_mocos() -> None:
    c = voc0712.Config().detectron2
    assert c.trials == 5
    assert c.train_sets == (("VOC2007", "trainval"), ("VOC2012", "trainval")) and c.test_set == (
        "VOC2007",
        "test",
    )
    assert c.inputs.min_size_train == tuple(range(480, 801, 32)) and c.inputs.min_size_test == 800
    assert c.inputs.max_size_train == 1333 and c.inputs.format == "RGB"
    assert c.inputs.pixel_mean == (123.675, 116.28, 103.53) and c.inputs.pixel_std == (58.395, 57.12, 57.375)
    s = c.solver
    assert (s.ims_per_batch, s.base_lr, s.max_iter, s.steps, s.warmup_iters) == (
        16,
        0.02,
        24000,
        (18000, 22000),
        100,
    )
    m = c.model
    assert (m.arch, m.norm, m.freeze_at, m.stride_in_1x1, m.res5_extra_norm, m.mask_on) == (
        "C4",
        "SyncBN",
        0,
        False,
        True,
        False,
    )
    assert (m.rpn.pre_nms_topk_test, m.rpn.post_nms_topk_test) == (6000, 1000)
    assert m.roi.box_pooler_resolution == 14 and c.num_classes == 20
    assert c.precise_bn.enabled and c.precise_bn.num_iter == 200
    assert "pascal_voc_R_50_C4_24k_moco" in c.source


def test_coco_reference_values_are_mask_rcnn_fpn_1x() -> None:
    c = coco.Config().detectron2
    s = c.solver
    assert (s.ims_per_batch, s.base_lr, s.max_iter, s.steps, s.warmup_iters) == (
        16,
        0.02,
        90000,
        (60000, 80000),
        1000,
    )
    m = c.model
    assert (m.arch, m.norm, m.fpn_norm, m.freeze_at, m.stride_in_1x1, m.mask_on) == (
        "FPN",
        "SyncBN",
        "SyncBN",
        0,
        False,
        True,
    )
    assert m.rpn.anchor_sizes == ((32,), (64,), (128,), (256,), (512,))
    assert (m.rpn.pre_nms_topk_train, m.rpn.post_nms_topk_train, m.rpn.pre_nms_topk_test) == (
        2000,
        1000,
        1000,
    )
    assert (
        m.roi.box_pooler_resolution,
        m.roi.box_num_fc,
        m.roi.mask_pooler_resolution,
        m.roi.mask_num_conv,
    ) == (7, 2, 14, 4)
    assert c.inputs.min_size_train == (640, 672, 704, 736, 768, 800)
    assert c.inputs.pixel_mean == (123.675, 116.28, 103.53) and c.precise_bn.enabled
    assert (c.train_split, c.test_split) == ("train", "val") and "coco_R_50_FPN_1x_moco" in c.source


@pytest.mark.parametrize("cls", [D2VOCProtocol, D2COCOProtocol, voc0712.Config, coco.Config])
def test_configs_round_trip_and_reject_unknown_keys(cls) -> None:
    cfg = cls()
    assert from_dict(cls, to_dict(cfg)) == cfg
    assert config_hash(from_dict(cls, to_dict(cfg))) == config_hash(cfg)
    with pytest.raises(ConfigError, match="bogus"):
        from_dict(cls, {"bogus": 1})
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.source = "x"  # type: ignore[misc]


def test_tiny_configs_keep_the_protocol_and_shrink_the_cost() -> None:
    for tiny, ref in ((voc0712.TINY.detectron2, voc0712.Config().detectron2),
                      (coco.TINY.detectron2, coco.Config().detectron2)):
        assert isinstance(tiny, type(ref))
        assert tiny.model.arch == ref.model.arch and tiny.model.mask_on == ref.model.mask_on
        assert tiny.inputs.pixel_mean == ref.inputs.pixel_mean and tiny.model.freeze_at == 0
        assert max(tiny.inputs.min_size_train) <= 96 and tiny.solver.max_iter <= 10
        assert tiny.trials >= 1
