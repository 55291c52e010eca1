from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from dcbench.backbone import LAYERS, TAP_SPECS, Backbone, build_resnet50
from dcbench.config import replace
from dcbench.datasets.common import DatasetMissingError
from evaluators.classification import linear
from evaluators.classification import train_utils as tu


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


def test_lr_schedule_steps_at_milestones() -> None:
    steps = (30, 60, 90)
    assert [tu.lr_factor(e, steps, 0.1) for e in (0, 29)] == [1.0, 1.0]
    assert math.isclose(tu.lr_factor(30, steps, 0.1), 0.1)
    assert math.isclose(tu.lr_factor(59, steps, 0.1), 0.1)
    assert math.isclose(tu.lr_factor(60, steps, 0.1), 0.01)
    assert math.isclose(tu.lr_factor(89, steps, 0.1), 0.01)  # the 90-epoch run never reaches step 90
    layer = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(tu.param_groups(layer, 0.01, 1e-4, 0.0), lr=0.01, momentum=0.9, nesterov=True)
    tu.set_epoch_lr(opt, 7, (7, 14, 21), 0.1)
    assert math.isclose(opt.param_groups[0]["lr"], 0.001)
    tu.set_epoch_lr(opt, 6, (7, 14, 21), 0.1)
    assert math.isclose(opt.param_groups[0]["lr"], 0.01)


def test_norm_parameters_get_their_own_weight_decay() -> None:
    module = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.BatchNorm1d(4))
    groups = tu.param_groups(module, 0.1, 1e-4, 0.0)
    assert [len(g["params"]) for g in groups] == [2, 2]
    assert [g["weight_decay"] for g in groups] == [1e-4, 0.0]
    no_affine = linear.ProbeHeads(("feature5",), 3)
    assert len(tu.param_groups(no_affine, 0.1, 1e-4, 0.0)) == 1  # affine-free BN: nothing to exempt


def test_frozen_check_catches_a_changed_backbone(backbone: Backbone) -> None:
    taps = tu.freeze(backbone.build_taps())
    tu.assert_backbone_unchanged(taps.resnet, backbone.state_dict)
    with torch.no_grad():
        taps.resnet.layer4[2].conv3.weight[0, 0, 0, 0] += 1e-6
    with pytest.raises(tu.BackboneChangedError, match=r"layer4\.2\.conv3\.weight"):
        tu.assert_backbone_unchanged(taps.resnet, backbone.state_dict)
    moving = backbone.build_taps().train()  # BN statistics move in train mode, even without gradients
    with torch.no_grad():
        moving(torch.randn(2, 3, 32, 32), ("feature2",))
    with pytest.raises(tu.BackboneChangedError, match="running_"):
        tu.assert_backbone_unchanged(moving.resnet, backbone.state_dict)


def test_training_catches_a_backbone_left_in_train_mode(
    backbone, cls_data_root, tmp_path, monkeypatch, make_ctx
) -> None:
    monkeypatch.setattr(tu, "freeze", lambda model: model.train())
    with pytest.raises(tu.BackboneChangedError):
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
    real_epoch = linear._train_epoch
    calls: list[str] = []

    def crash_on_second(*args, **kwargs):
        calls.append(args[-1])
        if len(calls) == 2:
            raise KeyboardInterrupt("simulated interruption")
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(linear, "_train_epoch", crash_on_second)
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


def test_val_shards_cover_every_sample_once() -> None:
    data = torch.utils.data.TensorDataset(torch.arange(10))
    seen = []
    for rank in range(3):
        dist = tu.DistInfo(rank=rank, world_size=3, device=torch.device("cpu"))
        seen += [int(x) for (batch,) in tu.val_loader(data, 4, dist, 0) for x in batch]
    assert sorted(seen) == list(range(10))
    with pytest.raises(ValueError, match="divisible"):
        tu.per_rank_batch(256, tu.DistInfo(0, 3, torch.device("cpu")))


def test_topk_counts_and_transforms() -> None:
    logits = torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.1, 0.05], [0.2, 0.3, 0.5]])
    target = torch.tensor([1, 1, 0])
    assert tu.topk_correct(logits, target).tolist() == [1.0, 3.0]  # top-5 caps at 3 classes
    image = Image.new("RGB", (50, 40), (120, 60, 30))
    for kind in tu.TRAIN_TRANSFORMS:
        assert tu.train_transform(kind, 32, 36, "bicubic")(image).shape == (3, 32, 32)
    assert tu.eval_transform(32, 36, "bilinear")(image).shape == (3, 32, 32)
    with pytest.raises(ValueError, match="train transform"):
        tu.train_transform("mixup", 32, 36, "bilinear")
