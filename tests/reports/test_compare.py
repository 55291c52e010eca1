from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from dcbench.results import Measurement, Provenance, rows_from_measurements
from reports.__main__ import main
from reports.compare import compare, difference
from reports.published import load_published

SHA = "bb8681e2" + "c" * 56


def _store(path: Path) -> Path:
    rows = []
    for benchmark, measurements in (
        ("voc07_svm", [Measurement("voc07", "mAP", 75.0, layer="feature5"),
                       Measurement("voc07", "mAP", 60.0, layer="feature4")]),
        ("voc07_lowshot", [Measurement("voc07", "mAP", 30.0, layer="feature5", k=1, variant="reference")]),
        ("linear_avgpool_imagenet", [Measurement("imagenet", "top1", 45.0, layer="avgpool"),
                                     Measurement("imagenet", "top1_best_epoch", 47.0, layer="avgpool")]),
    ):
        prov = Provenance(model="dc", checkpoint_sha256=SHA, benchmark=benchmark, config_hash="x" * 16,
                          seed=0, git_sha="g", pretrain_config="deepcluster")
        rows += rows_from_measurements(prov, measurements)
    path.write_text("".join(json.dumps(dataclasses.asdict(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def test_difference_only_between_numbers() -> None:
    assert difference("75.00", "74.26") == "+0.74" and difference("40.00†", "41.00") == "-1.00"
    assert difference("–", "74.26") == "–" and difference("feature5", "feature5") == "–"
    assert difference("20.00ˡ", "46.92") == "-26.92" and difference("50.00‡", "49.00") == "+1.00"
    assert difference("1% data, lr0.01_head1, 1 setting", "1% data, lr0.01_head1, 1 setting") == "–"


def test_compare_prints_ours_published_and_the_difference(tmp_path: Path) -> None:
    from dcbench.results import ResultStore

    text = compare(ResultStore(_store(tmp_path / "r.jsonl")).read(), "dc", load_published())
    assert "the same checkpoint" in text
    lines = text.splitlines()
    svm = next(line for line in lines if line.strip().startswith("SVM "))
    assert svm.split() == ["SVM", "75.00", "74.26", "+0.74"]
    k1 = next(line for line in lines if line.strip().startswith("k=1 "))
    assert k1.split() == ["k=1", "30.00", "29.37", "+0.63"]
    avg = next(line for line in lines if line.strip().startswith("AvgPool "))
    assert avg.split() == ["AvgPool", "47.00", "46.92", "+0.08"]
    assert any("last epoch 45.00, best over epochs 47.00" in line for line in lines)
    assert "another config (xxxxxxxxxxxxxxxx)" in text  # neither the registry's reference nor tiny config
    assert "protocol differences from the published run that remain" in text
    with pytest.raises(ValueError, match="no successful rows for model 'nope'"):
        compare(ResultStore(tmp_path / "r.jsonl").read(), "nope")


def test_cli_compare_on_the_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = _store(tmp_path / "r.jsonl")
    readme = tmp_path / "README.md"
    assert main(["--results", str(store), "--readme", str(readme), "--compare", "dc"]) == 0
    assert "## voc_svm" in capsys.readouterr().out and not readme.exists()
    assert main(["--results", str(store), "--compare", "nope"]) == 2
