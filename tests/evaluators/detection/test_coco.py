from __future__ import annotations

import math

import pytest

from dcbench.config import replace
from dcbench.datasets.common import DatasetMissingError
from evaluators.detection import coco

METRICS = ["bbox_AP", "bbox_AP50", "bbox_AP75", "segm_AP", "segm_AP50", "segm_AP75"]


def test_tiny_coco_trains_and_evaluates_with_the_embedded_engine(
    det_data_root, backbone, tmp_path, make_ctx
) -> None:
    config = replace(coco.TINY, engine="torchvision")
    rows = coco.run(backbone, det_data_root, config, make_ctx(tmp_path))
    assert [(r.variant, r.metric) for r in rows] == [("trial0", m) for m in METRICS] + [
        ("mean", m) for m in METRICS
    ]
    assert all(r.dataset == "coco2017" and r.engine == "torchvision" for r in rows)
    assert all(math.isfinite(r.value) and 0.0 <= r.value <= 100.0 for r in rows)


def test_missing_coco_names_the_layout(tmp_path, backbone, make_ctx) -> None:
    with pytest.raises(DatasetMissingError, match="instances_train2017.json"):
        coco.run(backbone, tmp_path / "nowhere", coco.TINY, make_ctx(tmp_path))
