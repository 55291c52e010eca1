"""The segmentation runner: strict backbone loading, metric picking, and tiny end-to-end runs."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
from pathlib import Path

import pytest
import torch

from adapters.mmseg import BackboneLoadError, write_mmseg_checkpoint
from dcbench.backbone import Backbone, Sobel, build_resnet50
from dcbench.datasets.common import DatasetMissingError
from evaluators.segmentation import cityscapes, runner, voc12aug
from evaluators.segmentation.configs import model_dict


def test_checkpoint_loads_every_tensor(tmp_path: Path, random_backbone: Backbone) -> None:
    path = tmp_path / "b.pth"
    write_mmseg_checkpoint(random_backbone, path)
    module = build_resnet50()
    runner.load_backbone_checkpoint(module, path)
    loaded = module.state_dict()
    assert loaded.keys() == random_backbone.state_dict.keys()
    assert all(torch.equal(loaded[k], v) for k, v in random_backbone.state_dict.items())


@pytest.mark.parametrize("damage", ["missing", "renamed", "reshaped"])
def test_wrong_or_missing_key_fails_loudly(tmp_path: Path, random_backbone: Backbone, damage: str) -> None:
    state = dict(random_backbone.state_dict)
    key = "layer3.0.downsample.1.running_var"
    value = state.pop(key)
    if damage == "renamed":
        state["layer3.0.downsample.2.running_var"] = value
    elif damage == "reshaped":
        state[key] = value[:-1]
    path = tmp_path / "bad.pth"
    torch.save({"state_dict": state}, path)
    with pytest.raises(BackboneLoadError, match="layer3.0.downsample"):
        runner.load_backbone_checkpoint(build_resnet50(), path)


def test_not_a_checkpoint_dict_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "plain.pth"
    torch.save({"conv1.weight": torch.zeros(1)}, path)
    with pytest.raises(ValueError, match="state_dict"):
        runner.load_backbone_checkpoint(build_resnet50(), path)


def test_final_metrics_are_the_last_iterations() -> None:
    history = [(2, 0, {"mIoU": 1.0}), (4, 0, {"mIoU": 2.5000000953674316, "aAcc": 50.0})]  # float32 2.5
    assert runner.final_metrics(history, 4) == {"mIoU": 2.5, "aAcc": 50.0}
    with pytest.raises(RuntimeError, match="no validation ran at iteration 6"):
        runner.final_metrics(history, 6)
    with pytest.raises(RuntimeError, match="finite mIoU"):
        runner.final_metrics([(4, 0, {"mIoU": math.nan})], 4)


@pytest.mark.parametrize("module", [voc12aug, cityscapes])
def test_missing_dataset_names_the_layout(
    tmp_path: Path, random_backbone: Backbone, module, make_ctx
) -> None:
    with pytest.raises(DatasetMissingError, match="Expected layout"):
        module.run(random_backbone, tmp_path / "nothing", module.TINY, make_ctx(tmp_path))


def test_missing_mmseg_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mmseg.models", None)  # makes `import mmseg.models` fail
    with pytest.raises(runner.SegmentationSetupError, match="scripts/install_seg.sh"):
        runner.require_mmseg()


# ---- with mmsegmentation installed (scripts/install_seg.sh); CI installs it --------------------------

def _mmseg_parts(sobel: bool) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(data preprocessor, backbone with BN) built by mmseg from our TINY config."""
    pytest.importorskip("mmseg")
    runner.require_mmseg()
    from mmengine.registry import DefaultScope
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules

    import evaluators.segmentation.mm_backbone  # noqa: F401  (registers SobelResNet)

    register_all_modules(init_default_scope=False)
    cfg = model_dict(voc12aug.TINY.model, 21, (32, 32), sobel=sobel)
    cfg["backbone"]["norm_cfg"] = {"type": "BN", "requires_grad": True}
    # an mmdet Runner earlier in the same process leaves 'mmdet' as the current default scope
    with DefaultScope.overwrite_default_scope("mmseg"):
        return MODELS.build(cfg["data_preprocessor"]), MODELS.build(cfg["backbone"])


def test_torchvision_keys_fill_mmseg_resnet_exactly(tmp_path: Path, random_backbone: Backbone) -> None:
    _, backbone = _mmseg_parts(sobel=False)
    assert type(backbone).__name__ == "ResNet" and backbone.conv1.in_channels == 3
    path = tmp_path / "b.pth"
    write_mmseg_checkpoint(random_backbone, path)
    runner.load_backbone_checkpoint(backbone, path)
    state = backbone.state_dict()
    assert len(state) == len(random_backbone.state_dict) == 318
    assert all(torch.equal(state[k], v) for k, v in random_backbone.state_dict.items())


def test_bad_converted_checkpoint_fails_the_run(
    tmp_path: Path, seg_data_root: Path, random_backbone: Backbone, monkeypatch: pytest.MonkeyPatch, make_ctx,
) -> None:
    pytest.importorskip("mmseg")

    def write_without_stem(backbone: Backbone, path: Path, allow_sobel: bool = False) -> None:
        state = {k: v for k, v in backbone.state_dict.items() if not k.startswith("bn1.")}
        torch.save({"state_dict": state}, path)

    monkeypatch.setattr(runner, "write_mmseg_checkpoint", write_without_stem)
    with pytest.raises(BackboneLoadError, match="bn1.weight"):
        voc12aug.run(random_backbone, seg_data_root, voc12aug.TINY, make_ctx(tmp_path))


