"""Tiny Cityscapes: 12 train + 6 val street scenes at 128 x 64 with labelTrainIds masks.

Label map first (sky, buildings, vegetation, road, sidewalks, poles, cars, people; the
ego-vehicle rows are 255 = ignore as in real gtFine), then pixels from the Cityscapes colour of
each class plus noise and a little texture, so the classes are separable by colour and shape.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import PIL.Image
import PIL.ImageDraw

from dcbench.datasets.cityscapes import IMG_SUFFIX, MASK_SUFFIX
from dcbench.tiny.draw import to_uint8, write_png

WIDTH, HEIGHT = 128, 64
CITIES = {"train": (("aachen", 6), ("bochum", 6)), "val": (("frankfurt", 6),)}
# trainId -> Cityscapes colour (cityscapesscripts labels.py)
COLOURS = {
    0: (128, 64, 128), 1: (244, 35, 232), 2: (70, 70, 70), 5: (153, 153, 153), 8: (107, 142, 35),
    10: (70, 130, 180), 11: (220, 20, 60), 13: (0, 0, 142), 255: (0, 0, 0),
}
ROAD, SIDEWALK, BUILDING, POLE, VEGETATION, SKY, PERSON, CAR, IGNORE = 0, 1, 2, 5, 8, 10, 11, 13, 255


def _draw_background(draw: PIL.ImageDraw.ImageDraw, rng: np.random.Generator, horizon: int) -> None:
    x = 0
    while x < WIDTH:
        step = int(rng.integers(12, 30))
        top = horizon - int(rng.integers(8, 22))
        if rng.random() < 0.3:
            r = step // 2
            draw.ellipse([x, horizon - 2 * r, x + 2 * r, horizon + 2], fill=VEGETATION)
        else:
            draw.rectangle([x, top, x + step - 1, horizon + 2], fill=BUILDING)
        x += step
    draw.rectangle([0, horizon + 1, WIDTH - 1, HEIGHT - 1], fill=ROAD)
    left, right = int(rng.integers(20, 40)), int(rng.integers(88, 108))
    draw.polygon([(0, horizon + 1), (left, horizon + 1), (0, HEIGHT - 1)], fill=SIDEWALK)
    draw.polygon([(WIDTH - 1, horizon + 1), (right, horizon + 1), (WIDTH - 1, HEIGHT - 1)], fill=SIDEWALK)


def _draw_things(draw: PIL.ImageDraw.ImageDraw, rng: np.random.Generator, horizon: int) -> None:
    for _ in range(int(rng.integers(0, 3))):
        x = int(rng.choice([int(rng.integers(2, 20)), int(rng.integers(108, 126))]))
        draw.rectangle([x, horizon - int(rng.integers(6, 14)), x + 1, horizon + 10], fill=POLE)
    for _ in range(int(rng.integers(1, 4))):
        w, h = int(rng.integers(14, 24)), int(rng.integers(7, 11))
        x, y = int(rng.integers(30, WIDTH - 30 - w)), int(rng.integers(horizon + 4, HEIGHT - 5 - h))
        draw.rounded_rectangle([x, y, x + w, y + h], radius=2, fill=CAR)
    for _ in range(int(rng.integers(0, 3))):
        x = int(rng.choice([int(rng.integers(3, 14)), int(rng.integers(114, 124))]))
        y = int(rng.integers(horizon + 6, HEIGHT - 16))
        draw.rectangle([x, y, x + 2, y + 10], fill=PERSON)


def label_map(rng: np.random.Generator) -> np.ndarray:
    """uint8 HEIGHT x WIDTH train-id map."""
    img = PIL.Image.new("L", (WIDTH, HEIGHT), SKY)
    draw = PIL.ImageDraw.Draw(img)
    horizon = int(rng.integers(22, 30))
    _draw_background(draw, rng, horizon)
    _draw_things(draw, rng, horizon)
    draw.rectangle([0, HEIGHT - 3, WIDTH - 1, HEIGHT - 1], fill=IGNORE)  # ego vehicle
    return np.asarray(img, dtype=np.uint8)


def render(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """RGB pixels for a label map: class colour, brightness jitter, row texture, noise."""
    lut = np.zeros((256, 3), dtype=np.float32)
    for train_id, colour in COLOURS.items():
        lut[train_id] = colour
    pixels = lut[labels] * float(rng.uniform(0.85, 1.1))
    stripes = np.where((np.arange(HEIGHT) // 2) % 2 == 0, 0.85, 1.0)[:, None]
    pixels = np.where((labels == BUILDING)[:, :, None], pixels * stripes[:, :, None], pixels)
    return pixels + rng.normal(0.0, 8.0, size=pixels.shape)


def make_cityscapes(root: Path, rng: np.random.Generator) -> None:
    """cityscapes/leftImg8bit/<split>/<city>/*_leftImg8bit.png + gtFine/*_gtFine_labelTrainIds.png."""
    for split, cities in CITIES.items():
        for city, count in cities:
            for seq in range(count):
                stem = f"{city}_{seq:06d}_000019"
                labels = label_map(rng)
                pixels = to_uint8(render(labels, rng))
                image_path = root / "leftImg8bit" / split / city / f"{stem}{IMG_SUFFIX}"
                mask_path = root / "gtFine" / split / city / f"{stem}{MASK_SUFFIX}"
                write_png(image_path, PIL.Image.fromarray(pixels))
                write_png(mask_path, PIL.Image.fromarray(labels))
