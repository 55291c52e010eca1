"""`python -m dcbench.tiny --out DIR [--seed 0] [--only imagenet voc2007 ...]`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from dcbench.tiny import DATASETS, make_tiny


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dcbench.tiny", description=__doc__)
    parser.add_argument("--out", type=Path, required=True, help="data root to write (created atomically)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="+", choices=sorted(DATASETS), default=None,
                        help="generate only these datasets (default: all)")
    args = parser.parse_args(argv)
    out = make_tiny(args.out, seed=args.seed, datasets=args.only, progress=True)
    print(f"tiny data root ready: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