@pytest.mark.parametrize("module", [voc12aug, cityscapes])
def test_tiny_train_and_eval_gives_finite_miou(tmp_path: Path, seg_data_root: Path, random_backbone: Backbone,
                                              monkeypatch: pytest.MonkeyPatch, module, make_ctx) -> None:
    pytest.importorskip("mmseg")
    loads: list[str] = []
    real_load = runner.load_backbone_checkpoint

    def spy(target: torch.nn.Module, path: Path) -> None:
        real_load(target, path)
        loads.append(type(target).__name__)

    monkeypatch.setattr(runner, "load_backbone_checkpoint", spy)
    ctx = make_ctx(tmp_path)
    (measurement,) = module.run(random_backbone, seg_data_root, module.TINY, ctx)
    assert loads == ["ResNet"]  # mmseg's plain ResNet, loaded once, strictly
    assert measurement.dataset == module.SPEC.dataset and measurement.metric == "mIoU"
    assert math.isfinite(measurement.value) and 0.0 <= measurement.value <= 100.0
    assert not (ctx.work_dir / runner.CHECKPOINT_NAME).exists()  # the converted copy is removed
    saved = json.loads((ctx.work_dir / runner.METRICS_NAME).read_text())
    assert saved["mIoU"] == measurement.value
    assert dataclasses.asdict(measurement)["engine"] == "mmseg"


class Preempted(RuntimeError):
    """Stands for the job being killed between two iterations."""


def _train_log(ctx) -> list[dict]:
    return [json.loads(line) for line in (ctx.work_dir / runner.TRAIN_LOG_NAME).read_text().splitlines()]


