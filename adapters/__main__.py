"""``python -m adapters --ckpt IN --to {torchvision,detectron2,mmseg} --out OUT``.

Reads IN in any format `adapters.load_checkpoint` knows and writes OUT atomically:
``torchvision``: the canonical state dict (torchvision ResNet-50 names, no ``fc``; load with
``strict=False`` or after removing fc); ``detectron2``: a MoCo-style ``.pkl``; ``mmseg``: a
``{"state_dict": ...}`` checkpoint for mmseg's ResNet(depth=50).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import torch

from dcbench.backbone import Backbone
from dcbench.fileio import atomic_write

from .detectron2 import write_detectron2_pkl
from .load import CheckpointError, SobelExportError, load_checkpoint
from .mmseg import write_mmseg_checkpoint


def write_torchvision(backbone: Backbone, path: Path) -> None:
    state = dict(backbone.state_dict)
    atomic_write(path, lambda fh: torch.save(state, fh))


WRITERS: Mapping[str, Callable[[Backbone, Path], None]] = {
    "torchvision": write_torchvision,
    "detectron2": write_detectron2_pkl,
    "mmseg": write_mmseg_checkpoint,
}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m adapters",
        description="Convert a ResNet-50 checkpoint for torchvision, detectron2 or mmseg.",
    )
    parser.add_argument("--ckpt", type=Path, required=True, help="input checkpoint (any supported format)")
    parser.add_argument("--to", choices=sorted(WRITERS), required=True, help="output format")
    parser.add_argument("--out", type=Path, required=True, help="output file (written atomically)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        backbone = load_checkpoint(args.ckpt)
        WRITERS[args.to](backbone, args.out)
    except (CheckpointError, SobelExportError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"wrote {args.out} ({args.to}; {len(backbone.state_dict)} tensors from {backbone.source_format} "
        f"checkpoint {args.ckpt}, sha256 {backbone.sha256[:12]}, sobel={backbone.sobel})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
