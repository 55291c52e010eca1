"""``python -m adapters --ckpt IN [--ckpt-format NAME] [--ckpt-key NET] (--detect | --to T --out OUT)``.

Reads IN in any format `adapters.load_checkpoint` knows (`--ckpt-format` forces one, `--ckpt-key`
picks a network such as DINO's ``student``).  ``--detect`` prints the format chosen and why (or, for
a refused file, what was tried and the closest format's unmatched keys).  ``--to`` writes OUT
atomically: ``torchvision``: the canonical state dict (torchvision ResNet-50 names, no ``fc``; a
Sobel backbone adds its input filter as ``sobel_layer.sobel.{0,1}.*``); ``detectron2``: a
MoCo-style ``.pkl``; ``mmseg``: a ``{"state_dict": ...}`` checkpoint for mmseg's ResNet(depth=50).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import torch

from dcbench.backbone import Backbone, fixed_sobel_filter
from dcbench.fileio import atomic_write

from .detectron2 import write_detectron2_pkl
from .formats import FORMATS
from .load import CheckpointError, SobelExportError, detect_checkpoint, load_checkpoint
from .mmseg import write_mmseg_checkpoint


def torchvision_state(backbone: Backbone) -> dict[str, torch.Tensor]:
    """The canonical tensors, plus ``sobel_layer.sobel.*`` (MMSelfSup's names) for a Sobel backbone."""
    state = dict(backbone.state_dict)
    if backbone.sobel:
        layer = backbone.sobel_filter if backbone.sobel_filter is not None else fixed_sobel_filter()
        state |= {f"sobel_layer.sobel.{k}": v for k, v in layer.items()}
    return state


def write_torchvision(backbone: Backbone, path: Path) -> None:
    state = torchvision_state(backbone)
    atomic_write(path, lambda fh: torch.save(state, fh))


WRITERS: Mapping[str, Callable[[Backbone, Path], None]] = {
    "torchvision": write_torchvision,
    "detectron2": write_detectron2_pkl,
    "mmseg": write_mmseg_checkpoint,
}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m adapters",
        description="Read a ResNet-50 checkpoint (and say which format it is), or convert it for "
                    "torchvision, detectron2 or mmseg.",
    )
    parser.add_argument("--ckpt", type=Path, required=True, help="input checkpoint (any supported format)")
    parser.add_argument("--ckpt-format", choices=sorted(FORMATS), default=None,
                        help="read the file as this format instead of detecting it")
    parser.add_argument("--ckpt-key", default=None,
                        help="which network of a checkpoint that holds several (DINO: teacher, student)")
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--detect", action="store_true", help="print the detected format and why")
    action.add_argument("--to", choices=sorted(WRITERS), help="output format")
    parser.add_argument("--out", type=Path, help="output file (written atomically); needed with --to")
    args = parser.parse_args(argv)
    if args.to is not None and args.out is None:
        parser.error("--out is required with --to")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.detect:
            print(detect_checkpoint(args.ckpt, args.ckpt_format, args.ckpt_key).reason)
            return 0
        backbone = load_checkpoint(args.ckpt, args.ckpt_format, args.ckpt_key)
        WRITERS[args.to](backbone, args.out)
    except (CheckpointError, SobelExportError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(
        f"wrote {args.out} ({args.to}; {len(backbone.state_dict)} tensors from {backbone.source_format} "
        f"checkpoint {args.ckpt}, weights sha256 {backbone.sha256[:12]}, file sha256 "
        f"{(backbone.file_sha256 or '?')[:12]}, input {backbone.input_filter_kind})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
