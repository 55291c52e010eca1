"""Drawing primitives for the tiny datasets: class-coloured, textured polygons on noisy ground.

Every object is a polygon, so its box, its COCO polygon and its mask come from one source and
always agree.  Objects are placed inside non-overlapping circles, so no object hides another.
"""

from __future__ import annotations

import colorsys
import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import PIL.Image
import PIL.ImageDraw

Rgb = tuple[int, int, int]
Point = tuple[float, float]
SHAPES = ("circle", "square", "triangle", "diamond", "hexagon", "star", "cross", "pentagon")
TEXTURES = ("solid", "hstripes", "vstripes", "checker", "diagonal")
JPEG_QUALITY = 92


@dataclass(frozen=True)
class Style:
    """How one class looks: outline shape, fill colour and fill texture."""

    shape: str
    colour: Rgb
    texture: str


@dataclass(frozen=True)
class Circle:
    """Where an object may be drawn: the polygon stays inside this circle."""

    cx: float
    cy: float
    r: float


def palette(n: int, offset: float = 0.0) -> tuple[Rgb, ...]:
    """`n` well separated saturated colours (hue steps; alternating value for neighbours)."""
    colours = []
    for i in range(n):
        hue = (offset + i / n) % 1.0
        value = 0.95 if i % 2 == 0 else 0.7
        red, green, blue = colorsys.hsv_to_rgb(hue, 0.85, value)
        colours.append((round(red * 255), round(green * 255), round(blue * 255)))
    return tuple(colours)


