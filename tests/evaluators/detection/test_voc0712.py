from __future__ import annotations

import math
import shutil

import pytest

from dcbench.config import replace
from dcbench.datasets.common import DatasetMissingError
from evaluators.detection import voc0712


def test_tiny_voc_trains_and_evaluates_with_the_embedded_engine(
    det_data_root, backbone, tmp_path, make_ctx
) -> None:
    config = replace(voc0712.TINY, engine="torchvision")
    rows = voc0712.run(backbone, det_data_root, config, make_ctx(tmp_path))
    assert [(r.variant, r.metric) for r in rows] == [
        ("trial0", "AP"),
        ("trial0", "AP50"),
        ("trial0", "AP75"),
        ("mean", "AP"),
        ("mean", "AP50"),
        ("mean", "AP75"),
    ]
    assert all(r.dataset == "voc0712" and r.engine == "torchvision" for r in rows)
    assert all(math.isfinite(r.value) and 0.0 <= r.value <= 100.0 for r in rows)
    assert [r.value for r in rows[:3]] == [r.value for r in rows[3:]]
    # a finished trial is reused, not retrained
    finished = list((tmp_path / "work").glob("torchvision-*/trial0/metrics.json"))
    assert len(finished) == 1 and not list(finished[0].parent.glob("tv_checkpoint.pth"))
    again = voc0712.run(backbone, det_data_root, config, make_ctx(tmp_path))
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
