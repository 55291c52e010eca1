from __future__ import annotations

import json

from dcbench.results import (
    COLUMNS,
    Measurement,
    Provenance,
    ResultStore,
    latest_ok,
    rows_from_measurements,
    status_row,
)

PROV = Provenance(model="m", checkpoint_sha256="ab" * 32, benchmark="voc07_svm",
                  config_hash="c0ffee", seed=0, git_sha="deadbeef", pretrain_config="tiny")


def test_store_appends_and_reads_tidy_rows(tmp_path) -> None:
    store = ResultStore(tmp_path / "results" / "results.jsonl")
    assert list(store.read().columns) == list(COLUMNS)
    store.append(rows_from_measurements(PROV, [Measurement("voc07", "mAP", 12.5, layer="feature5")]))
    store.append([status_row(PROV, "failed", "boom")])
    frame = store.read()
    assert len(frame) == 2
    assert frame.loc[0, "value"] == 12.5 and frame.loc[0, "status"] == "ok"
    failed = frame.loc[1]
    assert failed["status"] == "failed" and failed["reason"] == "boom"
    assert failed["value"] is None or str(failed["value"]) == "<NA>"
    lines = (tmp_path / "results" / "results.jsonl").read_text().splitlines()
    assert all(set(json.loads(line)) == set(COLUMNS) for line in lines)


def test_latest_ok_keeps_newest_per_key(tmp_path) -> None:
    store = ResultStore(tmp_path / "r.jsonl")
    old = rows_from_measurements(PROV, [Measurement("voc07", "mAP", 1.0, layer="feature5")])
    new = rows_from_measurements(PROV, [Measurement("voc07", "mAP", 2.0, layer="feature5")])
    new = [r.__class__(**{**r.__dict__, "time": "9999-01-01T00:00:00+00:00"}) for r in new]
    store.append(new)
    store.append(old)
    latest = latest_ok(store.read())
    assert len(latest) == 1 and latest.loc[0, "value"] == 2.0
