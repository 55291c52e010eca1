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


def _require_resnet50(obj: object) -> None:
    """A pretrain checkpoint of another trunk (the learning check's resnet18) is refused by name, before
    format detection would report it as a ResNet-50 with missing and mis-shaped keys."""
    if not isinstance(obj, Mapping) or obj.get("format") != PRETRAIN_FORMAT:
        return
    config = obj.get("config")
    arch = config.get("arch", "resnet50") if isinstance(config, Mapping) else "resnet50"
    if arch != "resnet50":
        raise CheckpointError(f"pretrain checkpoint has a {arch} trunk (config arch={arch!r}); the "
                              "evaluators and exports take ResNet-50 trunks only (arch resnet18 is for "
                              "benchmarks/learning_check.py)")


def detect_checkpoint(
    path: str | os.PathLike[str], fmt: str | None = None, network: str | None = None
) -> Detection:
    """Which format `path` is read as, and why (raises `CheckpointError` naming what was tried)."""
    path = Path(path)
    loaded = read_checkpoint_file(path)
    try:
        _require_resnet50(loaded.obj)
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
        _require_resnet50(loaded.obj)
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


def require_fixed_sobel(backbone: Backbone, engine: str) -> None:
    """Raise `SobelExportError` when `backbone` carries its own Sobel filter (an MMSelfSup 1.x model whose
    `sobel_layer` was re-initialised): `engine`'s registered Sobel backbone applies the fixed filter only,
    and evaluating with another filter than the one it was trained with would be silently wrong."""
    if backbone.sobel and backbone.sobel_filter is not None:
        raise SobelExportError(
            f"this Sobel checkpoint carries its own (re-initialised) Sobel filter; {engine}'s Sobel backbone "
            "applies the fixed grayscale + Sobel filter only, so it cannot be evaluated there faithfully "
            "(the frozen-feature and fine-tuning benchmarks do use the carried filter)"
        )


def require_rgb(backbone: Backbone, target: str, why: str) -> None:
    """Raise `SobelExportError` for a Sobel backbone: `target` has only a 3-channel RGB stem."""
    if backbone.sobel:
        raise SobelExportError(
            f"cannot export a Sobel backbone (conv1 takes 2 Sobel channels) to {target}: {why}"
        )
