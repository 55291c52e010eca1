from __future__ import annotations

import math

import pytest
import torch

from dcbench.backbone import Backbone, build_resnet50
from dcbench.config import config_hash, replace
from evaluators.classification import avgpool as linear_avgpool
from evaluators.classification import linear, loop


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
        (cfg.dataset, "avgpool", m) for m in ("top1", "top5", "top1_best_epoch", "best_epoch")]
    values = {r.metric: r.value for r in rows}
    assert all(math.isfinite(v) and 0.0 <= v <= 100.0 for v in values.values())
    assert values["top5"] >= values["top1"] and values["top1_best_epoch"] >= values["top1"]
    assert values["best_epoch"] in range(1, cfg.epochs + 1)


def test_last_and_best_epoch_are_distinct_rows(
    backbone, cls_data_root, tmp_path, monkeypatch, make_ctx
) -> None:
    """Val after every epoch (OpenSelfSup r50_last: best over epochs); the last epoch is kept apart."""
    cfg = replace(linear_avgpool.TINY, epochs=3, milestones=(2,))
    assert cfg.val_every_epoch and not linear.CONFIGS["linear_imagenet"].val_every_epoch
    per_epoch = iter([30.0, 55.0, 40.0])
    calls: list[int] = []

    def fake_evaluate(model, logits_of, names, loader, dist, progress, desc):
        calls.append(1)
        top1 = next(per_epoch)
        return {name: {"top1": top1, "top5": top1 + 10} for name in names}

    monkeypatch.setattr(loop, "evaluate", fake_evaluate)  # the shared loop's val, as fit_probe calls it
    rows = {r.metric: r.value for r in linear_avgpool.run(backbone, cls_data_root, cfg, make_ctx(tmp_path))}
    assert len(calls) == 3  # once per epoch; the last epoch's evaluation is not repeated
    assert (rows["top1"], rows["top5"]) == (40.0, 50.0)  # last epoch
    assert (rows["top1_best_epoch"], rows["best_epoch"]) == (55.0, 2.0)
    again = {r.metric: r.value for r in linear_avgpool.run(backbone, cls_data_root, cfg, make_ctx(tmp_path))}
    assert again == rows and len(calls) == 3  # finished state: reused


def test_best_epoch_takes_the_first_of_ties() -> None:
    history = [{"avgpool": {"top1": v, "top5": 0.0}} for v in (10.0, 20.0, 20.0, 5.0)]
    best = linear.with_best_epoch(history[-1], history)["avgpool"]
    assert (best["top1"], best["top1_best_epoch"], best["best_epoch"]) == (5.0, 20.0, 2.0)
    with pytest.raises(ValueError, match="no per-epoch"):
        linear.with_best_epoch(history[-1], [])


def test_only_the_avgpool_tap_is_accepted(backbone, tmp_path, make_ctx) -> None:
    cfg = replace(linear_avgpool.TINY, layers=("feature5",))
    with pytest.raises(ValueError, match="avgpool"):
        linear_avgpool.run(backbone, tmp_path, cfg, make_ctx(tmp_path))


def test_gradient_accumulation_trains_the_same_probe_as_the_whole_batch(
    backbone, cls_data_root, tmp_path, make_ctx
) -> None:
    """2 accumulation steps x batch 4 = 1 x batch 8 on the BatchNorm-free AvgPool probe (frozen trunk)."""
    whole = replace(linear_avgpool.TINY, batch_size=8, epochs=1, milestones=(1,))
    accum = replace(whole, accum_steps=2)
    assert config_hash(accum) == config_hash(whole)  # an execution detail: the same cell, the same state key
    runs = {}
    for name, cfg in (("whole", whole), ("accum", accum)):
        ctx = make_ctx(tmp_path / name)
        rows = linear_avgpool.run(backbone, cls_data_root, cfg, ctx)
        state = torch.load(ctx.work_dir / linear.STATE_FILE, map_location="cpu", weights_only=True)
        runs[name] = ({(r.metric): r.value for r in rows}, state["heads"])
    (rows_whole, heads_whole), (rows_accum, heads_accum) = runs["whole"], runs["accum"]
    assert heads_whole.keys() == heads_accum.keys()
    diff = max(float((heads_whole[k] - heads_accum[k]).abs().max()) for k in heads_whole)
    scale = max(float(v.abs().max()) for v in heads_whole.values())
    # float32 rounding only: ~6e-7 of the largest weight measured (lr 30 makes the weights large); a
    # wrong weighting of the micro-batches would be off by a factor, not by rounding
    assert diff <= 1e-5 * max(scale, 1.0)
    assert rows_accum == rows_whole
    with pytest.raises(ValueError, match=r"world size 1 x accum_steps 3 = 3"):
        linear_avgpool.run(backbone, cls_data_root, replace(whole, accum_steps=3), make_ctx(tmp_path / "bad"))
