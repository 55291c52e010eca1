"""The two errors the adapters raise (kept apart so every adapters module can import them)."""

from __future__ import annotations


class CheckpointError(ValueError):
    """The file is not a checkpoint we can read, or its keys do not map onto ResNet-50."""


class SobelExportError(ValueError):
    """A Sobel backbone (2-channel conv1) cannot be written in a 3-channel RGB format."""
