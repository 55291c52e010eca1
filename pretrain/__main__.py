"""`python -m pretrain` / `torchrun ... -m pretrain`: see the package docstring."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from dcbench.config import replace

from .config import CONFIGS, load_config
from .train import run


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m pretrain",
                                     description="DeepCluster ResNet-50 pretraining")
    parser.add_argument("--config", required=True,
                        help=f"one of {sorted(CONFIGS)}, a JSON object or a .json file")
    parser.add_argument("--data-root", required=True, type=Path, help="holds imagenet/train/<wnid>/*.JPEG")
    parser.add_argument("--work-dir", required=True, type=Path, help="checkpoints, log.jsonl, curves.png")
    parser.add_argument("--resume", type=Path, default=None,
                        help="checkpoint to resume from (default: the newest readable one in --work-dir)")
    parser.add_argument("--epochs", type=int, default=None, help="override the config's epoch count")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    cfg = load_config(args.config)
    if args.epochs is not None:
        cfg = replace(cfg, epochs=args.epochs)
    final = run(cfg, args.data_root, args.work_dir, resume=args.resume)
    print(final)
    return 0


if __name__ == "__main__":
    sys.exit(main())
