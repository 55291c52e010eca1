"""The mmdet protocol against mmdetection's own config files (installed with mmdet) plus the
overrides MMSelfSup 1.x's benchmark configs write on top of them (facts listed here, with the file)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dcbench.config import ConfigError, config_hash, from_dict, to_dict
from evaluators.detection import coco, voc0712
from evaluators.detection.mm_configs import (
    COCO_PROTOCOL,
    SOBEL_BACKBONE,
    TINY_COCO_PROTOCOL,
    TINY_VOC_PROTOCOL,
    VOC_PROTOCOL,
    MMDetProtocol,
    model_dict,
    schedule_dicts,
)

SYNC_BN = {"type": "SyncBN", "requires_grad": True}
RGB = {"mean": [123.675, 116.28, 103.53], "std": [58.395, 57.12, 57.375], "bgr_to_rgb": True}


def _mmdet_config(relative: str) -> dict:
    pytest.importorskip("mmdet", reason="mmdet's config files come with mmdet (scripts/install_seg.sh)")
    import mmdet
    from mmengine.config import Config

    path = Path(mmdet.__file__).parent / ".mim" / "configs" / relative
    return Config.fromfile(str(path)).to_dict()


def _plain(value: object) -> object:
    """Tuples -> lists, `init_cfg` dropped (we load our own checkpoint instead of a URL)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if k != "init_cfg"}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def test_c4_model_is_mmdets_caffe_c4_with_mmselfsups_overrides() -> None:
    theirs = _mmdet_config("pascal_voc/faster-rcnn_r50-caffe-c4_ms-18k_voc0712.py")["model"]
    # MMSelfSup 1.x voc0712/faster-rcnn_r50-c4_ms-24k_voc0712.py:
    theirs["backbone"].update(frozen_stages=-1, norm_cfg=SYNC_BN, norm_eval=False, style="pytorch")
    theirs["roi_head"]["shared_head"].update(type="ResLayerExtraNorm", norm_cfg=SYNC_BN, norm_eval=False,
                                             style="pytorch")
    theirs["data_preprocessor"].update(RGB)  # its top-level RGB preprocessor (see mm_configs' docstring)
    ours = model_dict(VOC_PROTOCOL.detector, 20, VOC_PROTOCOL.inputs)
    assert _plain(ours) == _plain(theirs)


def test_fpn_model_is_mmdets_mask_rcnn_1x_with_mmselfsups_overrides() -> None:
    theirs = _mmdet_config("mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py")["model"]
    # MMSelfSup 1.x coco/mask-rcnn_r50_fpn_ms-1x_coco.py:
    theirs["backbone"].update(frozen_stages=-1, norm_cfg=SYNC_BN, norm_eval=False)
    theirs["neck"]["norm_cfg"] = SYNC_BN
    theirs["roi_head"]["bbox_head"].update(type="Shared4Conv1FCBBoxHead", norm_cfg=SYNC_BN)
    theirs["roi_head"]["mask_head"]["norm_cfg"] = SYNC_BN
    for head in ("bbox_head", "mask_head"):
        theirs["roi_head"][head]["num_classes"] = 80
    ours = model_dict(COCO_PROTOCOL.detector, 80, COCO_PROTOCOL.inputs)
    assert _plain(ours) == _plain(theirs)


def test_schedules_are_24k_iterations_and_the_1x_epochs() -> None:
    voc = schedule_dicts(VOC_PROTOCOL.schedule)
    assert voc["train_cfg"] == {"type": "IterBasedTrainLoop", "max_iters": 24000, "val_interval": 2000}
    assert [s["type"] for s in voc["param_scheduler"]] == ["LinearLR", "MultiStepLR"]
    warmup, steps = voc["param_scheduler"]
    assert warmup["end"] == 100 and steps["milestones"] == [18000, 22000]
    theirs = _mmdet_config("mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py")
    ours = schedule_dicts(COCO_PROTOCOL.schedule)
    assert _plain(ours["param_scheduler"]) == _plain(theirs["param_scheduler"])
    assert ours["train_cfg"] == theirs["train_cfg"]
    assert _plain(ours["optim_wrapper"]) == _plain(theirs["optim_wrapper"])
    assert VOC_PROTOCOL.inputs.total_batch == COCO_PROTOCOL.inputs.total_batch == 16


def test_multi_scale_training_scales() -> None:
    assert [s for _, s in VOC_PROTOCOL.inputs.train_scales] == list(range(480, 801, 32))
    assert [s for _, s in COCO_PROTOCOL.inputs.train_scales] == [640, 672, 704, 736, 768, 800]
    assert {w for w, _ in VOC_PROTOCOL.inputs.train_scales} == {1333}


def test_the_sobel_model_swaps_only_the_backbone_type_and_its_input_channels() -> None:
    plain, sobel = (model_dict(VOC_PROTOCOL.detector, 20, VOC_PROTOCOL.inputs, sobel=s)
                    for s in (False, True))
    assert sobel["backbone"].pop("type") == SOBEL_BACKBONE and sobel["backbone"].pop("in_channels") == 2
    plain["backbone"].pop("type")
    assert sobel == plain


def test_tiny_configs_keep_the_models_and_shrink_the_cost() -> None:
    for tiny, ref in ((TINY_VOC_PROTOCOL, VOC_PROTOCOL), (TINY_COCO_PROTOCOL, COCO_PROTOCOL)):
        t, r = tiny.detector, ref.detector
        assert (t.arch, t.bbox_head, t.mask_on, t.extra_norm, t.norm_type) == (
            r.arch, r.bbox_head, r.mask_on, r.extra_norm, r.norm_type)
        tiny_rois = (t.proposals.max_train, t.proposals.max_test, t.rois.sampled, t.rois.score_thr)
        assert tiny_rois == (100, 10, 8, 0.0)
        assert tiny.schedule.length <= 10 and not tiny.schedule.by_epoch
        assert tiny.inputs.mean == ref.inputs.mean
    assert voc0712.TINY.mmdet == TINY_VOC_PROTOCOL and coco.TINY.mmdet == TINY_COCO_PROTOCOL


@pytest.mark.parametrize("cls", [MMDetProtocol, voc0712.Config, coco.Config])
def test_configs_round_trip_and_reject_unknown_keys(cls) -> None:
    cfg = cls()
    assert from_dict(cls, json.loads(json.dumps(to_dict(cfg)))) == cfg
    assert config_hash(from_dict(cls, to_dict(cfg))) == config_hash(cfg)
    with pytest.raises(ConfigError, match="bogus"):
        from_dict(cls, {"bogus": 1})


def test_a_changed_protocol_value_changes_the_hash() -> None:
    from dcbench.config import replace

    changed = replace(voc0712.Config(), mmdet=replace(VOC_PROTOCOL, trials=2))
    assert config_hash(changed) != config_hash(voc0712.Config())
