"""Tiny VOC / COCO layouts (64-80 px, a few images) and a random backbone for the detection tests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from dcbench.backbone import Backbone, build_resnet50
from dcbench.datasets.voc import VOC_CLASSES

SIZES = ((64, 64), (80, 64), (64, 80))
COLOURS = ((220, 40, 40), (40, 200, 60), (50, 70, 230), (230, 210, 40))


def _scene(rng: np.random.Generator, index: int, n_classes: int) -> tuple[Image.Image, list[tuple]]:
    """An image with 1-2 filled rectangles; objects are (label, x1, y1, x2, y2) in 0-based pixels."""
    w, h = SIZES[index % len(SIZES)]
    noise = rng.integers(90, 140, size=(h, w, 3), dtype=np.uint8)
    image = Image.fromarray(noise)
    draw = ImageDraw.Draw(image)
    objects = []
    for k in range(1 + index % 2):
        label = (index + k) % n_classes
        bw, bh = int(rng.integers(16, 30)), int(rng.integers(16, 30))
        x1, y1 = int(rng.integers(0, w - bw)), int(rng.integers(0, h - bh))
        draw.rectangle([x1, y1, x1 + bw - 1, y1 + bh - 1], fill=COLOURS[label % len(COLOURS)])
        objects.append((label, x1, y1, x1 + bw - 1, y1 + bh - 1))
    return image, objects


def _voc_xml(image_id: str, size: tuple[int, int], objects: list[tuple], difficult: set[int]) -> str:
    objs = "".join(
        f"<object><name>{VOC_CLASSES[lab]}</name><pose>Unspecified</pose><truncated>0</truncated>"
        f"<difficult>{int(i in difficult)}</difficult><bndbox><xmin>{x1 + 1}</xmin><ymin>{y1 + 1}</ymin>"
        f"<xmax>{x2 + 1}</xmax><ymax>{y2 + 1}</ymax></bndbox></object>"
        for i, (lab, x1, y1, x2, y2) in enumerate(objects)
    )
    return (
        f"<annotation><filename>{image_id}.jpg</filename><size><width>{size[0]}</width>"
        f"<height>{size[1]}</height><depth>3</depth></size>{objs}</annotation>"
    )


def make_voc(root: Path, year: int, splits: dict[str, int], seed: int) -> None:
    rng = np.random.default_rng(seed)
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    index = 0
    for split, count in splits.items():
        ids = []
        for _ in range(count):
            image_id = f"{year}_{index:06d}"
            image, objects = _scene(rng, index, 4)
            image.save(root / "JPEGImages" / f"{image_id}.jpg", quality=95)
            difficult = {1} if index % 5 == 0 and len(objects) > 1 else set()
            (root / "Annotations" / f"{image_id}.xml").write_text(
                _voc_xml(image_id, image.size, objects, difficult)
            )
            ids.append(image_id)
            index += 1
        (root / "ImageSets" / "Main" / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))


CATEGORIES = [{"id": 1, "name": "person"}, {"id": 3, "name": "car"}, {"id": 18, "name": "dog"}]


def make_coco_split(root: Path, split: str, count: int, seed: int, first_id: int) -> None:
    rng = np.random.default_rng(seed)
    image_dir = root / f"{split}2017"
    image_dir.mkdir(parents=True, exist_ok=True)
    images, annos = [], []
    for i in range(count):
        image, objects = _scene(rng, i, len(CATEGORIES))
        image_id = first_id + i
        image.save(image_dir / f"{image_id:012d}.jpg", quality=95)
        images.append(
            {
                "id": image_id,
                "file_name": f"{image_id:012d}.jpg",
                "width": image.size[0],
                "height": image.size[1],
            }
        )
        for lab, x1, y1, x2, y2 in objects:
            x2, y2 = x2 + 1, y2 + 1  # COCO: continuous coordinates covering the pixels
            annos.append(
                {
                    "id": len(annos) + first_id * 10,
                    "image_id": image_id,
                    "category_id": CATEGORIES[lab]["id"],
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": float((x2 - x1) * (y2 - y1)),
                    "iscrowd": 0,
                    "segmentation": [[x1, y1, x2, y1, x2, y2, x1, y2]],
                }
            )
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    payload = {"images": images, "annotations": annos, "categories": CATEGORIES}
    (root / "annotations" / f"instances_{split}2017.json").write_text(json.dumps(payload))


@pytest.fixture(scope="session")
def det_data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("det_data")
    make_voc(root / "VOCdevkit" / "VOC2007", 2007, {"trainval": 10, "test": 6}, seed=1)
    make_voc(root / "VOCdevkit" / "VOC2012", 2012, {"trainval": 6}, seed=2)
    make_coco_split(root / "coco", "train", 10, seed=3, first_id=100)
    make_coco_split(root / "coco", "val", 6, seed=4, first_id=900)
    return root


@pytest.fixture(scope="session")
def backbone() -> Backbone:
    torch.manual_seed(0)
    return Backbone(
        state_dict=build_resnet50().state_dict(), sobel=False, sha256="ab" * 32, source_format="test"
    )
