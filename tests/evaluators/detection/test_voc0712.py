from __future__ import annotations

import dataclasses
import math
import shutil

import pytest

from dcbench.datasets.common import DatasetMissingError
from evaluators.detection import voc0712


def _ctx(make_ctx, root):
    return dataclasses.replace(make_ctx(root), det_engine="mmdet")


def test_tiny_voc_trains_and_evaluates_with_mmdet(det_data_root, backbone, tmp_path, make_ctx) -> None:
    pytest.importorskip("mmdet.models", reason="the mmdetection engine needs mmdet (scripts/install_seg.sh)")
    rows = voc0712.run(backbone, det_data_root, voc0712.TINY, _ctx(make_ctx, tmp_path))
    assert [(r.variant, r.metric) for r in rows] == [
        (v, m) for v in ("trial0", "mean") for m in ("AP", "AP50", "AP75")]
    assert all(r.dataset == "voc0712" and r.engine == "mmdet" for r in rows)
    assert all(math.isfinite(r.value) and 0.0 <= r.value <= 100.0 for r in rows)
    (finished,) = (tmp_path / "work").glob("mmdet-*/trial0/trial_result.json")
    assert not list(finished.parent.rglob("*.pth"))  # checkpoints go once the metrics are safe
    again = voc0712.run(backbone, det_data_root, voc0712.TINY, _ctx(make_ctx, tmp_path))  # reused
    assert [r.value for r in again] == [r.value for r in rows]


def test_missing_voc_names_the_layout(tmp_path, backbone, make_ctx) -> None:
    with pytest.raises(DatasetMissingError, match="ImageSets/Main"):
        voc0712.run(backbone, tmp_path / "nowhere", voc0712.TINY, make_ctx(tmp_path))


def test_missing_voc2012_is_reported_even_if_voc2007_exists(
    det_data_root, backbone, tmp_path, make_ctx
) -> None:
    root = tmp_path / "data"
    shutil.copytree(det_data_root / "VOCdevkit" / "VOC2007", root / "VOCdevkit" / "VOC2007")
    with pytest.raises(DatasetMissingError, match="VOC2012"):
        voc0712.run(backbone, root, voc0712.TINY, make_ctx(tmp_path))
