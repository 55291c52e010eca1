from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from dcbench.backbone import LAYERS, TAP_SPECS, Backbone, build_resnet50
from dcbench.config import replace
from dcbench.datasets.common import DatasetMissingError
from evaluators.classification import linear, loop
from evaluators.classification.state import BackboneChangedError


@pytest.fixture(scope="module")
def backbone() -> Backbone:
    torch.manual_seed(0)
    state = build_resnet50().state_dict()
    return Backbone(state_dict=state, sobel=False, sha256="b" * 64, source_format="test")


def _tiny(name: str, **changes: object) -> linear.Config:
    return replace(linear.TINY_CONFIGS[name], **changes)


def test_heads_take_the_reference_feature_dims() -> None:
    heads = linear.ProbeHeads(LAYERS, num_classes=1000)
    dims = tuple(heads.fcs[name].in_features for name in LAYERS)
    assert dims == (9216, 9216, 8192, 9216, 8192) == tuple(TAP_SPECS[n].dim for n in LAYERS)
    for name in LAYERS:
        norm = heads.norms[name]
        assert isinstance(norm, torch.nn.BatchNorm2d) and not norm.affine
        assert norm.num_features == TAP_SPECS[name].channels and norm.momentum == 0.1
        assert heads.fcs[name].out_features == 1000
        assert torch.count_nonzero(heads.fcs[name].bias) == 0
    assert 0.009 < float(heads.fcs["feature5"].weight.detach().std()) < 0.011


def test_reference_configs() -> None:
    cfgs = linear.CONFIGS
    assert set(cfgs) == set(linear.TINY_CONFIGS) == {"linear_imagenet", "linear_inat18", "linear_places205"}
    expected = {"linear_imagenet": ("imagenet", 1000, 90, (30, 60, 90)),
                "linear_places205": ("places205", 205, 28, (7, 14, 21)),
                "linear_inat18": ("inat18", 8142, 84, (24, 48, 72))}
    for name, (dataset, classes, epochs, steps) in expected.items():
        cfg = cfgs[name]
        assert (cfg.dataset, cfg.num_classes, cfg.epochs, cfg.milestones) == (dataset, classes, epochs, steps)
        optim = (cfg.lr, cfg.momentum, cfg.weight_decay, cfg.nesterov, cfg.batch_size)
        assert optim == (0.01, 0.9, 1e-4, True, 256)
        assert cfg.norm_weight_decay == 0.0 and cfg.layers == LAYERS and "MMSelfSup" in cfg.source
        tiny = linear.TINY_CONFIGS[name]
        assert tiny.dataset == dataset and tiny.layers == LAYERS and tiny.crop_size <= 64
    assert linear.TINY is linear.TINY_CONFIGS["linear_imagenet"]


def test_multihead_resizes_bilinear_as_the_published_run_bicubic_on_request() -> None:
    from torchvision import transforms as T

    from dcbench.config import config_hash

    def modes(cfg: linear.Config) -> set[T.InterpolationMode]:
        train, val = linear.transforms(cfg)
        ops = [*train.transforms, *val.transforms]
        return {op.interpolation for op in ops if isinstance(op, (T.RandomResizedCrop, T.Resize))}

    for name, cfg in linear.CONFIGS.items():
        assert cfg.interpolation == "bilinear", name
        assert modes(cfg) == {T.InterpolationMode.BILINEAR}
    imagenet = linear.CONFIGS["linear_imagenet"]
    assert "OpenSelfSup" in imagenet.source and "bilinear" in imagenet.source and "1.x" in imagenet.source
    bicubic = replace(imagenet, interpolation="bicubic")
    assert modes(bicubic) == {T.InterpolationMode.BICUBIC} and config_hash(bicubic) != config_hash(imagenet)
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 40, 3), dtype=np.uint8))
    train_a, _ = linear.transforms(linear.TINY)
    train_b, _ = linear.transforms(replace(linear.TINY, interpolation="bicubic"))
    torch.manual_seed(0)
    a = train_a(image)
    torch.manual_seed(0)
    b = train_b(image)
    assert a.shape == b.shape and not torch.equal(a, b)  # the field changes the pixels


