"""benchmarks/bench_memory.py at a tiny size: both COCO feeds give the same metrics, and the two
gathers run in their gloo processes and agree (the figures themselves come from the script's run)."""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_memory.py"


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(SCRIPT.parent))  # the spawned gather ranks import it by name
    spec = importlib.util.spec_from_file_location("bench_memory", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_memory", module)
    spec.loader.exec_module(module)
    return module


def test_coco_ground_truth_and_both_feeds_agree(bench: ModuleType, tmp_path: Path) -> None:
    args = argparse.Namespace(width=40, height=30, instances=3, detections=5)
    ann = tmp_path / "instances.json"
    bench.write_coco_gt(ann, 2, args)
    gt = json.loads(ann.read_text())
    assert len(gt["images"]) == 2 and len(gt["annotations"]) == 2 * args.instances
    sample = bench.predictions(1, args)
    assert tuple(sample["pred_instances"]["masks"].shape) == (args.detections, args.height, args.width)
    per_image, kept = (bench.coco_measurement(impl, 2, str(ann), args)
                       for impl in ("per-image", "dense-kept"))
    assert per_image["metrics"] == kept["metrics"] and 0 < per_image["metrics"]["coco/segm_mAP"] <= 1
    assert per_image["growth"] >= 0 and kept["peak"] > 0


def test_both_gathers_run_on_two_gloo_ranks_and_agree(bench: ModuleType) -> None:
    ours, ours_digest = bench.measure(64, 2, "preallocated")
    old, old_digest = bench.measure(64, 2, "three-copy")
    assert ours_digest == old_digest and ours >= 0 and old >= 0
