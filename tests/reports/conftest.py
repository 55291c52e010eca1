"""Fixtures of the reports tests: a small results store and a pretraining log for the site / metafile /
CSV / browser tests."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from dcbench.results import (
    Measurement,
    Provenance,
    ResultRow,
    ResultStore,
    rows_from_measurements,
    status_row,
)

T0, T1 = "2024-01-01T00:00:00+00:00", "2024-01-02T00:00:00+00:00"
CONFIG = "deepcluster_resnet50_8xb64-steplr-200e_in1k"


def _prov(model: str, benchmark: str, sha: str) -> Provenance:
    return Provenance(model=model, checkpoint_sha256=sha, benchmark=benchmark, config_hash="c0ffee",
                      seed=0, git_sha="abc123", pretrain_config=CONFIG if model == "dc" else None)


def _ok(model: str, benchmark: str, ms: list[Measurement], sha: str, time: str = T1) -> list[ResultRow]:
    rows = rows_from_measurements(_prov(model, benchmark, sha), ms)
    return [dataclasses.replace(r, time=time) for r in rows]


def store_rows() -> list[ResultRow]:
    """Models 'dc' (SVM, low-shot, linear; det_coco failed) and 'moco v2|x' (SVM; seg skipped)."""
    svm = lambda base: [Measurement("voc07", "mAP", base + i, layer=f"feature{i}") for i in range(1, 6)]  # noqa: E731
    lowshot = [Measurement("voc07", "mAP", 10.0 + k / 10, layer="feature5", k=k, variant="reference")
               for k in (1, 2, 4, 8, 16, 32, 64, 96)]
    linear = [Measurement("imagenet", m, v + i, layer=f"feature{i}") for i in range(1, 6)
              for m, v in (("top1", 10.0), ("top5", 30.0))]
    rows = _ok("dc", "voc07_svm", svm(60.0), "a" * 64) + _ok("dc", "voc07_lowshot", lowshot, "a" * 64)
    rows += _ok("dc", "linear_imagenet", linear, "a" * 64)
    rows += [dataclasses.replace(status_row(_prov("dc", "det_coco", "a" * 64), "failed",
                                            "RuntimeError: out of memory\ntraceback"), time=T1)]
    rows += _ok("moco v2|x", "voc07_svm", svm(70.0), "b" * 64)
    rows += [dataclasses.replace(status_row(_prov("moco v2|x", "seg_cityscapes", "b" * 64), "skipped",
                                            "cityscapes: missing DATA/cityscapes/leftImg8bit"), time=T0)]
    return rows


@pytest.fixture
def site_store(tmp_path: Path) -> Path:
    folder = tmp_path
    store = ResultStore(folder / "results.jsonl")
    store.append(store_rows())
    return store.path


@pytest.fixture
def pretrain_log(tmp_path: Path) -> Path:
    folder = tmp_path
    log = folder / "pretrain" / "log.jsonl"
    log.parent.mkdir(parents=True, exist_ok=True)
    records = [{"epoch": e, "loss": 2.0 - e / 10, "kmeans_objective": 0.5 + e / 100, "nmi_prev": 0.3 + e / 20,
                "nmi_gt": 0.2 + e / 30, "empty_clusters": 3 - e} for e in range(3)]
    log.write_text("".join(json.dumps(r) + "\n" for r in records) + '{"epoch": 3, "lo', encoding="utf-8")
    return log
