"""Tiny single-label classification sets: ImageNet, iNaturalist 2018, Places205.

Each class has its own shape, colour and texture (Places: its own horizon, sky/ground colours and
scattered motif), so a linear probe on good features separates them.  The ImageNet 1% / 10%
lists are per-class counts here (2 and 6 images per class), not percentages of the tiny set.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from dcbench.tiny.draw import (
    Circle,
    Style,
    background,
    class_image,
    class_styles,
    draw_object,
    palette,
    write_jpeg,
)

# Ten real ILSVRC-2012 wnids (the Imagenette subset), in sorted = label order.
IMAGENET_WNIDS = (
    "n01440764", "n02102040", "n02979186", "n03000684", "n03028079",
    "n03394916", "n03417042", "n03425413", "n03445777", "n03888257",
)
IMAGENET_SIZE = 64
IMAGENET_TRAIN_PER_CLASS = 24
IMAGENET_VAL_PER_CLASS = 6
IMAGENET_SUBSET_PER_CLASS = {"1percent": 2, "10percent": 6}

# (supercategory, species name) for category ids 0..7.
INAT_CATEGORIES = (
    ("Plantae", "Quercus robur"), ("Plantae", "Bellis perennis"), ("Aves", "Parus major"),
    ("Aves", "Pica pica"), ("Insecta", "Apis mellifera"), ("Insecta", "Vanessa atalanta"),
    ("Fungi", "Amanita muscaria"), ("Reptilia", "Lacerta agilis"),
)
KINGDOMS = {"Plantae": "Plantae", "Fungi": "Fungi"}
INAT_SIZE = 64
INAT_TRAIN_PER_CLASS = 10
INAT_VAL_PER_CLASS = 3

# Real Places205 category folders (labels 0..7 in this order).
PLACES_CATEGORIES = (
    "a/abbey", "b/bedroom", "c/coast", "f/forest_path", "h/highway", "k/kitchen", "m/mountain",
    "s/skyscraper",
)
PLACES_SIZE = 64
PLACES_TRAIN_PER_CLASS = 10
PLACES_VAL_PER_CLASS = 3
PLACES_IMAGE_DIR = Path("data/vision/torralba/deeplearning/images256")


def _digest(*parts: object) -> str:
    return hashlib.md5("/".join(map(str, parts)).encode()).hexdigest()


def make_imagenet(root: Path, rng: np.random.Generator) -> None:
    """imagenet/{train,val}/<wnid>/*.JPEG and meta/train_{1,10}percent.txt."""
    styles = class_styles(len(IMAGENET_WNIDS))
    subsets: dict[str, list[str]] = {name: [] for name in IMAGENET_SUBSET_PER_CLASS}
    val_index = 0
    for label, wnid in enumerate(IMAGENET_WNIDS):
        names = [f"{wnid}_{1000 + 37 * i}.JPEG" for i in range(IMAGENET_TRAIN_PER_CLASS)]
        for name in names:
            write_jpeg(root / "train" / wnid / name, class_image(rng, IMAGENET_SIZE, styles[label]))
        for _ in range(IMAGENET_VAL_PER_CLASS):
            val_index += 1
            image = class_image(rng, IMAGENET_SIZE, styles[label])
            write_jpeg(root / "val" / wnid / f"ILSVRC2012_val_{val_index:08d}.JPEG", image)
        order = rng.permutation(len(names))
        for subset, count in IMAGENET_SUBSET_PER_CLASS.items():
            picked = sorted(names[i] for i in order[:count])  # 1percent is a prefix of 10percent
            subsets[subset].extend(f"{wnid}/{name} {label}" for name in picked)
    (root / "meta").mkdir(parents=True, exist_ok=True)
    for subset, lines in subsets.items():
        (root / "meta" / f"train_{subset}.txt").write_text("\n".join(lines) + "\n")


def _inat_json(images: list[dict[str, object]], annotations: list[dict[str, object]]) -> str:
    categories = [
        {"id": i, "name": name, "supercategory": sup, "kingdom": KINGDOMS.get(sup, "Animalia")}
        for i, (sup, name) in enumerate(INAT_CATEGORIES)
    ]
    payload = {
        "info": {"description": "dcbench tiny iNaturalist2018-format data", "year": 2018},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": categories,
    }
    return json.dumps(payload, indent=1)


def make_inat18(root: Path, rng: np.random.Generator) -> None:
    """inaturalist2018/{train2018,val2018}.json and train_val2018/<super>/<id>/<hash>.jpg."""
    styles = class_styles(len(INAT_CATEGORIES), shape_offset=3, hue_offset=0.05)
    counts = {"train": INAT_TRAIN_PER_CLASS, "val": INAT_VAL_PER_CLASS}
    next_id = 0
    for split, per_class in counts.items():
        images: list[dict[str, object]] = []
        annotations: list[dict[str, object]] = []
        for cat_id, (supercategory, _) in enumerate(INAT_CATEGORIES):
            for _ in range(per_class):
                file_name = f"train_val2018/{supercategory}/{cat_id}/{_digest('inat', next_id)}.jpg"
                write_jpeg(root / file_name, class_image(rng, INAT_SIZE, styles[cat_id]))
                images.append({"id": next_id, "file_name": file_name, "width": INAT_SIZE,
                               "height": INAT_SIZE, "license": 0})
                annotations.append({"id": next_id, "image_id": next_id, "category_id": cat_id})
                next_id += 1
        (root / f"{split}2018.json").write_text(_inat_json(images, annotations))


def _scene(rng: np.random.Generator, label: int, styles: tuple[Style, ...]) -> np.ndarray:
    """Sky / ground split at a class-dependent horizon, plus a few small class motifs."""
    size = PLACES_SIZE
    skies, grounds = palette(len(styles), 0.55), palette(len(styles), 0.1)
    canvas = background(rng, size, size)
    horizon = int(size * (0.25 + 0.5 * label / len(styles)) + rng.integers(-3, 4))
    tone = np.asarray(skies[label], dtype=np.float32) * 0.6 + canvas[:horizon] * 0.4
    canvas = np.concatenate([tone, np.asarray(grounds[label], np.float32) * 0.6 + canvas[horizon:] * 0.4])
    for _ in range(int(rng.integers(2, 4))):
        r = float(rng.uniform(5.0, 9.0))
        circle = Circle(float(rng.uniform(r + 1, size - r - 2)), float(rng.uniform(r + 1, size - r - 2)), r)
        canvas, _, _ = draw_object(canvas, styles[label], circle, rng)
    return canvas


def make_places205(root: Path, rng: np.random.Generator) -> None:
    """places205/trainvalsplit_places205/*.csv and data/vision/.../images256/<l>/<cat>/*.jpg."""
    styles = class_styles(len(PLACES_CATEGORIES), shape_offset=5, hue_offset=0.3)
    counts = {"train": PLACES_TRAIN_PER_CLASS, "val": PLACES_VAL_PER_CLASS}
    lines: dict[str, list[str]] = {split: [] for split in counts}
    for label, category in enumerate(PLACES_CATEGORIES):
        for split, per_class in counts.items():
            for i in range(per_class):
                rel = f"{category}/gsun_{_digest('places', category, split, i)}.jpg"
                write_jpeg(root / PLACES_IMAGE_DIR / rel, _scene(rng, label, styles))
                lines[split].append(f"{rel} {label}")
    lists = root / "trainvalsplit_places205"
    lists.mkdir(parents=True, exist_ok=True)
    for split, split_lines in lines.items():
        (lists / f"{split}_places205.csv").write_text("\n".join(split_lines) + "\n")
