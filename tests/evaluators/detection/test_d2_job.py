from __future__ import annotations

import ast
import json
import pickle
from collections import OrderedDict
from pathlib import Path

import numpy as np

from evaluators.detection import d2_job
from evaluators.detection.d2_job import D2Dataset, D2Job, plain, setup_args, write_results

PACKAGE = Path(d2_job.__file__).parent


def _imports(module: str) -> set[str]:
    tree = ast.parse((PACKAGE / f"{module}.py").read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return found


def test_no_import_circle_between_the_engine_and_its_worker() -> None:
    assert not {m for m in _imports("d2_worker") if "d2_engine" in m}
    assert not {m for m in _imports("d2_job") if m.startswith(("evaluators", "detectron2"))}
    assert "evaluators.detection.d2_job" in _imports("d2_engine")


def test_the_job_pickles_for_launched_workers(tmp_path: Path) -> None:
    job = D2Job(cfg={"SEED": 1}, datasets=(D2Dataset("d", "voc", "/r", "test", 2007),), results_path="/x",
                num_gpus=2)
    assert pickle.loads(pickle.dumps(job)) == job
    assert setup_args(2).num_gpus == 2 and setup_args(2).resume is True


def test_plain_makes_evaluator_output_json_ready(tmp_path: Path) -> None:
    got = plain(OrderedDict(bbox={"AP": np.float64(1.5), "AP50": np.float32(2.0)}))
    assert got == {"bbox": {"AP": 1.5, "AP50": 2.0}} and json.dumps(got)
    write_results(str(tmp_path / "r.json"), OrderedDict(bbox={"AP": np.float64(1.5)}))
    assert json.loads((tmp_path / "r.json").read_text()) == {"bbox": {"AP": 1.5}}
