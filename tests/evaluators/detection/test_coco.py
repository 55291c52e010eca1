from __future__ import annotations

import dataclasses
import math

import pytest

from dcbench.datasets.common import DatasetMissingError
from evaluators.detection import coco


def _ctx(make_ctx, root):
    return dataclasses.replace(make_ctx(root), det_engine="mmdet")


def test_tiny_coco_trains_and_evaluates_box_and_mask_ap(det_data_root, backbone, tmp_path, make_ctx) -> None:
    pytest.importorskip("mmdet.models", reason="the mmdetection engine needs mmdet (scripts/install_seg.sh)")
    rows = coco.run(backbone, det_data_root, coco.TINY, _ctx(make_ctx, tmp_path))
    assert [r.metric for r in rows if r.variant == "mean"] == list(coco.METRICS)
    assert all(r.dataset == "coco2017" and r.engine == "mmdet" for r in rows)
    assert all(math.isfinite(r.value) and 0.0 <= r.value <= 100.0 for r in rows)




def test_missing_coco_names_the_layout(tmp_path, backbone, make_ctx) -> None:
    with pytest.raises(DatasetMissingError, match="instances_train2017.json"):
        coco.run(backbone, tmp_path / "nowhere", coco.TINY, make_ctx(tmp_path))


def test_train_and_test_must_list_the_same_categories(det_data_root, backbone, tmp_path, make_ctx) -> None:
    import json
    import shutil

    root = tmp_path / "data"
    shutil.copytree(det_data_root / "coco", root / "coco")
    ann = root / "coco" / "annotations" / "instances_val2017.json"
    data = json.loads(ann.read_text())
    data["categories"] = data["categories"][:-1]
    data["annotations"] = [a for a in data["annotations"] if a["category_id"] != 18]
    ann.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="different categories"):
        coco.run(backbone, root, coco.TINY, _ctx(make_ctx, tmp_path))
