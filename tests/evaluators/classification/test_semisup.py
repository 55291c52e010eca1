from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from dcbench.backbone import Backbone, build_resnet50, fixed_sobel_filter
from dcbench.config import config_hash, from_dict, replace
from dcbench.distributed import DistInfo
from dcbench.optim import set_epoch_lr
from dcbench.results import Measurement
from evaluators.classification import loop, semisup


@pytest.fixture(scope="module")
def backbone() -> Backbone:
    torch.manual_seed(0)
    state = build_resnet50().state_dict()
    return Backbone(state_dict=state, sobel=False, sha256="d" * 64, source_format="test")


def _rows(values: dict[str, tuple[float, float]]) -> list[Measurement]:
    return [Measurement("imagenet_1pct", metric, value, variant=variant)
            for variant, pair in values.items() for metric, value in zip(("top1", "top5"), pair, strict=True)]


def test_best_setting_picks_top1_then_top5_then_first() -> None:
    assert semisup.best_setting(_rows({"lr0.1_head1": (10.0, 30.0), "lr0.01_head10": (12.0, 20.0)})) == \
        "lr0.01_head10"
    assert semisup.best_setting(_rows({"lr0.1_head1": (12.0, 30.0), "lr0.01_head10": (12.0, 31.0)})) == \
        "lr0.01_head10"
    assert semisup.best_setting(_rows({"lr0.1_head1": (12.0, 30.0), "lr0.01_head10": (12.0, 30.0)})) == \
        "lr0.1_head1"
    with pytest.raises(ValueError, match="no top1"):
        semisup.best_setting([])


def test_reference_grid_and_values() -> None:
    one, ten = semisup.CONFIGS["semisup_1pct"], semisup.CONFIGS["semisup_10pct"]
    names = [semisup.variant_name(lr, m) for lr, m in semisup.grid(one)]
    assert names == ["lr0.1_head1", "lr0.1_head10", "lr0.1_head100", "lr0.01_head1", "lr0.01_head10",
                     "lr0.01_head100", "lr0.001_head1", "lr0.001_head10", "lr0.001_head100"]
    for cfg in (one, ten):
        schedule = (cfg.epochs, cfg.milestones, cfg.gamma, cfg.momentum, cfg.batch_size)
        assert schedule == (20, (12, 16), 0.2, 0.9, 256)
        assert cfg.deterministic and cfg.num_classes == 1000 and "MMSelfSup" in cfg.source
    assert (one.subset, one.dataset, one.weight_decay) == ("1percent", "imagenet_1pct", 5e-4)
    assert (ten.subset, ten.dataset, ten.weight_decay) == ("10percent", "imagenet_10pct", 1e-4)
    assert len(semisup.grid(semisup.TINY)) == 2 and semisup.TINY.subset == "1percent"
    assert set(semisup.TINY_CONFIGS) == {"semisup_1pct", "semisup_10pct"}


def test_head_lr_multiplier_and_weight_decay_on_everything(backbone) -> None:
    net = semisup.FineTuneNet(backbone, num_classes=7)
    groups = semisup._param_groups(net, 0.01, 100.0, 5e-4)
    assert [g["lr"] for g in groups] == [0.01, 1.0] and [g["weight_decay"] for g in groups] == [5e-4, 5e-4]
    assert groups[1]["params"] == [net.head.weight, net.head.bias]
    assert sum(len(g["params"]) for g in groups) == len(list(net.parameters()))
    opt = torch.optim.SGD(groups, lr=0.01, momentum=0.9)
    set_epoch_lr(opt, 16, (12, 16), 0.2)
    assert [round(g["lr"], 8) for g in opt.param_groups] == [0.0004, 0.04]
    assert net.head.weight.shape == (7, 2048) and torch.count_nonzero(net.head.bias) == 0


def test_sobel_checkpoints_fine_tune_through_the_sobel_filter() -> None:
    state = build_resnet50(sobel=True).state_dict()
    bb = Backbone(state_dict=state, sobel=True, sha256="e" * 64, source_format="test")
    net = semisup.FineTuneNet(bb, num_classes=3).eval()
    with torch.no_grad():
        assert net(torch.randn(2, 3, 32, 32)).shape == (2, 3)


def test_fine_tuning_uses_the_sobel_filter_the_checkpoint_carries() -> None:
    gen = torch.Generator().manual_seed(0)
    carried = {k: torch.randn(v.shape, generator=gen) for k, v in fixed_sobel_filter().items()}
    state = build_resnet50(sobel=True).state_dict()
    bb = Backbone(state_dict=state, sobel=True, sha256="e" * 64, source_format="test", sobel_filter=carried)
    net = semisup.FineTuneNet(bb, num_classes=3).eval()
    assert torch.equal(net.input_filter.sobel, carried["1.weight"])
    assert torch.equal(net.input_filter.gray_bias, carried["0.bias"])
    fixed = semisup.FineTuneNet(dataclasses.replace(bb, sobel_filter=None), num_classes=3)
    assert torch.equal(fixed.input_filter.sobel, fixed_sobel_filter()["1.weight"])
    assert not any(name.startswith("input_filter") for name, _ in net.named_parameters())  # never trained


