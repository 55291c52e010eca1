from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from dcbench.backbone import Backbone, build_resnet50
from dcbench.context import RunContext
from dcbench.datasets.common import DatasetMissingError
from dcbench.results import Measurement, ResultStore
from evaluators.suite.registry import BenchmarkSpec
from evaluators.suite.runner import SuiteSettings, format_summary, run_suite


@dataclass(frozen=True)
class Cfg:
    value: float = 1.0


def _ok(backbone: Backbone, data_root: Path, config: Cfg, ctx: RunContext) -> list[Measurement]:
    assert ctx.work_dir.parent.name == "good"
    return [Measurement("voc07", "mAP", config.value, layer="feature5")]


def _missing(backbone: Backbone, data_root: Path, config: Cfg, ctx: RunContext) -> list[Measurement]:
    raise DatasetMissingError("VOC2007", data_root / "VOCdevkit", "VOCdevkit/VOC2007/JPEGImages ...")


def _boom(backbone: Backbone, data_root: Path, config: Cfg, ctx: RunContext) -> list[Measurement]:
    raise RuntimeError("exploded")


REGISTRY = {
    "good": BenchmarkSpec("voc_svm", _ok, Cfg(2.0), Cfg(3.0)),
    "missing": BenchmarkSpec("voc_svm", _missing, Cfg(), Cfg()),
    "bad": BenchmarkSpec("voc_svm", _boom, Cfg(), Cfg()),
}


@pytest.fixture(scope="module")
def backbone() -> Backbone:
    state = build_resnet50().state_dict()
    return Backbone(state_dict=state, sobel=False, sha256="f" * 64, source_format="test")


def test_outcomes_are_rows_and_failures_do_not_stop_the_run(tmp_path, backbone) -> None:
    settings = SuiteSettings(data_root=tmp_path / "data", work_dir=tmp_path / "w", model="m", tiny=True,
                             seed=0, device=torch.device("cpu"), git_sha="abc")
    store = ResultStore(tmp_path / "r.jsonl")
    outcomes = run_suite(["bad", "missing", "good"], backbone, settings, store, registry=REGISTRY)
    assert [o.status for o in outcomes] == ["failed", "skipped", "ok"]
    frame = store.read()
    assert list(frame["status"]) == ["failed", "skipped", "ok"]
    assert "exploded" in frame.loc[0, "reason"]
    assert "VOCdevkit/VOC2007" in frame.loc[1, "reason"]
    assert frame.loc[2, "value"] == 3.0  # the tiny config was used
    assert frame.loc[2, "checkpoint_sha256"] == "f" * 64
    assert "failed" in format_summary(outcomes)


@dataclass(frozen=True)
class AccumCfg:
    value: float = 1.0
    accum_steps: int = 1


def test_rows_record_the_configs_accumulation(tmp_path, backbone) -> None:
    settings = SuiteSettings(data_root=tmp_path / "data", work_dir=tmp_path / "w", model="m", tiny=True,
                             seed=0, device=torch.device("cpu"), git_sha="abc")
    store = ResultStore(tmp_path / "r.jsonl")
    registry = {"good": BenchmarkSpec("voc_svm", _ok, AccumCfg(), AccumCfg(accum_steps=4)),
                "other": BenchmarkSpec("voc_svm", _missing, Cfg(), Cfg())}
    run_suite(["good", "other"], backbone, settings, store, registry=registry)
    frame = store.read()
    assert list(frame["accum_steps"]) == [4, 1] and list(frame["world_size"]) == [1, 1]  # no field: 1
