#!/usr/bin/env python
"""Checkpoint in, model-zoo tables out.

    python run_all.py --ckpt CKPT --data-root DATA            # the real suite
    python run_all.py --tiny --work-dir demo --readme demo/README.md   # tiny data + tiny pretrain
    python run_all.py --ckpt CKPT --data-root DATA --gpus 8            # torchrun children, 8 GPUs
    python run_all.py --ckpt CKPT --data-root DATA --launcher slurm --slurm-partition gpu  # SLURM

A benchmark whose finished rows for this checkpoint and config are in the store is not run again
(`--force NAME` reruns it).

Every benchmark's outcome lands in the results store (ok rows, or one skipped/failed row with
the reason); the run exits non-zero at the end if any benchmark failed.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import torch

from dcbench.results import ResultStore, git_sha
from evaluators.suite.registry import UnknownBenchmarkError, resolve
from evaluators.suite.scheduler import add_launcher_args

LOG = logging.getLogger("deepcluster_bench")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ckpt", type=Path, help="checkpoint: ours, torchvision, MMSelfSup 0.x/1.x or MoCo")
    p.add_argument("--data-root", type=Path, help="folder holding the datasets (see README)")
    p.add_argument("--benchmarks", default="all", help="comma-separated names, or 'all'")
    p.add_argument("--work-dir", type=Path, default=Path("work_dirs/run_all"))
    p.add_argument("--results", type=Path, default=None,
                   help="results store (default: WORK_DIR/results.jsonl)")
    p.add_argument("--readme", type=Path, default=None, help="render the tables into this README")
    p.add_argument("--model-name", default=None, help="row label (default: checkpoint file stem)")
    p.add_argument("--tiny", action="store_true",
                   help="generate tiny data (and pretrain a tiny checkpoint without --ckpt); tiny configs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--num-gpus", type=int, default=1, help="passed to detectron2's launcher")
    p.add_argument("--num-workers", type=int, default=0)
    add_launcher_args(p)
    return p.parse_args(argv)


def _prepare_tiny(args: argparse.Namespace) -> tuple[Path, Path]:
    """Tiny data under WORK_DIR/data (or --data-root), and a tiny pretrain unless --ckpt is given."""
    from dcbench.tiny import make_tiny
    from pretrain import run as pretrain_run

    data_root = args.data_root or args.work_dir / "data"
    make_tiny(data_root, seed=args.seed)
    ckpt = args.ckpt
    if ckpt is None:
        ckpt = pretrain_run("tiny", data_root, args.work_dir / "pretrain")
    return data_root, ckpt


def _model_name(args: argparse.Namespace, ckpt: Path) -> str:
    if args.model_name:
        return args.model_name
    return "deepcluster-tiny" if args.tiny and args.ckpt is None else ckpt.stem


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args = parse_args(argv)
    try:
        names = resolve([n.strip() for n in args.benchmarks.split(",") if n.strip()])
    except UnknownBenchmarkError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.tiny:
        data_root, ckpt = _prepare_tiny(args)
    elif args.ckpt is None or args.data_root is None:
        print("error: --ckpt and --data-root are required (or use --tiny)", file=sys.stderr)
        return 2
    else:
        data_root, ckpt = args.data_root, args.ckpt

    from adapters import CheckpointError, load_checkpoint
    from dcbench.config import ConfigError
    from evaluators.suite.plan import make_jobs
    from evaluators.suite.registry import EVALUATORS
    from evaluators.suite.runner import SuiteSettings, format_summary, world
    from evaluators.suite.scheduler import build_launcher, schedule

    try:
        backbone = load_checkpoint(ckpt)
    except (CheckpointError, FileNotFoundError) as err:
        print(f"error: cannot use checkpoint {ckpt}: {err}", file=sys.stderr)
        return 2
    settings = SuiteSettings(
        data_root=data_root, work_dir=args.work_dir, model=_model_name(args, ckpt),
        tiny=args.tiny, seed=args.seed, device=torch.device(args.device), git_sha=git_sha(),
        num_workers=args.num_workers, num_gpus=args.num_gpus,
    )
    store = ResultStore(args.results or args.work_dir / "results.jsonl")
    try:
        jobs = make_jobs(names, EVALUATORS, args.tiny, args.set)
        launcher = build_launcher(args, ckpt, data_root, backbone, settings, store)
    except (ConfigError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    outcomes = schedule(jobs, launcher, store, backbone.sha256, args.force)
    if world()[0] != 0:  # under torchrun: rank 0 reports
        return 1 if any(o.status == "failed" for o in outcomes) else 0
    print(format_summary(outcomes))
    print(f"results: {store.path}")
    if args.readme is not None:
        from reports.render import render_readme

        render_readme(store.path, args.readme, init=True)
        print(f"tables: {args.readme}")
    return 1 if any(o.status == "failed" for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
