"""The configs carry mmsegmentation's reference values (checked on our dicts; no mmseg needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from dcbench.config import ConfigError, config_hash, from_dict, replace, to_dict
from evaluators.segmentation import cityscapes, voc12aug
from evaluators.segmentation.configs import (
    BACKBONE_TYPE,
    MAX_KEEP_CHECKPOINTS,
    SOBEL_BACKBONE_TYPE,
    mmseg_config,
)


def _cfg(module, config, tmp_path: Path, sobel: bool = False) -> dict:
    return mmseg_config(config, module.SPEC, tmp_path / "data", tmp_path / "work", seed=3, sobel=sobel)


def test_fcn_r50_d8_model_matches_mmseg(tmp_path: Path) -> None:
    model = _cfg(voc12aug, voc12aug.Config(), tmp_path)["model"]
    backbone = model["backbone"]
    assert BACKBONE_TYPE == "ResNet" and backbone["type"] == "ResNet"  # never ResNetV1c (deep stem)
    assert backbone["depth"] == 50 and backbone["in_channels"] == 3
    assert backbone["dilations"] == (1, 1, 2, 4) and backbone["strides"] == (1, 2, 1, 1)
    assert backbone["contract_dilation"] is True and backbone["style"] == "pytorch"
    assert backbone["norm_cfg"] == {"type": "SyncBN", "requires_grad": True}
    assert backbone["norm_eval"] is False
    assert "init_cfg" not in backbone  # loaded strictly by the runner, not by mmengine's lenient init
    head, aux = model["decode_head"], model["auxiliary_head"]
    assert (head["type"], head["in_channels"], head["in_index"]) == ("FCNHead", 2048, 3)
    assert head["channels"] == 512
    assert head["num_convs"] == 2 and head["concat_input"] is True and head["dropout_ratio"] == 0.1
    assert head["loss_decode"]["loss_weight"] == 1.0 and head["num_classes"] == 21
    assert (aux["type"], aux["in_channels"], aux["in_index"], aux["channels"]) == ("FCNHead", 1024, 2, 256)
    assert aux["num_convs"] == 1 and aux["concat_input"] is False and aux["dropout_ratio"] == 0.1
    assert aux["loss_decode"]["loss_weight"] == 0.4 and aux["num_classes"] == 21
    pre = model["data_preprocessor"]
    assert pre["mean"] == [123.675, 116.28, 103.53] and pre["std"] == [58.395, 57.12, 57.375]
    assert pre["bgr_to_rgb"] is True and pre["seg_pad_val"] == 255 and pre["size"] == (512, 512)
    assert model["test_cfg"] == {"mode": "whole"}
    assert head["align_corners"] is False and aux["align_corners"] is False


@pytest.mark.parametrize("module", [voc12aug, cityscapes])
def test_sobel_backbone_changes_only_the_stem(tmp_path: Path, module) -> None:
    rgb = _cfg(module, module.Config(), tmp_path)
    sobel = _cfg(module, module.Config(), tmp_path, sobel=True)
    assert (sobel["model"]["backbone"]["type"], sobel["model"]["backbone"]["in_channels"]) == (
        SOBEL_BACKBONE_TYPE, 2)
    assert (rgb["model"]["backbone"]["type"], rgb["model"]["backbone"]["in_channels"]) == ("ResNet", 3)
    drop = ("type", "in_channels")
    assert {k: v for k, v in sobel["model"]["backbone"].items() if k not in drop} == {
        k: v for k, v in rgb["model"]["backbone"].items() if k not in drop}
    assert {**sobel, "model": None} == {**rgb, "model": None}
    assert {k: v for k, v in sobel["model"].items() if k != "backbone"} == {
        k: v for k, v in rgb["model"].items() if k != "backbone"}


def test_schedules_match_mmseg(tmp_path: Path) -> None:
    for module, iters, interval in ((voc12aug, 20000, 2000), (cityscapes, 40000, 4000)):
        cfg = _cfg(module, module.Config(), tmp_path)
        assert cfg["optim_wrapper"]["optimizer"] == {"type": "SGD", "lr": 0.01, "momentum": 0.9,
                                                     "weight_decay": 0.0005}
        assert cfg["param_scheduler"] == [{"type": "PolyLR", "eta_min": 1e-4, "power": 0.9, "begin": 0,
                                           "end": iters, "by_epoch": False}]
        assert cfg["train_cfg"] == {"type": "IterBasedTrainLoop", "max_iters": iters,
                                    "val_interval": interval}


def test_voc12aug_data_matches_mmseg(tmp_path: Path) -> None:
    config = voc12aug.Config()
    assert config.pipeline.total_batch == 16  # 4 GPUs x 4 images, in one process
    cfg = _cfg(voc12aug, config, tmp_path)
    train = cfg["train_dataloader"]
    assert train["batch_size"] == 16 and train["sampler"]["type"] == "InfiniteSampler"
    sets = train["dataset"]["datasets"]
    assert train["dataset"]["type"] == "ConcatDataset" and len(sets) == 2
    assert {(s["data_prefix"]["seg_map_path"], s["ann_file"]) for s in sets} == {
        ("SegmentationClass", "ImageSets/Segmentation/train.txt"),
        ("SegmentationClassAug", "ImageSets/Segmentation/aug.txt")}
    assert sets[0]["data_root"] == str(tmp_path / "data")
    steps = {s["type"]: s for s in sets[0]["pipeline"]}
    assert steps["RandomResize"]["scale"] == (2048, 512)
    assert steps["RandomResize"]["ratio_range"] == (0.5, 2.0)
    assert steps["RandomCrop"] == {"type": "RandomCrop", "crop_size": (512, 512), "cat_max_ratio": 0.75}
    assert steps["RandomFlip"]["prob"] == 0.5 and "PhotoMetricDistortion" in steps
    assert steps["Pad"]["size"] == (512, 512)
    val = cfg["val_dataloader"]
    assert val["batch_size"] == 1 and val["dataset"]["ann_file"] == "ImageSets/Segmentation/val.txt"
    assert val["dataset"]["pipeline"][1] == {"type": "Resize", "scale": (2048, 512), "keep_ratio": True}
    assert cfg["val_evaluator"] == {"type": "IoUMetric", "iou_metrics": ["mIoU"]}


def test_cityscapes_matches_mmseg(tmp_path: Path) -> None:
    config = cityscapes.Config()
    assert config.pipeline.total_batch == 8  # 4 GPUs x 2 images
    cfg = _cfg(cityscapes, config, tmp_path)
    model = cfg["model"]
    assert model["test_cfg"] == {"mode": "slide", "crop_size": (769, 769), "stride": (513, 513)}
    assert model["decode_head"]["align_corners"] is True and model["auxiliary_head"]["align_corners"] is True
    assert model["decode_head"]["num_classes"] == 19 and model["data_preprocessor"]["size"] == (769, 769)
    train = cfg["train_dataloader"]
    assert train["batch_size"] == 8 and train["dataset"]["type"] == "CityscapesDataset"
    assert train["dataset"]["data_prefix"] == {"img_path": "leftImg8bit/train",
                                               "seg_map_path": "gtFine/train"}
    steps = {s["type"]: s for s in train["dataset"]["pipeline"]}
    assert steps["RandomResize"]["scale"] == (2049, 1025) and steps["RandomCrop"]["crop_size"] == (769, 769)
    assert "Pad" not in steps
    assert cfg["val_dataloader"]["dataset"]["data_prefix"]["img_path"] == "leftImg8bit/val"


def test_runtime_checkpoints_at_the_schedules_interval_and_resumes_only_when_the_runner_says(
    tmp_path: Path,
) -> None:
    cfg = _cfg(voc12aug, voc12aug.TINY, tmp_path)
    hook = cfg["default_hooks"]["checkpoint"]
    assert hook["type"] == "CheckpointHook" and hook["by_epoch"] is False
    assert hook["interval"] == voc12aug.TINY.schedule.checkpoint_interval < voc12aug.TINY.schedule.max_iters
    assert hook["max_keep_ckpts"] == MAX_KEEP_CHECKPOINTS
    assert cfg["resume"] is False and cfg["load_from"] is None  # the runner sets them from what is on disk
    reference = {m: _cfg(m, m.Config(), tmp_path)["default_hooks"]["checkpoint"]["interval"]
                 for m in (voc12aug, cityscapes)}
    assert reference == {voc12aug: 2000, cityscapes: 4000}  # mmseg schedule_20k.py / schedule_40k.py
    assert cfg["randomness"]["seed"] == 3 and cfg["work_dir"] == str(tmp_path / "work")
    assert cfg["train_dataloader"]["persistent_workers"] is False  # num_workers 0


@pytest.mark.parametrize("module", [voc12aug, cityscapes])
def test_configs_round_trip_and_reject_unknown_keys(module) -> None:
    for config in (module.Config(), module.TINY):
        assert from_dict(module.Config, to_dict(config)) == config
    assert config_hash(module.Config()) != config_hash(module.TINY)
    # where a run can resume is an execution detail: not part of the hash (the same finished cell)
    other = replace(module.TINY, schedule=replace(module.TINY.schedule, checkpoint_interval=1))
    assert config_hash(other) == config_hash(module.TINY) and other != module.TINY
    with pytest.raises(ConfigError, match="crop"):
        from_dict(module.Config, {"pipeline": {"crop": [64, 64]}})


@pytest.mark.parametrize("module", [voc12aug, cityscapes])
def test_tiny_variant_is_ci_sized(module) -> None:
    tiny = module.TINY
    assert tiny.schedule.max_iters <= 8 and tiny.schedule.val_interval == tiny.schedule.max_iters
    assert max(tiny.pipeline.crop_size) <= 64 and tiny.pipeline.total_batch <= 2
    assert tiny.model.dilations == module.Config().model.dilations  # same architecture, smaller data