def test_tiny_grid_runs_and_finished_settings_are_reused(
    backbone, cls_data_root, tmp_path, monkeypatch, make_ctx
) -> None:
    rows = semisup.run(backbone, cls_data_root, semisup.TINY, make_ctx(tmp_path))
    variants = [semisup.variant_name(lr, m) for lr, m in semisup.grid(semisup.TINY)]
    assert [(r.variant, r.metric) for r in rows] == [(v, m) for v in variants for m in ("top1", "top5")]
    assert {r.dataset for r in rows} == {"imagenet_1pct"}
    assert all(math.isfinite(r.value) and 0.0 <= r.value <= 100.0 for r in rows)
    for v in variants:
        saved = json.loads((tmp_path / "work" / v / semisup.RESULT_FILE).read_text())
        assert set(saved) == {"key", "top1", "top5"}
        assert not (tmp_path / "work" / v / semisup.STATE_FILE).exists()
    assert semisup.best_setting(rows) in variants

    trained: list[tuple[float, float]] = []

    def fake_fine_tune(backbone, config, num_classes, setting, data, ctx, state_path, key):
        trained.append(setting)
        return {"top1": 50.0, "top5": 90.0}, DistInfo(0, 1, torch.device("cpu"))

    monkeypatch.setattr(semisup, "fine_tune", fake_fine_tune)
    assert semisup.run(backbone, cls_data_root, semisup.TINY, make_ctx(tmp_path)) == rows
    assert trained == []
    wider = replace(semisup.TINY, head_lr_mults=(1.0, 10.0, 100.0))
    more = semisup.run(backbone, cls_data_root, wider, make_ctx(tmp_path))
    assert trained == [(0.01, 100.0)]  # only the new setting runs
    assert more[:4] == rows and more[4].variant == "lr0.01_head100" and more[4].value == 50.0


def test_an_unfinished_setting_resumes_after_its_last_epoch(
    backbone, cls_data_root, tmp_path, monkeypatch, make_ctx
) -> None:
    cfg = replace(semisup.TINY, lrs=(0.01,), head_lr_mults=(10.0,), epochs=2)
    calls: list[str] = []

    def no_training(model, loss_of, optimizer, loader, dist, progress, desc, accum_steps=1):
        calls.append(desc)
        if len(calls) == 2:
            raise KeyboardInterrupt("simulated interruption")
        return 0.0

    monkeypatch.setattr(loop, "train_epoch", no_training)
    with pytest.raises(KeyboardInterrupt):
        semisup.run(backbone, cls_data_root, cfg, make_ctx(tmp_path))
    assert (tmp_path / "work" / "lr0.01_head10" / semisup.STATE_FILE).exists()
    resumed: list[str] = []
    monkeypatch.setattr(loop, "train_epoch", lambda *args, **kw: resumed.append(args[-1]) or 0.0)
    rows = semisup.run(backbone, cls_data_root, cfg, make_ctx(tmp_path))
    assert resumed == ["lr0.01_head10 epoch 2/2"] and len(rows) == 2


def test_settings_per_model_reference_default() -> None:
    for cfg in semisup.CONFIGS.values():
        assert cfg.settings == "reference" and "r50_lr0_01_head1_sobel" in cfg.settings_source
        assert semisup.settings_for(cfg, sobel=True) == [(0.01, 1.0)]  # the only Sobel reference config
        assert semisup.settings_for(cfg, sobel=False) == semisup.grid(cfg) and len(semisup.grid(cfg)) == 9
        everything = replace(cfg, settings="grid")
        assert semisup.settings_for(everything, sobel=True) == semisup.grid(cfg)
        assert config_hash(everything) != config_hash(cfg)
    assert replace(semisup.TINY).settings == "reference"
    parsed = from_dict(semisup.Config, {"sobel_settings": [[0.1, 10]]})
    assert semisup.settings_for(parsed, sobel=True) == [(0.1, 10.0)]
    with pytest.raises(ValueError, match="settings must be one of"):
        semisup.validate_config(replace(semisup.TINY, settings="best"))


@pytest.mark.parametrize("sobel, settings, expected", [
    (True, "reference", [(0.01, 1.0)]),
    (False, "reference", [(0.01, 1.0), (0.01, 10.0)]),
    (True, "grid", [(0.01, 1.0), (0.01, 10.0)]),
])
def test_a_sobel_model_runs_one_setting_an_rgb_model_the_grid(
    cls_data_root, tmp_path, monkeypatch, make_ctx, sobel, settings, expected
) -> None:
    bb = Backbone(state_dict=build_resnet50(sobel=sobel).state_dict(), sobel=sobel, sha256="f" * 64,
                  source_format="test")
    trained: list[tuple[float, float]] = []

    def fake_fine_tune(backbone, config, num_classes, setting, data, ctx, state_path, key):
        trained.append(setting)
        return {"top1": 10.0 * len(trained), "top5": 50.0}, DistInfo(0, 1, torch.device("cpu"))

    monkeypatch.setattr(semisup, "fine_tune", fake_fine_tune)
    rows = semisup.run(bb, cls_data_root, replace(semisup.TINY, settings=settings), make_ctx(tmp_path))
    assert trained == expected
    assert [r.variant for r in rows if r.metric == "top1"] == [semisup.variant_name(*s) for s in expected]

