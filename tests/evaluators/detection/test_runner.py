from __future__ import annotations

import json
import math

import pytest

from evaluators.detection import runner


def test_auto_takes_detectron2_where_importable_else_mmdet() -> None:
    assert runner.resolve_engine("auto", d2_available=True) == "detectron2"
    assert runner.resolve_engine("auto", d2_available=False) == "mmdet"
    assert runner.resolve_engine("mmdet", d2_available=True) == "mmdet"
    assert runner.resolve_engine("detectron2", d2_available=True) == "detectron2"


def test_explicit_detectron2_without_it_says_how_to_install() -> None:
    with pytest.raises(ModuleNotFoundError, match="--det-engine detectron2.*pip install 'git\\+"):
        runner.resolve_engine("detectron2", d2_available=False)
    with pytest.raises(ValueError, match="unknown detection engine 'torchvision'"):
        runner.resolve_engine("torchvision", d2_available=True)


def test_rows_per_trial_and_mean() -> None:
    rows = runner.trial_rows(
        "voc0712", ["AP", "AP50"], [{"AP": 50.0, "AP50": 80.0}, {"AP": 52.0, "AP50": 81.0}], "detectron2"
    )
    assert [(r.variant, r.metric, r.value) for r in rows] == [
        ("trial0", "AP", 50.0),
        ("trial0", "AP50", 80.0),
        ("trial1", "AP", 52.0),
        ("trial1", "AP50", 81.0),
        ("mean", "AP", 51.0),
        ("mean", "AP50", 80.5),
    ]
    assert {r.engine for r in rows} == {"detectron2"} and {r.dataset for r in rows} == {"voc0712"}


def test_trials_are_saved_reused_and_checked(tmp_path) -> None:
    calls = []

    def trial(i, trial_dir):
        calls.append(i)
        return {"AP": 10.0 + i}

    assert runner.run_trials(2, tmp_path, ["AP"], trial) == [{"AP": 10.0}, {"AP": 11.0}]
    assert json.loads((tmp_path / "trial1" / "trial_result.json").read_text()) == {"AP": 11.0}
    assert runner.run_trials(3, tmp_path, ["AP"], trial) == [{"AP": 10.0}, {"AP": 11.0}, {"AP": 12.0}]
    assert calls == [0, 1, 2]
    with pytest.raises(ValueError, match="non-finite"):
        runner.run_trials(1, tmp_path / "nan", ["AP"], lambda i, d: {"AP": math.nan})
    assert not (tmp_path / "nan" / "trial0" / "trial_result.json").exists()  # a bad trial is not kept as done
    with pytest.raises(KeyError, match="AP75"):
        runner.run_trials(1, tmp_path, ["AP75"], trial)
    with pytest.raises(ValueError, match=">= 1"):
        runner.run_trials(0, tmp_path, ["AP"], trial)


METRICS3 = ["AP", "AP50", "AP75"]
RESULT3 = {"AP": 42.0, "AP50": 60.0, "AP75": 45.0}


def test_an_interrupted_detectron2_trial_is_resumed_not_read_as_finished(tmp_path) -> None:
    """detectron2's JSONWriter logs JSON lines into OUTPUT_DIR/metrics.json (OUTPUT_DIR = the trial
    folder) every 20 iterations: that log must never pass for the trial's finished result."""
    trial_dir = tmp_path / "trial0"
    trial_dir.mkdir()
    log = '{"iteration": 19, "loss": 1.2}\n{"iteration": 39, "loss": 1.1}\n'
    (trial_dir / "metrics.json").write_text(log)
    resumed = []

    def trial(i, folder):
        resumed.append((folder / "metrics.json").exists())  # the engine resumes in its own folder
        return dict(RESULT3)

    assert runner.run_trials(1, tmp_path, METRICS3, trial) == [RESULT3]
    assert resumed == [True]
    assert runner.run_trials(1, tmp_path, METRICS3, trial) == [RESULT3]
    assert resumed == [True]  # finished now: reused, not retrained
