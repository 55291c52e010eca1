"""Multi-object scenes shared by the tiny VOC and COCO sets: pixels, per-object polygons and masks."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from dcbench.tiny.draw import Circle, Point, Style, background, draw_object, place_circles


@dataclass(frozen=True, eq=False)
class SceneObject:
    """One drawn object: class index, polygon, boolean mask and whether it is 'difficult'."""

    label: int
    points: tuple[Point, ...]
    mask: np.ndarray
    difficult: bool

    def pixel_box(self) -> tuple[int, int, int, int]:
        """Tight inclusive 0-based pixel box (x1, y1, x2, y2) of the mask."""
        ys, xs = np.nonzero(self.mask)
        return int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())


@dataclass(frozen=True, eq=False)
class Scene:
    pixels: np.ndarray  # float32 H x W x 3
    objects: tuple[SceneObject, ...]

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    def label_map(self, offset: int = 1) -> np.ndarray:
        """uint8 map: 0 background, label + offset on each object's pixels."""
        out = np.zeros((self.height, self.width), dtype=np.uint8)
        for obj in self.objects:
            out = np.where(obj.mask, np.uint8(obj.label + offset), out)
        return out


def class_cycle(rng: np.random.Generator, num_classes: int) -> Iterator[int]:
    """Endless class indices, each run of `num_classes` a fresh permutation (balanced classes)."""
    while True:
        yield from (int(c) for c in rng.permutation(num_classes))


@dataclass(frozen=True)
class SceneSpec:
    sizes: tuple[tuple[int, int], ...]  # (width, height) choices
    max_objects: int
    r_range: tuple[float, float]
    difficult_rate: float = 0.0


def render_scene(
    rng: np.random.Generator, spec: SceneSpec, styles: tuple[Style, ...], labels: Iterator[int]
) -> Scene:
    """1..max_objects non-overlapping objects; a 'difficult' one is smaller and faded.

    The first object is never difficult, so every image has a clear positive.
    """
    width, height = spec.sizes[int(rng.integers(len(spec.sizes)))]
    count = int(rng.integers(1, spec.max_objects + 1))
    circles = place_circles(rng, height, width, count, spec.r_range)
    canvas = background(rng, height, width)
    objects = []
    for j, circle in enumerate(circles):
        label = next(labels)
        difficult = j > 0 and bool(rng.random() < spec.difficult_rate)
        drawn = Circle(circle.cx, circle.cy, max(5.0, 0.6 * circle.r)) if difficult else circle
        alpha = 0.55 if difficult else 1.0
        canvas, points, mask = draw_object(canvas, styles[label], drawn, rng, alpha=alpha)
        if mask.any():
            objects.append(SceneObject(label, tuple(points), mask, difficult))
    return Scene(canvas, tuple(objects))
