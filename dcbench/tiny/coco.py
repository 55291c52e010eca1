"""Tiny COCO 2017: 40 train + 20 val images with instance boxes and polygon masks.

Six real COCO categories (ids and names as in instances_*2017.json); every object is a
class-styled polygon whose COCO polygon, bbox ([x, y, w, h] of the polygon) and area (the
polygon's area) describe what was drawn.  pycocotools' COCO / COCOeval load it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from dcbench.tiny.draw import class_styles, write_jpeg
from dcbench.tiny.scenes import Scene, SceneObject, SceneSpec, class_cycle, render_scene

COCO_CATEGORIES = (
    {"id": 1, "name": "person", "supercategory": "person"},
    {"id": 3, "name": "car", "supercategory": "vehicle"},
    {"id": 17, "name": "cat", "supercategory": "animal"},
    {"id": 18, "name": "dog", "supercategory": "animal"},
    {"id": 44, "name": "bottle", "supercategory": "kitchen"},
    {"id": 62, "name": "chair", "supercategory": "furniture"},
)
COCO_SPEC = SceneSpec(sizes=((96, 96), (112, 96), (96, 112)), max_objects=3, r_range=(10.0, 24.0))
COCO_COUNTS = {"train": 40, "val": 20}


def _polygon_area(points: tuple[tuple[float, float], ...]) -> float:
    """Shoelace area: what pycocotools' rasterised polygon covers (within a fraction of a pixel)."""
    xs = np.array([x for x, _ in points])
    ys = np.array([y for _, y in points])
    return float(0.5 * abs(np.dot(xs, np.roll(ys, 1)) - np.dot(ys, np.roll(xs, 1))))


def _annotation(obj: SceneObject, ann_id: int, image_id: int) -> dict[str, object]:
    xs = [x for x, _ in obj.points]
    ys = [y for _, y in obj.points]
    x0, y0 = min(xs), min(ys)
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": COCO_CATEGORIES[obj.label]["id"],
        "bbox": [round(x0, 2), round(y0, 2), round(max(xs) - x0, 2), round(max(ys) - y0, 2)],
        "area": round(_polygon_area(obj.points), 2),
        "iscrowd": 0,
        "segmentation": [[round(v, 2) for point in obj.points for v in point]],
    }


def _instances(scenes: dict[int, Scene], first_ann_id: int) -> dict[str, object]:
    images, annotations = [], []
    ann_id = first_ann_id
    for image_id, scene in scenes.items():
        images.append({"id": image_id, "file_name": f"{image_id:012d}.jpg", "width": scene.width,
                       "height": scene.height, "license": 1})
        for obj in scene.objects:
            annotations.append(_annotation(obj, ann_id, image_id))
            ann_id += 1
    return {
        "info": {"description": "dcbench tiny COCO-2017-format data", "version": "1.0", "year": 2017},
        "licenses": [{"id": 1, "name": "synthetic", "url": ""}],
        "images": images,
        "annotations": annotations,
        "categories": list(COCO_CATEGORIES),
    }


def make_coco(root: Path, rng: np.random.Generator) -> None:
    """coco/{train2017,val2017}/<id>.jpg and annotations/instances_{train,val}2017.json."""
    styles = class_styles(len(COCO_CATEGORIES), shape_offset=2, hue_offset=0.12)
    total = sum(COCO_COUNTS.values())
    all_ids = [int(i) for i in rng.choice(np.arange(1, 600_000), size=total, replace=False)]
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    start, ann_start = 0, 1
    for split, count in COCO_COUNTS.items():
        ids = sorted(all_ids[start : start + count])
        start += count
        labels = class_cycle(rng, len(COCO_CATEGORIES))
        scenes = {i: render_scene(rng, COCO_SPEC, styles, labels) for i in ids}
        for image_id, scene in scenes.items():
            write_jpeg(root / f"{split}2017" / f"{image_id:012d}.jpg", scene.pixels)
        payload = _instances(scenes, ann_start)
        ann_start += sum(len(scene.objects) for scene in scenes.values())
        (root / "annotations" / f"instances_{split}2017.json").write_text(json.dumps(payload))
