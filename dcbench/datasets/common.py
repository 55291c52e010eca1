"""Pieces every dataset reader shares: the missing- and incomplete-data errors, image lists, RGB loading.

A dataset whose root folder is absent raises `DatasetMissingError` (the benchmark is skipped);
one whose root is there but that lacks a listed file, or whose annotations do not parse, raises
`DatasetIncompleteError` listing the first problems and their count (the benchmark fails).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image
import torch
from torch.utils.data import Dataset
from torchvision.transforms.functional import to_tensor

IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png", ".ppm", ".bmp", ".tif", ".tiff", ".webp")


class DatasetMissingError(FileNotFoundError):
    """A dataset (or one of its files) is absent; the message names the expected layout."""

    def __init__(self, dataset: str, path: str | os.PathLike[str], layout: str) -> None:
        self.dataset = dataset
        self.path = Path(path)
        self.layout = layout
        super().__init__(
            f"{dataset}: missing {self.path}\nExpected layout ({dataset}):\n{layout.rstrip()}"
        )

    def __str__(self) -> str:
        return str(self.args[0])

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.dataset, self.path, self.layout))


SHOWN = 5  # problems listed in a DatasetIncompleteError message; the rest are counted


class DatasetIncompleteError(ValueError):
    """A dataset is present but incomplete or malformed; the message lists the first problems."""

    def __init__(self, dataset: str, what: str, problems: Sequence[str], layout: str = "") -> None:
        self.dataset = dataset
        self.what = what
        self.problems = tuple(problems)
        self.layout = layout
        shown = "; ".join(self.problems[:SHOWN])
        more = f"; ... and {len(self.problems) - SHOWN} more" if len(self.problems) > SHOWN else ""
        super().__init__(f"{dataset} is incomplete: {len(self.problems)} {what}: {shown}{more}")

    def __str__(self) -> str:
        return str(self.args[0])

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.dataset, self.what, self.problems, self.layout))


def require(path: Path, dataset: str, layout: str) -> Path:
    """Return `path` (a dataset root) if it exists, else raise DatasetMissingError naming the layout."""
    if not path.exists():
        raise DatasetMissingError(dataset, path, layout)
    return path


def require_part(path: Path, dataset: str, layout: str) -> Path:
    """Return `path` (a file or folder inside a present dataset) if it exists, else DatasetIncompleteError."""
    if not path.exists():
        raise DatasetIncompleteError(dataset, "missing file(s) or folder(s) of the layout", [str(path)],
                                     layout)
    return path


def missing_paths(paths: Sequence[Path]) -> list[str]:
    """The paths of `paths` that do not exist (one stat each: seconds for a million-image list)."""
    return [str(p) for p in paths if not os.path.exists(p)]


def require_all(paths: Sequence[Path], dataset: str, what: str = "listed image(s) missing") -> None:
    """Raise DatasetIncompleteError naming the first missing paths and their count, if any."""
    missing = missing_paths(paths)
    if missing:
        raise DatasetIncompleteError(dataset, f"of {len(paths)} {what}", missing)


def read_lines(path: Path, dataset: str, layout: str) -> list[str]:
    """Non-empty, stripped lines of a text list file (DatasetIncompleteError if absent)."""
    text = require_part(path, dataset, layout).read_text()
    return [line.strip() for line in text.splitlines() if line.strip()]


def load_rgb(path: str | os.PathLike[str]) -> PIL.Image.Image:
    """Open an image file fully into memory as 8-bit RGB."""
    with PIL.Image.open(path) as img:
        img.load()
        return img.convert("RGB")


@dataclass(frozen=True, eq=False)
class ImageList:
    """A single-label classification split: image paths, int64 labels, class names by index."""

    paths: tuple[Path, ...]
    labels: np.ndarray
    classes: tuple[str, ...]

    def __post_init__(self) -> None:
        if len(self.paths) != len(self.labels):
            raise ValueError(f"{len(self.paths)} paths but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def num_classes(self) -> int:
        return len(self.classes)


class ImageListDataset(Dataset):
    """(paths, targets, transform) -> items (transform(load_rgb(path)), target).

    An integer target comes back as a Python int; an array row (multi-label) as a tensor.
    Without a transform the image becomes a float tensor in [0, 1] (C, H, W).
    """

    def __init__(
        self,
        paths: Sequence[Path],
        targets: Sequence[Any] | np.ndarray,
        transform: Callable[[PIL.Image.Image], Any] | None = None,
    ) -> None:
        if len(paths) != len(targets):
            raise ValueError(f"{len(paths)} paths but {len(targets)} targets")
        self.paths = tuple(paths)
        self.targets = targets
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        image = load_rgb(self.paths[index])
        tensor = self.transform(image) if self.transform is not None else to_tensor(image)
        target = self.targets[index]
        if isinstance(target, np.ndarray):
            return tensor, torch.from_numpy(target.copy())
        if isinstance(target, (np.integer, int)):
            return tensor, int(target)
        return tensor, target


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES
