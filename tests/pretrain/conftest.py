"""Tiny ImageNet-layout data for the pretrain tests: a few classes of small coloured JPEGs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import PIL.Image
import pytest


def write_tiny_imagenet(root: Path, classes: int = 4, per_class: int = 10, size: int = 40,
                        seed: int = 0) -> Path:
    """Write root/imagenet/train/<wnid>/*.JPEG: each class a base colour plus noise and a shape."""
    rng = np.random.default_rng(seed)
    for c in range(classes):
        folder = root / "imagenet" / "train" / f"n{c:08d}"
        folder.mkdir(parents=True, exist_ok=True)
        base = rng.integers(0, 256, size=3)
        for i in range(per_class):
            img = np.clip(base + rng.normal(0, 40, size=(size, size, 3)), 0, 255).astype(np.uint8)
            x0 = int(rng.integers(0, size // 2))
            img[x0:x0 + size // 3, :, c % 3] = 255
            PIL.Image.fromarray(img).save(folder / f"n{c:08d}_{i}.JPEG", quality=90)
    return root


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_imagenet(tmp_path_factory.mktemp("tiny_data"))
