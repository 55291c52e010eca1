from __future__ import annotations

import re
from pathlib import Path

import pytest

from dcbench.results import ResultStore
from reports.metafile import (
    MetafileError,
    build_metafile,
    metafile_values,
    read_metafile,
    training_metadata,
    validate_metafile,
    write_metafile,
)
from reports.tables import current_rows


def test_round_trip_keeps_every_number(tmp_path: Path, site_store: Path) -> None:
    frame = ResultStore(site_store).read()
    doc = read_metafile(write_metafile(frame, tmp_path / "metafile.yml"))
    values = metafile_values(doc)
    ok = current_rows(frame)
    assert len(values) == len(ok)  # one metric per current ok row, no collisions
    assert values[("dc", "Linear Evaluation", "ImageNet-1k", "feature3 Top 1 Accuracy")] == 13.0
    lowshot = ("dc", "Low-shot SVM Classification", "PASCAL VOC2007", "k=8 reference feature5 mAP")
    assert values[lowshot] == 10.8
    assert doc == build_metafile(frame)


def test_model_metadata_from_the_config_name(tmp_path: Path, site_store: Path) -> None:
    doc = build_metafile(ResultStore(site_store).read())
    dc = next(m for m in doc["Models"] if m["Name"] == "dc")
    assert dc["Metadata"] == {"Epochs": 200, "Batch Size": 512}
    assert dc["Weights"] == "sha256:" + "a" * 64 and dc["In Collection"] == doc["Collections"][0]["Name"]
    assert training_metadata("tiny") == {} and training_metadata(None) == {}


@pytest.mark.parametrize("mutate, words", [
    (lambda d: d["Models"][0].update({"Accuracy": 1}), "unknown field(s) ['Accuracy']"),
    (lambda d: d["Models"][0].pop("Results"), "missing field(s) ['Results']"),
    (lambda d: d["Models"][0]["Results"][0].update({"Metrics": {"x": "high"}}), "must be a number"),
    (lambda d: d["Models"][0].update({"In Collection": "other"}), "unknown collection"),
])
def test_validation_names_the_field(tmp_path: Path, mutate, words: str, site_store: Path) -> None:
    doc = build_metafile(ResultStore(site_store).read())
    mutate(doc)
    with pytest.raises(MetafileError, match=re.escape(words)):
        validate_metafile(doc)
