"""Read a ResNet-50 checkpoint of any supported format into the canonical `Backbone`.

`load_checkpoint(path, fmt=None, network=None)`: adapters.safe_load reads the file (safetensors,
or torch.load(weights_only=True) with the mmengine / metadata allowlists -- never
weights_only=False), adapters.detect picks the format from the table in adapters.formats (or takes
``fmt`` = ``--ckpt-format``; ``network`` = ``--ckpt-key`` picks e.g. DINO's student) and says why,
and adapters.convert maps the weights onto the torchvision ResNet-50 names with strict key
accounting, reporting every problem at once.

The `Backbone` is identified by its weights (`Backbone.sha256` = `dcbench.backbone.weights_sha256`
of the canonical tensors, and of a checkpoint-specific Sobel filter), so the same weights saved twice
get the same id; the file's own sha256 is kept as provenance (`Backbone.file_sha256`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

from dcbench.backbone import Backbone, weights_sha256
from dcbench.fileio import sha256_file

from .convert import convert_state
from .detect import Detection, detect
from .errors import CheckpointError, SobelExportError
from .formats import FORMATS, PRETRAIN_FORMAT
from .keys import Rule, canonical_shapes, compare_shapes, map_keys
from .safe_load import read_checkpoint_file

__all__ = [
    "FORMATS", "PRETRAIN_FORMAT", "CheckpointError", "Rule", "SobelExportError", "canonical_shapes",
    "compare_shapes", "detect_checkpoint", "load_checkpoint", "map_keys", "require_rgb",
]
LOG = logging.getLogger(__name__)


def _pretrain_config(obj: Mapping[str, object], sobel: bool) -> str:
    name, flag = obj.get("config_name"), obj.get("sobel")
    if not isinstance(name, str):
        raise CheckpointError(f"pretrain checkpoint 'config_name' is {name!r}, expected a string")
    if flag is not sobel:
        raise CheckpointError(f"pretrain checkpoint says sobel={flag!r} but conv1 implies sobel={sobel}")
    return name


def detect_checkpoint(
    path: str | os.PathLike[str], fmt: str | None = None, network: str | None = None
) -> Detection:
    """Which format `path` is read as, and why (raises `CheckpointError` naming what was tried)."""
    path = Path(path)
    loaded = read_checkpoint_file(path)
    try:
        return detect(loaded.obj, fmt, network, loaded.skipped)
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from exc


def load_checkpoint(
    path: str | os.PathLike[str], fmt: str | None = None, network: str | None = None
) -> Backbone:
    """Read `path` in any supported format (or as `fmt`) into the canonical `Backbone`."""
    path = Path(path)
    loaded = read_checkpoint_file(path)
    try:
        found = detect(loaded.obj, fmt, network, loaded.skipped)
        converted = convert_state(found.state, FORMATS[found.format].networks[found.network], found.format)
        config = None
        if found.format == PRETRAIN_FORMAT and isinstance(loaded.obj, Mapping):
            config = _pretrain_config(loaded.obj, converted.sobel)
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from exc
    LOG.info("checkpoint %s: %s", path, found.reason)
    source = found.format if found.network == "default" else f"{found.format}:{found.network}"
    return Backbone(
        state_dict=converted.state_dict, sobel=converted.sobel,
        sha256=weights_sha256(converted.state_dict, converted.sobel_filter), source_format=source,
        pretrain_config=config, file_sha256=sha256_file(path), sobel_filter=converted.sobel_filter,
    )


def require_rgb(backbone: Backbone, target: str, why: str) -> None:
    """Raise `SobelExportError` for a Sobel backbone: `target` has only a 3-channel RGB stem."""
    if backbone.sobel:
        raise SobelExportError(
            f"cannot export a Sobel backbone (conv1 takes 2 Sobel channels) to {target}: {why}"
        )