def _torn_newest_checkpoint_is_skipped(real: Path, folder: Path, later: int) -> None:
    """A newest file torn by a kill mid-write is skipped, with a warning naming it, for the one before
    it; with nothing readable left the run starts again at iteration 0 (resume_point is None)."""
    from evaluators.mm_checkpoints import resume_point

    folder.mkdir()
    os.link(real, folder / real.name)  # the real checkpoint of the interrupted run, not a copy
    with real.open("rb") as fh:
        (folder / f"iter_{later}.pth").write_bytes(fh.read(real.stat().st_size // 2))
    with pytest.warns(RuntimeWarning, match=f"iter_{later}.pth"):
        assert resume_point(folder) == folder / real.name
    (folder / real.name).unlink()
    with pytest.warns(RuntimeWarning, match="truncated"):
        assert resume_point(folder) is None


def test_interrupted_run_resumes_from_its_last_checkpoint(
    tmp_path: Path, seg_data_root: Path, random_backbone: Backbone, monkeypatch: pytest.MonkeyPatch, make_ctx,
) -> None:
    pytest.importorskip("mmseg")
    from evaluators import mm_runtime
    from evaluators.mm_checkpoints import checkpoints

    config, ctx = voc12aug.TINY, make_ctx(tmp_path)
    interval, total = config.schedule.checkpoint_interval, config.schedule.max_iters
    assert 0 < interval < total
    mm_dir = ctx.work_dir / runner.MM_WORK_SUBDIR

    def killed(hook: object, mm_runner: object, batch_idx: int, data_batch: object = None) -> None:
        if mm_runner.iter == interval:  # type: ignore[attr-defined]  (the first checkpoint is on disk)
            raise Preempted(f"killed before iteration {interval + 1}")

    with monkeypatch.context() as patch:
        patch.setattr(mm_runtime.TrainProgress, "before_train_iter", killed)
        with pytest.raises(Preempted):
            voc12aug.run(random_backbone, seg_data_root, config, ctx)
    assert [p.name for p in checkpoints(mm_dir)] == [f"iter_{interval}.pth"]
    assert not (ctx.work_dir / runner.METRICS_NAME).exists()
    _torn_newest_checkpoint_is_skipped(mm_dir / f"iter_{interval}.pth", tmp_path / "torn", total)

    loads: list[str] = []
    real_load = runner.load_backbone_checkpoint
    monkeypatch.setattr(runner, "load_backbone_checkpoint",
                        lambda module, path: (loads.append(path.name), real_load(module, path)))
    (measurement,) = voc12aug.run(random_backbone, seg_data_root, config, ctx)
    first, second = _train_log(ctx)
    assert (first["first_iter"], first["iters_run"], first["resumed_from"]) == (0, interval, None)
    assert second["first_iter"] == interval > 0 and second["resumed_from"] == f"iter_{interval}.pth"
    assert second["iters_run"] == total - interval < total  # only the remaining iterations ran
    assert loads == []  # resumed: the checkpoint's trained weights, not the initial backbone
    assert math.isfinite(measurement.value) and 0.0 <= measurement.value <= 100.0
    assert json.loads((ctx.work_dir / runner.METRICS_NAME).read_text())["mIoU"] == measurement.value
    assert checkpoints(mm_dir) == [] and not (mm_dir / "last_checkpoint").exists()  # deleted after success


def test_sobel_resnet_loads_the_2_channel_stem_and_filters_the_normalised_image(
    tmp_path: Path, sobel_backbone: Backbone,
) -> None:
    preprocessor, backbone = _mmseg_parts(sobel=True)
    path = tmp_path / "s.pth"
    write_mmseg_checkpoint(sobel_backbone, path, allow_sobel=True)
    runner.load_backbone_checkpoint(backbone, path)
    assert type(backbone).__name__ == "SobelResNet"
    assert tuple(backbone.conv1.weight.shape) == (64, 2, 7, 7)
    assert torch.equal(backbone.conv1.weight, sobel_backbone.state_dict["conv1.weight"])
    assert backbone.state_dict().keys() == sobel_backbone.state_dict.keys()  # the filter adds no key
    assert list(backbone.sobel.parameters()) == []  # nothing for an optimiser to train
    torch.manual_seed(0)
    image_bgr = torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8)
    inputs = preprocessor({"inputs": [image_bgr]}, training=False)["inputs"]
    mean, std = torch.tensor([123.675, 116.28, 103.53]), torch.tensor([58.395, 57.12, 57.375])
    normalised = (image_bgr[[2, 1, 0]].float() - mean[:, None, None]) / std[:, None, None]
    assert torch.allclose(inputs[0], normalised)
    taps = sobel_backbone.build_taps().eval()  # what every frozen-feature evaluator runs
    r = taps.resnet
    backbone.eval()  # mmseg's ResNet.train returns None
    with torch.no_grad():
        res2 = backbone(inputs)[0]  # stem and res2 have no dilation: same maths as torchvision
        expected = r.layer1(r.maxpool(r.relu(r.bn1(r.conv1(taps.input_filter(normalised[None]))))))
    assert torch.allclose(res2, expected, atol=1e-5)


def test_sobel_resnet_refuses_3_input_channels() -> None:
    pytest.importorskip("mmseg")
    runner.require_mmseg()
    from evaluators.segmentation.mm_backbone import SobelResNet

    with pytest.raises(ValueError, match="in_channels=3"):
        SobelResNet(depth=50, in_channels=3)


def test_tiny_sobel_run_trains_conv1_and_keeps_the_filter_fixed(
    tmp_path: Path, seg_data_root: Path, sobel_backbone: Backbone, monkeypatch: pytest.MonkeyPatch, make_ctx,
) -> None:
    pytest.importorskip("mmseg")
    from evaluators import mm_runtime

    loaded: list[torch.nn.Module] = []
    stem_equal: list[bool] = []
    trained_ids: set[int] = set()
    real_load, real_before_train = runner.load_backbone_checkpoint, mm_runtime.LoadWeightsHook.before_train

    def spy_load(target: torch.nn.Module, path: Path) -> None:
        real_load(target, path)
        loaded.append(target)
        stem_equal.append(torch.equal(target.conv1.weight.cpu(), sobel_backbone.state_dict["conv1.weight"]))

    def spy_before_train(hook: mm_runtime.LoadWeightsHook, mm_runner: object) -> None:
        real_before_train(hook, mm_runner)
        groups = mm_runner.optim_wrapper.optimizer.param_groups  # type: ignore[attr-defined]
        trained_ids.update(id(p) for group in groups for p in group["params"])

    monkeypatch.setattr(runner, "load_backbone_checkpoint", spy_load)
    monkeypatch.setattr(mm_runtime.LoadWeightsHook, "before_train", spy_before_train)
    (measurement,) = voc12aug.run(sobel_backbone, seg_data_root, voc12aug.TINY, make_ctx(tmp_path))
    assert math.isfinite(measurement.value) and 0.0 <= measurement.value <= 100.0
    (model,) = loaded
    assert type(model).__name__ == "SobelResNet" and stem_equal == [True]
    assert model.conv1.weight.shape[1] == 2 and id(model.conv1.weight) in trained_ids
    assert not torch.equal(model.conv1.weight.detach().cpu(), sobel_backbone.state_dict["conv1.weight"])
    fixed = Sobel()
    assert all(id(b) not in trained_ids for b in model.sobel.buffers())
    assert torch.equal(model.sobel.gray.cpu(), fixed.gray)
    assert torch.equal(model.sobel.sobel.cpu(), fixed.sobel)


def test_distributed_runs_use_mmengines_launcher_with_the_total_batch_split() -> None:
    from evaluators.segmentation.runner import distributed_dicts

    cfg = {"train_dataloader": {"batch_size": 16, "num_workers": 0}, "model": {}}
    assert distributed_dicts(cfg, 1) == {**cfg, "launcher": "none"}
    four = distributed_dicts(cfg, 4)
    assert four["launcher"] == "pytorch" and four["train_dataloader"]["batch_size"] == 4
    assert cfg["train_dataloader"]["batch_size"] == 16  # not mutated
    with pytest.raises(ValueError, match="not divisible"):
        distributed_dicts(cfg, 3)
