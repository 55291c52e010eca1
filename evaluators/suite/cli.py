"""One benchmark from the command line, alone or as one launcher job:

    python -m evaluators.suite.cli linear_imagenet --ckpt CKPT --data-root DATA --work-dir W [--tiny]
    torchrun --nproc_per_node 8 -m evaluators.svm --benchmark voc07_svm --ckpt CKPT --data-root DATA
    python -m evaluators.classification --benchmark linear_places205 --ckpt CKPT ...

Every protocol family's `__main__` (evaluators.svm / classification / detection / segmentation)
hands its argv here; the protocol modules themselves never import the suite. Under torchrun every
rank runs the benchmark and only rank 0 writes rows; a benchmark whose ok rows for (checkpoint,
config) are already in the store is not run again (`--force` reruns it). `--ckpt-format` /
`--ckpt-key` read the checkpoint as run_all did. Exit status: 0 ok or skipped, 1 failed, 2 bad
arguments or checkpoint.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from dcbench.config import ConfigError
from dcbench.results import ResultStore, git_sha
from evaluators.suite.plan import finished, make_jobs
from evaluators.suite.preflight import EXIT_FAILED, EXIT_OK, EXIT_USAGE, UsageError, load_backbone
from evaluators.suite.registry import EVALUATORS
from evaluators.suite.runner import SuiteSettings, format_summary, run_suite, world

LOG = logging.getLogger(__name__)


def add_common_args(p: argparse.ArgumentParser) -> None:
    """The options every benchmark job takes (run_all passes them through to its children)."""
    p.add_argument("--ckpt", type=Path, required=True, help="checkpoint (any supported format)")
    p.add_argument("--ckpt-format", default=None, help="read --ckpt as this format instead of detecting it")
    p.add_argument("--ckpt-key", default=None, help="network of a multi-network checkpoint (DINO: student)")
    p.add_argument("--data-root", type=Path, required=True, help="folder holding the datasets (see README)")
    p.add_argument("--work-dir", type=Path, default=Path("work_dirs/run_all"))
    p.add_argument("--results", type=Path, default=None, help="store (default WORK_DIR/results.jsonl)")
    p.add_argument("--tiny", action="store_true", help="the CI-sized configs")
    p.add_argument("--model-name", default=None, help="row label (default: checkpoint file stem)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--num-workers", type=int, default=0)
    p.add_argument("--num-gpus", type=int, default=1,
                   help="GPUs of an engine that starts its own workers (detectron2's launch)")
    p.add_argument("--det-engine", choices=("auto", "mmdet", "detectron2"), default="auto",
                   help="detection engine: mmdet (the page's configs) or detectron2 (MoCo's protocol); "
                        "auto = detectron2 where importable, else mmdet")
    p.add_argument("--set", action="append", default=[], metavar="NAME.FIELD=VALUE",
                   help="override one config field (VALUE as JSON), e.g. linear_imagenet.epochs=6")


def family_benchmarks(package: str) -> tuple[str, ...]:
    """The registered benchmarks whose entry function lives in `package` (registry order)."""
    return tuple(name for name, spec in EVALUATORS.items()
                 if spec.run.__module__.startswith(package + "."))


def parse_args(argv: Sequence[str] | None, benchmarks: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    if benchmarks:
        p.add_argument("--benchmark", choices=list(benchmarks), default=benchmarks[0])
    else:
        p.add_argument("benchmark", choices=list(EVALUATORS))
    add_common_args(p)
    p.add_argument("--force", action="store_true", help="run even if the store holds its finished rows")
    p.add_argument("--git-sha", default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None, benchmarks: Sequence[str] | None = None) -> int:
    """Run one benchmark; `benchmarks` (a module's own names) turns the name into `--benchmark`."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args = parse_args(argv, benchmarks)
    try:
        job = make_jobs([args.benchmark], EVALUATORS, args.tiny, args.set)[0]
        backbone = load_backbone(args.ckpt, args.ckpt_format, args.ckpt_key)
    except (ConfigError, UsageError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USAGE
    store = ResultStore(args.results or args.work_dir / "results.jsonl")
    if not args.force and finished(store.read(), backbone.sha256, job.name, job.config_hash):
        LOG.info("%s: finished rows for this checkpoint and config are in %s; --force reruns", job.name,
                 store.path)
        return EXIT_OK
    settings = SuiteSettings(
        data_root=args.data_root, work_dir=args.work_dir, model=args.model_name or args.ckpt.stem,
        tiny=args.tiny, seed=args.seed, device=torch.device(args.device), git_sha=args.git_sha or git_sha(),
        num_workers=args.num_workers, num_gpus=args.num_gpus, det_engine=args.det_engine,
    )
    outcomes = run_suite([job.name], backbone, settings, store, configs={job.name: job.config})
    if world()[0] == 0:
        print(format_summary(outcomes))
    return EXIT_FAILED if any(o.status == "failed" for o in outcomes) else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
