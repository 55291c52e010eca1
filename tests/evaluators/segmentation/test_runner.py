"""The segmentation runner: strict backbone loading, metric picking, and tiny end-to-end runs."""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from pathlib import Path

import pytest
import torch

from adapters.load import SobelExportError
from adapters.mmseg import BackboneLoadError, write_mmseg_checkpoint
from dcbench.backbone import Backbone, build_resnet50
from dcbench.context import RunContext
from dcbench.datasets.common import DatasetMissingError
from evaluators.segmentation import cityscapes, runner, voc12aug
from evaluators.segmentation.configs import model_dict


def _ctx(tmp_path: Path) -> RunContext:
    return RunContext(work_dir=tmp_path / "work", cache_dir=tmp_path / "cache", device=torch.device("cpu"),
                      seed=0, num_workers=0, progress=False)


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
    history = [(2, {"mIoU": 1.0}), (4, {"mIoU": 2.5, "aAcc": 50.0})]
    assert runner.final_metrics(history, 4) == {"mIoU": 2.5, "aAcc": 50.0}
    with pytest.raises(RuntimeError, match="no validation ran at iteration 6"):
        runner.final_metrics(history, 6)
    with pytest.raises(RuntimeError, match="finite mIoU"):
        runner.final_metrics([(4, {"mIoU": math.nan})], 4)


@pytest.mark.parametrize("module", [voc12aug, cityscapes])
def test_missing_dataset_names_the_layout(tmp_path: Path, random_backbone: Backbone, module) -> None:
    with pytest.raises(DatasetMissingError, match="Expected layout"):
        module.run(random_backbone, tmp_path / "nothing", module.TINY, _ctx(tmp_path))


def test_sobel_backbone_is_refused(tmp_path: Path, seg_data_root: Path) -> None:
    sobel = Backbone(state_dict=build_resnet50(sobel=True).state_dict(), sobel=True, sha256="1" * 64,
                     source_format="test")
    with pytest.raises(SobelExportError, match="mmsegmentation"):
        voc12aug.run(sobel, seg_data_root, voc12aug.TINY, _ctx(tmp_path))


def test_missing_mmseg_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mmseg.models", None)  # makes `import mmseg.models` fail
    with pytest.raises(runner.SegmentationSetupError, match="scripts/install_seg.sh"):
        runner.require_mmseg()


# ---- with mmsegmentation installed (scripts/install_seg.sh); CI installs it --------------------------

def test_torchvision_keys_fill_mmseg_resnet_exactly(tmp_path: Path, random_backbone: Backbone) -> None:
    pytest.importorskip("mmseg")
    runner.require_mmseg()
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules

    register_all_modules(init_default_scope=False)
    cfg = model_dict(voc12aug.TINY.model, 21, (64, 64))
    cfg["backbone"]["norm_cfg"] = {"type": "BN", "requires_grad": True}
    backbone = MODELS.build(cfg["backbone"])
    path = tmp_path / "b.pth"
    write_mmseg_checkpoint(random_backbone, path)
    runner.load_backbone_checkpoint(backbone, path)
    state = backbone.state_dict()
    assert len(state) == len(random_backbone.state_dict) == 318
    assert all(torch.equal(state[k], v) for k, v in random_backbone.state_dict.items())


def test_bad_converted_checkpoint_fails_the_run(
    tmp_path: Path, seg_data_root: Path, random_backbone: Backbone, monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("mmseg")

    def write_without_stem(backbone: Backbone, path: Path) -> None:
        state = {k: v for k, v in backbone.state_dict.items() if not k.startswith("bn1.")}
        torch.save({"state_dict": state}, path)

    monkeypatch.setattr(runner, "write_mmseg_checkpoint", write_without_stem)
    with pytest.raises(BackboneLoadError, match="bn1.weight"):
        voc12aug.run(random_backbone, seg_data_root, voc12aug.TINY, _ctx(tmp_path))


@pytest.mark.parametrize("module", [voc12aug, cityscapes])
def test_tiny_train_and_eval_gives_finite_miou(tmp_path: Path, seg_data_root: Path, random_backbone: Backbone,
                                              monkeypatch: pytest.MonkeyPatch, module) -> None:
    pytest.importorskip("mmseg")
    loads: list[str] = []
    real_load = runner.load_backbone_checkpoint

    def spy(target: torch.nn.Module, path: Path) -> None:
        real_load(target, path)
        loads.append(type(target).__name__)

    monkeypatch.setattr(runner, "load_backbone_checkpoint", spy)
    ctx = _ctx(tmp_path)
    (measurement,) = module.run(random_backbone, seg_data_root, module.TINY, ctx)
    assert loads == ["ResNet"]  # mmseg's plain ResNet, loaded once, strictly
    assert measurement.dataset == module.SPEC.dataset and measurement.metric == "mIoU"
    assert math.isfinite(measurement.value) and 0.0 <= measurement.value <= 100.0
    assert not (ctx.work_dir / runner.CHECKPOINT_NAME).exists()  # the converted copy is removed
    saved = json.loads((ctx.work_dir / runner.METRICS_NAME).read_text())
    assert saved["mIoU"] == measurement.value
    assert dataclasses.asdict(measurement)["engine"] == "mmseg"
