from __future__ import annotations

import errno
import json
import logging
import multiprocessing
import os

import pytest

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


def _row(value: float) -> list:
    return rows_from_measurements(PROV, [Measurement("voc07", "mAP", value, layer="feature5")])


def test_torn_last_line_is_reported_ignored_and_never_glued(tmp_path, caplog) -> None:
    store = ResultStore(tmp_path / "r.jsonl")
    store.append(_row(1.0))
    with open(store.path, "ab") as fh:
        fh.write(b'{"model": "m", "status": "o')  # a writer killed mid-row
    with caplog.at_level(logging.WARNING, logger="deepcluster_bench"):
        assert len(store.read()) == 1
        assert "line(s) 2 are not whole JSON rows" in caplog.text
        store.append(_row(2.0))
    scan = store.scan()
    assert [r["value"] for r in scan.records] == [1.0, 2.0] and scan.bad_lines == [2]


def test_a_failed_write_leaves_no_half_row(tmp_path, monkeypatch) -> None:
    store = ResultStore(tmp_path / "r.jsonl")
    store.append(_row(1.0))
    before = store.path.read_bytes()
    real_write = os.write

    def full_disk(fd: int, data) -> int:
        real_write(fd, bytes(data[:10]))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full_disk)
    with pytest.raises(OSError, match="No space"):
        store.append(_row(2.0))
    monkeypatch.undo()
    assert store.path.read_bytes() == before
    store.append(_row(3.0))
    assert [r["value"] for r in store.scan().records] == [1.0, 3.0]


def _append_many(path: str, worker: int) -> None:
    store = ResultStore(path)
    for i in range(40):
        store.append(_row(worker * 1000 + i) * 3)


def test_parallel_appends_keep_every_row_whole(tmp_path) -> None:
    path = tmp_path / "r.jsonl"
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_append_many, args=(str(path), w)) for w in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    scan = ResultStore(path).scan()
    assert scan.bad_lines == [] and len(scan.records) == 3 * 40 * 3
    expected = sorted(w * 1000 + i for w in range(3) for i in range(40))
    assert sorted({r["value"] for r in scan.records}) == expected