def test_norm_parameters_get_their_own_weight_decay() -> None:
    module = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.BatchNorm1d(4))
    groups = linear.param_groups(module, 0.1, 1e-4, 0.0)
    assert [len(g["params"]) for g in groups] == [2, 2]
    assert [g["weight_decay"] for g in groups] == [1e-4, 0.0]
    assert [(g["lr"], g["initial_lr"]) for g in groups] == [(0.1, 0.1), (0.1, 0.1)]
    no_affine = linear.ProbeHeads(("feature5",), 3)
    assert len(linear.param_groups(no_affine, 0.1, 1e-4, 0.0)) == 1  # affine-free BN: nothing to exempt


def test_training_catches_a_backbone_left_in_train_mode(
    backbone, cls_data_root, tmp_path, monkeypatch, make_ctx
) -> None:
    monkeypatch.setattr(linear, "freeze", lambda model: model.train())
    with pytest.raises(BackboneChangedError):
        linear.run(backbone, cls_data_root, _tiny("linear_inat18", epochs=1), make_ctx(tmp_path))


@pytest.mark.parametrize("name", ["linear_imagenet", "linear_inat18", "linear_places205"])
def test_tiny_run_gives_last_epoch_rows_per_layer(backbone, cls_data_root, tmp_path, name, make_ctx) -> None:
    cfg = linear.TINY_CONFIGS[name]
    rows = linear.run(backbone, cls_data_root, cfg, make_ctx(tmp_path))
    assert [(r.layer, r.metric) for r in rows] == [(n, m) for n in LAYERS for m in ("top1", "top5")]
    assert {r.dataset for r in rows} == {cfg.dataset}
    for r in rows:
        assert math.isfinite(r.value) and 0.0 <= r.value <= 100.0
    top = {(r.layer, r.metric): r.value for r in rows}
    assert all(top[(n, "top5")] >= top[(n, "top1")] for n in LAYERS)
    assert (tmp_path / "work" / linear.STATE_FILE).exists()


def test_resume_skips_finished_epochs_and_matches_a_straight_run(
    backbone, cls_data_root, tmp_path, monkeypatch, make_ctx
) -> None:
    cfg = _tiny("linear_inat18", layers=("feature1", "feature5"))
    straight = linear.run(backbone, cls_data_root, cfg, make_ctx(tmp_path / "straight"))
    real_epoch = loop.train_epoch
    calls: list[str] = []

    def crash_on_second(*args, **kwargs):
        calls.append(args[-1])
        if len(calls) == 2:
            raise KeyboardInterrupt("simulated interruption")
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(loop, "train_epoch", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        linear.run(backbone, cls_data_root, cfg, make_ctx(tmp_path / "resumed"))
    calls.clear()
    resumed = linear.run(backbone, cls_data_root, cfg, make_ctx(tmp_path / "resumed"))
    assert len(calls) == 1 and "epoch 2/2" in calls[0]  # epoch 1 was not trained again
    assert [r.value for r in resumed] == [r.value for r in straight]
    calls.clear()
    again = linear.run(backbone, cls_data_root, cfg, make_ctx(tmp_path / "resumed"))
    assert calls == [] and again == resumed  # finished: nothing is trained or evaluated again


def test_bad_config_and_missing_data(backbone, tmp_path, make_ctx) -> None:
    with pytest.raises(ValueError, match="layers"):
        linear.run(backbone, tmp_path, _tiny("linear_imagenet", layers=("feature9",)), make_ctx(tmp_path))
    with pytest.raises(ValueError, match="dataset"):
        linear.run(backbone, tmp_path, _tiny("linear_imagenet", dataset="mnist"), make_ctx(tmp_path))
    with pytest.raises(DatasetMissingError, match="imagenet"):
        linear.run(backbone, tmp_path, linear.TINY, make_ctx(tmp_path))


def test_reference_class_count_is_checked_against_the_data(
    backbone, cls_data_root, tmp_path, make_ctx
) -> None:
    with pytest.raises(ValueError, match="expects 8142 classes"):
        linear.run(backbone, cls_data_root, _tiny("linear_inat18", num_classes=8142), make_ctx(tmp_path))
