from __future__ import annotations

import json
from pathlib import Path

import pytest

from reports.published import DEFAULT_FILE, load_published, published_note


def test_every_published_value_names_its_sources_and_the_checkpoint() -> None:
    published = load_published()
    data = json.loads(DEFAULT_FILE.read_text(encoding="utf-8"))
    assert published.label == "published" and published.sha256_prefix == "bb8681e2"
    assert all(published.sha256_prefix in text for text in published.checkpoint_files.values())
    assert set(published.sources) == {"openselfsup", "mmselfsup"}
    assert all({"cite", "where"} <= set(source) for source in published.sources.values())
    assert len(published.rows) == len(data["values"])
    assert published.rows["sources"].str.len().min() > 0
    assert (published.rows["checkpoint_sha256"] == "bb8681e2").all()
    svm = published.rows[published.rows["benchmark"] == "voc07_svm"].iloc[0]
    assert (svm["layer"], float(svm["value"])) == ("feature5", 74.26)
    lowshot = published.rows[published.rows["benchmark"] == "voc07_lowshot"]
    assert set(lowshot["layer"]) == {"feature5"} and sorted(lowshot["k"]) == [1, 2, 4, 8, 16, 32, 64, 96]
    avg = published.rows[published.rows["benchmark"] == "linear_avgpool_imagenet"].iloc[0]
    assert (avg["metric"], float(avg["value"])) == ("top1_best_epoch", 46.92)
    assert published.same_checkpoint("BB8681E2" + "0" * 56) and not published.same_checkpoint("a" * 64)


def test_notes_say_what_differs_or_that_nothing_is_published() -> None:
    published = load_published()
    svm = published_note(published, "voc_svm", ("voc07_svm", "voc07_lowshot"))
    assert "remain" in svm and "OpenSelfSup docs/MODEL_ZOO.md" in svm and "seeded" in svm
    semisup = published_note(published, "semisup", ("semisup_1pct", "semisup_10pct"))
    assert "values from OpenSelfSup docs/MODEL_ZOO.md;" in semisup
    assert "no known protocol difference" in semisup
    assert "no published value" in published_note(published, "det_coco", ("det_coco",))


@pytest.mark.parametrize("change, match", [
    (lambda d: d.update(format="other"), "format"),
    (lambda d: d["values"][0].update(unknown=1), "unknown key"),
    (lambda d: d["values"][0].update(sources=["paper"]), "sources"),
    (lambda d: d["values"][0].pop("value"), "missing"),
])
def test_a_bad_data_file_is_refused(tmp_path: Path, change, match: str) -> None:
    data = json.loads(DEFAULT_FILE.read_text(encoding="utf-8"))
    change(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ValueError, match=match):
        load_published(path)
