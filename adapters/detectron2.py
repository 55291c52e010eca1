"""Export a canonical backbone as a detectron2 `.pkl`, with MoCo's converter semantics.

Key names follow moco/detection/convert-pretrain-to-detectron2.py: ``conv1`` -> ``stem.conv1``,
``bn1`` -> ``stem.conv1.norm``, ``layerN`` -> ``res{N+1}``, ``bnK`` -> ``convK.norm``,
``downsample.0`` -> ``shortcut``, ``downsample.1`` -> ``shortcut.norm``; values are numpy arrays
(``num_batches_tracked`` included, as MoCo's converter keeps it), and the pickle is
``{"model": ..., "__author__": ..., "matching_heuristics": True}`` so that detectron2's checkpointer
places the names under the model's own prefixes (``backbone.`` / ``roi_heads.`` for R50-C4,
``backbone.bottom_up.`` for R50-FPN; see `place_under`).

Sobel backbones are refused.  detectron2's ResNet stem is a single 7x7 convolution on the
normalised 3-channel image.  DeepCluster's Sobel input is a fixed grayscale (1x1) and Sobel (3x3,
zero padding 1) filter in front of a 2-channel conv1; composing the two gives a 9x9 kernel, which
does not fit the 7x7 ``stem.conv1``, and even a 9x9 kernel would differ at the image border because
the Sobel output is zero-padded again by conv1.  So there is no exact 3-channel equivalent, and an
approximate one would silently evaluate a different network.
"""

from __future__ import annotations

import os
import pickle
import re
from collections.abc import Iterable, Mapping

import numpy as np

from dcbench.backbone import Backbone
from dcbench.fileio import atomic_write

from .load import require_rgb

AUTHOR = "deepcluster-bench"
MODEL_PREFIXES: Mapping[str, Mapping[str, str]] = {
    # detectron2 model -> {exported stage: prefix in that model's state dict}
    "faster_rcnn_R_50_C4": {
        "stem": "backbone.", "res2": "backbone.", "res3": "backbone.", "res4": "backbone.",
        "res5": "roi_heads.",
    },
    "mask_rcnn_R_50_FPN": {
        stage: "backbone.bottom_up." for stage in ("stem", "res2", "res3", "res4", "res5")
    },
}
_LAYER = re.compile(r"layer([1-4])")
_BLOCK_MODULE = re.compile(r"(conv|bn)([1-3])")


def _block_module(parts: list[str], key: str) -> str:
    """detectron2 name of `<module>.<param>` inside a bottleneck block."""
    if parts[0] == "downsample" and len(parts) > 2 and parts[1] in ("0", "1"):
        return ".".join(["shortcut" if parts[1] == "0" else "shortcut.norm", *parts[2:]])
    found = _BLOCK_MODULE.fullmatch(parts[0])
    if found is None or len(parts) < 2:
        raise KeyError(f"not a torchvision ResNet-50 key: {key!r}")
    kind, index = found.groups()
    return ".".join([f"conv{index}" if kind == "conv" else f"conv{index}.norm", *parts[1:]])


def detectron2_key(key: str) -> str:
    """The detectron2 ResNet name of one canonical (torchvision) key, as MoCo's converter names it."""
    parts = key.split(".")
    if parts[0] == "conv1" and len(parts) == 2:
        return f"stem.conv1.{parts[1]}"
    if parts[0] == "bn1" and len(parts) == 2:
        return f"stem.conv1.norm.{parts[1]}"
    layer = _LAYER.fullmatch(parts[0])
    if layer is None or len(parts) < 4 or not parts[1].isdigit():
        raise KeyError(f"not a torchvision ResNet-50 key: {key!r}")
    return f"res{int(layer.group(1)) + 1}.{parts[1]}." + _block_module(parts[2:], key)


def to_detectron2(backbone: Backbone) -> dict[str, np.ndarray]:
    """{detectron2 name: numpy array} for every canonical tensor (fc is already absent)."""
    require_rgb(backbone, "detectron2", "its ResNet stem is a 7x7 conv on 3 RGB channels (see module doc)")
    return {detectron2_key(k): v.detach().cpu().numpy() for k, v in backbone.state_dict.items()}


def detectron2_checkpoint(backbone: Backbone) -> dict[str, object]:
    return {"model": to_detectron2(backbone), "__author__": AUTHOR, "matching_heuristics": True}


def write_detectron2_pkl(backbone: Backbone, path: str | os.PathLike[str]) -> None:
    """Pickle `detectron2_checkpoint(backbone)` to `path`, atomically."""
    checkpoint = detectron2_checkpoint(backbone)
    atomic_write(path, lambda fh: pickle.dump(checkpoint, fh, protocol=pickle.HIGHEST_PROTOCOL))


def place_under(keys: Iterable[str], model: str) -> dict[str, str]:
    """{exported key: its name in detectron2 `model`'s state dict} (what matching_heuristics finds)."""
    if model not in MODEL_PREFIXES:
        raise KeyError(f"unknown detectron2 model {model!r}; known: {sorted(MODEL_PREFIXES)}")
    prefixes = MODEL_PREFIXES[model]
    placed = {}
    for key in keys:
        stage = key.split(".", 1)[0]
        if stage not in prefixes:
            raise KeyError(f"{key!r} is not a detectron2 ResNet key (stages: {sorted(prefixes)})")
        placed[key] = prefixes[stage] + key
    return placed
