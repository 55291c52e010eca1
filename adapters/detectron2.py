"""Export a canonical backbone as a detectron2 `.pkl`, with MoCo's converter semantics.

Key names follow moco/detection/convert-pretrain-to-detectron2.py: ``conv1`` -> ``stem.conv1``,
``bn1`` -> ``stem.conv1.norm``, ``layerN`` -> ``res{N+1}``, ``bnK`` -> ``convK.norm``,
``downsample.0`` -> ``shortcut``, ``downsample.1`` -> ``shortcut.norm``; values are numpy arrays
(``num_batches_tracked`` included, as MoCo's converter keeps it), and the pickle is
``{"model": ..., "__author__": ..., "matching_heuristics": True}`` so that detectron2's checkpointer
places the names under the model's own prefixes (``backbone.`` / ``roi_heads.`` for R50-C4,
``backbone.bottom_up.`` for R50-FPN; see `place_under`).

Sobel backbones are refused by default.  Stock detectron2's ResNet stem is a single 7x7
convolution on the normalised 3-channel image.  DeepCluster's Sobel input is a fixed grayscale
(1x1) and Sobel (3x3, zero padding 1) filter in front of a 2-channel conv1; composing the two gives a
9x9 kernel, which does not fit the 7x7 ``stem.conv1``, and even a 9x9 kernel would differ at the
image border because the Sobel output is zero-padded again by conv1.  So there is no exact
3-channel equivalent, and an approximate one would silently evaluate a different network.  With
``allow_sobel=True`` the 2-channel ``stem.conv1.weight`` is written unchanged (and the pickle says
``"sobel": True``): the reader must build a stem with the fixed filter in front of it, as our
detectron2 engine does (evaluators/detection/d2_worker.py registers ``build_sobel_resnet_backbone``
and ``build_sobel_resnet_fpn_backbone`` in detectron2's BACKBONE_REGISTRY).

The ``.pkl`` relies on detectron2's ``matching_heuristics``, which loads non-strictly.
`check_detectron2_load` closes that gap: given the built model's state dict after loading, it
checks that every backbone parameter and buffer exists in the export, under the name
`place_under` gives it, with its shape and exactly its values (`BackboneLoadError` names every
missing, unexpected, wrong-shape or differing key).  `read_detectron2_pkl` reads an export back
with an unpickler that accepts only numpy arrays.
"""

from __future__ import annotations

import os
import pickle
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dcbench.backbone import Backbone
from dcbench.fileio import atomic_write

from .load import compare_shapes, require_rgb
from .mmseg import BackboneLoadError

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
# The backbone's own tensors in each model's state dict (heads, FPN and MoCo's extra res5 norm excluded).
MODEL_BACKBONE: Mapping[str, re.Pattern[str]] = {
    "faster_rcnn_R_50_C4": re.compile(r"(backbone\.(stem|res[2-4])|roi_heads\.res5\.\d+)\."),
    "mask_rcnn_R_50_FPN": re.compile(r"backbone\.bottom_up\."),
}
_NUMPY_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),  # pickle protocol 5
    ("numpy", "ndarray"), ("numpy", "dtype"),
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


def to_detectron2(backbone: Backbone, allow_sobel: bool = False) -> dict[str, np.ndarray]:
    """{detectron2 name: numpy array} for every canonical tensor (fc is already absent).

    A Sobel backbone raises `SobelExportError` unless `allow_sobel` (see the module docstring).
    """
    if not allow_sobel:
        require_rgb(backbone, "detectron2", "its ResNet stem is a 7x7 conv on 3 RGB channels (see module "
                    "doc; only deepcluster-bench's own detectron2 engine puts the Sobel filter in front)")
    return {detectron2_key(k): v.detach().cpu().numpy() for k, v in backbone.state_dict.items()}


def detectron2_checkpoint(backbone: Backbone, allow_sobel: bool = False) -> dict[str, object]:
    return {"model": to_detectron2(backbone, allow_sobel), "__author__": AUTHOR, "matching_heuristics": True,
            "sobel": backbone.sobel}


def write_detectron2_pkl(backbone: Backbone, path: str | os.PathLike[str], allow_sobel: bool = False) -> None:
    """Pickle `detectron2_checkpoint(backbone, allow_sobel)` to `path`, atomically."""
    checkpoint = detectron2_checkpoint(backbone, allow_sobel)
    atomic_write(path, lambda fh: pickle.dump(checkpoint, fh, protocol=pickle.HIGHEST_PROTOCOL))


class _ArraysOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _NUMPY_GLOBALS or (module == "numpy.dtypes" and name.endswith("DType")):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a detectron2 weights export")


def read_detectron2_pkl(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a `write_detectron2_pkl` file back (numpy arrays and plain data only)."""
    with Path(path).open("rb") as fh:
        checkpoint = _ArraysOnly(fh).load()
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("model"), dict):
        raise ValueError(f"{path}: not a detectron2 weights export (no 'model' dict)")
    return checkpoint


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


def check_detectron2_load(model_state: Mapping[str, torch.Tensor], exported: Mapping[str, np.ndarray],
                          model: str) -> int:
    """Raise `BackboneLoadError` unless detectron2 `model`'s backbone holds exactly `exported`.

    `model_state` is the built model's state dict after detectron2 loaded the weights; every entry
    that `MODEL_BACKBONE[model]` calls backbone must come from `exported` (names as `place_under`
    places them, same shapes, equal values), and every exported tensor must have landed.
    Returns the number of tensors checked.
    """
    pattern = MODEL_BACKBONE[model]
    placed = {name: key for key, name in place_under(exported, model).items()}
    backbone = {k: tuple(v.shape) for k, v in model_state.items() if pattern.match(k)}
    report = compare_shapes(backbone, {name: tuple(exported[key].shape) for name, key in placed.items()})
    if not report.ok:
        raise BackboneLoadError(f"{model}: the checkpoint does not load every backbone tensor: "
                                f"{report.describe()}", report.missing, report.unexpected, report.mismatched)
    differ = [name for name, key in placed.items()
              if not torch.equal(model_state[name].detach().cpu(),
                                 torch.as_tensor(exported[key]).to(model_state[name].dtype))]
    if differ:
        raise BackboneLoadError(f"{model}: {len(differ)} backbone tensors differ from the checkpoint after "
                                f"detectron2 loaded it: {differ[:8]}", (), (), {})
    return len(placed)