def class_styles(n: int, shape_offset: int = 0, hue_offset: float = 0.0) -> tuple[Style, ...]:
    """Distinct (shape, colour, texture) for `n` classes."""
    colours = palette(n, hue_offset)
    return tuple(
        Style(
            shape=SHAPES[(i + shape_offset) % len(SHAPES)],
            colour=colours[i],
            texture=TEXTURES[(i // len(SHAPES) + i) % len(TEXTURES)],
        )
        for i in range(n)
    )


def _regular(
    n: int, cx: float, cy: float, r: float, angle: float, start: float = -math.pi / 2
) -> list[Point]:
    thetas = [start + angle + 2 * math.pi * k / n for k in range(n)]
    return [(cx + r * math.cos(t), cy + r * math.sin(t)) for t in thetas]


def _rotate(points: list[Point], cx: float, cy: float, angle: float) -> list[Point]:
    c, s = math.cos(angle), math.sin(angle)
    return [(cx + (x - cx) * c - (y - cy) * s, cy + (x - cx) * s + (y - cy) * c) for x, y in points]


def polygon(shape: str, circle: Circle, angle: float = 0.0) -> list[Point]:
    """Vertices of `shape` inscribed in `circle`, rotated by `angle` radians."""
    cx, cy, r = circle.cx, circle.cy, circle.r
    if shape == "circle":
        return _regular(20, cx, cy, r, angle)
    if shape == "square":
        return _regular(4, cx, cy, r, angle, start=-math.pi / 4)
    if shape == "triangle":
        return _regular(3, cx, cy, r, angle)
    if shape == "pentagon":
        return _regular(5, cx, cy, r, angle)
    if shape == "hexagon":
        return _regular(6, cx, cy, r, angle, start=0.0)
    if shape == "diamond":
        return _rotate([(cx, cy - r), (cx + 0.55 * r, cy), (cx, cy + r), (cx - 0.55 * r, cy)], cx, cy, angle)
    if shape == "star":
        outer = _regular(5, cx, cy, r, angle)
        inner = _regular(5, cx, cy, 0.45 * r, angle, start=-math.pi / 2 + math.pi / 5)
        return [p for pair in zip(outer, inner, strict=True) for p in pair]
    if shape == "cross":
        a, b = 0.3 * r, 0.99 * r * math.sqrt(1.0 - 0.09)  # corner (a, b) stays inside r
        arm = [(a, -b), (a, -a), (b, -a), (b, a), (a, a), (a, b), (-a, b), (-a, a), (-b, a), (-b, -a),
               (-a, -a), (-a, -b)]
        return _rotate([(cx + x, cy + y) for x, y in arm], cx, cy, angle)
    raise ValueError(f"unknown shape {shape!r}; known: {SHAPES}")


def rasterize(points: list[Point], height: int, width: int) -> np.ndarray:
    """Boolean mask of a polygon (PIL's fill rule)."""
    img = PIL.Image.new("L", (width, height), 0)
    PIL.ImageDraw.Draw(img).polygon(points, fill=1)
    return np.asarray(img, dtype=bool)


def background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Mildly noisy, low-saturation ground with a soft gradient (float32 H x W x 3)."""
    grey = rng.uniform(80.0, 175.0)
    tint = rng.uniform(-18.0, 18.0, size=3)
    ys = np.linspace(-1.0, 1.0, height, dtype=np.float32)[:, None, None]
    xs = np.linspace(-1.0, 1.0, width, dtype=np.float32)[None, :, None]
    slope = rng.uniform(-15.0, 15.0, size=2)
    base = grey + tint[None, None, :] + slope[0] * ys + slope[1] * xs
    noise = rng.normal(0.0, 7.0, size=(height, width, 3))
    return (base + noise).astype(np.float32)


def texture(kind: str, colour: Rgb, height: int, width: int, period: int) -> np.ndarray:
    """A full-canvas fill of `colour` modulated by the pattern `kind` (float32 H x W x 3)."""
    ys, xs = np.mgrid[0:height, 0:width]
    half = max(period // 2, 1)
    if kind == "solid":
        pattern = np.zeros((height, width), dtype=bool)
    elif kind == "hstripes":
        pattern = (ys // half) % 2 == 0
    elif kind == "vstripes":
        pattern = (xs // half) % 2 == 0
    elif kind == "checker":
        pattern = ((ys // half) + (xs // half)) % 2 == 0
    elif kind == "diagonal":
        pattern = ((xs + ys) // half) % 2 == 0
    else:
        raise ValueError(f"unknown texture {kind!r}; known: {TEXTURES}")
    shade = np.where(pattern, 0.55, 1.0).astype(np.float32)[:, :, None]
    return np.asarray(colour, dtype=np.float32)[None, None, :] * shade


def paint(
    canvas: np.ndarray, mask: np.ndarray, style: Style, rng: np.random.Generator, alpha: float = 1.0
) -> np.ndarray:
    """A new canvas with `style` painted where `mask` (colour jittered a little per object)."""
    height, width = mask.shape
    red, green, blue = np.clip(np.asarray(style.colour) + rng.uniform(-14.0, 14.0, size=3), 0, 255)
    colour: Rgb = (int(red), int(green), int(blue))
    fill = texture(style.texture, colour, height, width, period=int(rng.integers(4, 7)))
    fill = fill + rng.normal(0.0, 5.0, size=fill.shape).astype(np.float32)
    blended = alpha * fill + (1.0 - alpha) * canvas
    return np.where(mask[:, :, None], blended, canvas).astype(np.float32)


def draw_object(
    canvas: np.ndarray, style: Style, circle: Circle, rng: np.random.Generator, alpha: float = 1.0
) -> tuple[np.ndarray, list[Point], np.ndarray]:
    """Paint one object; returns (new canvas, polygon, boolean mask)."""
    angle = float(rng.uniform(-0.25, 0.25))
    points = polygon(style.shape, circle, angle)
    mask = rasterize(points, canvas.shape[0], canvas.shape[1])
    return paint(canvas, mask, style, rng, alpha), points, mask


def place_circles(
    rng: np.random.Generator, height: int, width: int, count: int, r_range: tuple[float, float],
    tries: int = 60,
) -> list[Circle]:
    """Up to `count` non-overlapping circles fully inside the image (at least one)."""
    circles: list[Circle] = []
    for _ in range(tries):
        if len(circles) == count:
            break
        r = float(rng.uniform(*r_range))
        cand = Circle(float(rng.uniform(r + 1, width - r - 2)), float(rng.uniform(r + 1, height - r - 2)), r)
        if all(math.hypot(cand.cx - c.cx, cand.cy - c.cy) > cand.r + c.r + 2 for c in circles):
            circles.append(cand)
    return circles


def to_uint8(canvas: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(canvas), 0, 255).astype(np.uint8)


def encode_jpeg(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    PIL.Image.fromarray(to_uint8(image)).save(buf, format="JPEG", quality=JPEG_QUALITY)
    return buf.getvalue()


def write_jpeg(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_jpeg(image))


def write_png(path: Path, image: PIL.Image.Image) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG")


def class_image(rng: np.random.Generator, size: int, style: Style) -> np.ndarray:
    """One centred-ish object of `style` on noisy ground (float32 size x size x 3)."""
    r = float(rng.uniform(0.26, 0.40)) * size
    jitter = size * 0.5 - r - 1
    cx = size / 2 + float(rng.uniform(-jitter, jitter))
    cy = size / 2 + float(rng.uniform(-jitter, jitter))
    canvas, _, _ = draw_object(background(rng, size, size), style, Circle(cx, cy, r), rng)
    return canvas
