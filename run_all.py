#!/usr/bin/env python
"""Checkpoint in, model-zoo tables out.

    python run_all.py --ckpt CKPT --data-root DATA            # the real suite
    python run_all.py --tiny --work-dir demo --readme demo/README.md   # tiny data + tiny pretrain
    python run_all.py --ckpt CKPT --data-root DATA --gpus 8            # torchrun children, 8 GPUs
    python run_all.py --ckpt CKPT --data-root DATA --launcher slurm --slurm-partition gpu  # SLURM

A benchmark whose finished rows for this checkpoint and config are in the store is not run again
(`--force NAME` reruns it).

Everything knowable at the start (benchmark names, device, output folders, README markers, the
checkpoint, every requested dataset's files and annotations) is checked first. Every benchmark's
outcome lands in the results store (ok rows, or one skipped/failed row with the reason).
Exit codes: 0 all ok (benchmarks without data skipped); 1 a benchmark failed (incl. a dataset
present but incomplete or malformed); 2 bad invocation or input found before running (one line
on stderr; nothing written to the store or README), or every requested benchmark lacks its data
(unless --allow-missing). Tracebacks go to WORK_DIR/run_all.log (and to stderr with --verbose).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import logging
import sys
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import torch

from dcbench.fileio import sweep_stale
from dcbench.results import ResultStore, git_sha
from evaluators.suite import names as N
from evaluators.suite import preflight as P
from evaluators.suite.scheduler import add_launcher_args

if TYPE_CHECKING:
    from pretrain.config import PretrainConfig

LOG = logging.getLogger(__name__)
LOG_NAME = "run_all.log"
T = TypeVar("T")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ckpt", type=Path, help="checkpoint in any format `python -m adapters` reads (README)")
    p.add_argument("--ckpt-format", default=None, help="read --ckpt as this format instead of detecting it")
    p.add_argument("--ckpt-key", default=None, help="network of a multi-network checkpoint (DINO: student)")
    p.add_argument("--data-root", type=Path, help="folder holding the datasets (see README)")
    p.add_argument("--benchmarks", default="all", help="comma-separated names, or 'all'")
    p.add_argument("--work-dir", type=Path, default=Path("work_dirs/run_all"))
    p.add_argument("--results", type=Path, default=None,
                   help="results store (default: WORK_DIR/results.jsonl)")
    p.add_argument("--readme", type=Path, default=None, help="render the tables into this README")
    p.add_argument("--model-name", default=None, help="row label (default: checkpoint file stem)")
    p.add_argument("--tiny", action="store_true",
                   help="generate tiny data (and pretrain a tiny checkpoint without --ckpt); tiny configs")
    p.add_argument("--pretrain-config", default="tiny", metavar="SPEC",
                   help="with --tiny and no --ckpt: the pretrain config, a name, a JSON object or a .json "
                        'file (pretrain.load_config), e.g. \'{"base": "tiny", "epochs": 2}\'; default: tiny')
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--num-gpus", type=int, default=1, help="passed to detectron2's launcher")
    p.add_argument("--num-workers", type=int, default=0)
    p.add_argument("--det-engine", choices=("auto", "mmdet", "detectron2"), default="auto",
                   help="detection engine: mmdet (the page's configs) or detectron2 (MoCo's protocol); "
                        "auto = detectron2 where importable, else mmdet")
    p.add_argument("--allow-missing", action="store_true",
                   help="exit 0 even when every requested benchmark lacks its dataset (recorded as skipped)")
    p.add_argument("--verbose", action="store_true",
                   help="also print tracebacks and debug messages on stderr")
    add_launcher_args(p)
    return p.parse_args(argv)


@contextlib.contextmanager
def _process_group(device: torch.device) -> Iterator[None]:
    """Under torchrun: one process group for the whole run, which the tiny data step, the pretrainer
    and every benchmark join (dcbench.distributed.init_distributed joins an existing group).

    Destroying and re-creating it between steps is unsafe: the rendezvous store's keys are reused,
    so a rank can read another rank's address from the previous group and fail to connect.
    """
    from dcbench.distributed import init_distributed, shutdown
    from evaluators.suite.runner import world

    if world()[1] <= 1:
        yield
        return
    info = init_distributed(device)
    try:
        yield
    finally:
        shutdown(info)


@contextlib.contextmanager
def _logging(log_file: Path | None, verbose: bool) -> Iterator[None]:
    """Console (INFO; DEBUG with --verbose) and, once the work dir is known good, a DEBUG log file."""
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.DEBUG if verbose else logging.INFO)
    handlers: list[logging.Handler] = [console]
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
    root = logging.getLogger()
    old_level, old_log_level = root.level, LOG.level
    for handler in handlers:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        root.addHandler(handler)
    root.setLevel(min(root.level or logging.INFO, logging.INFO))
    LOG.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        for handler in handlers:
            root.removeHandler(handler)
            handler.close()
        root.setLevel(old_level)
        LOG.setLevel(old_log_level)


def check_readme_markers(readme: Path | None) -> None:
    """The README's table markers can take the tables (checked now, rendered at the end)."""
    if readme is None:
        return
    from reports.render import ReadmeError, check_markers

    P.check_writable(readme, "--readme", folder=False)
    try:
        check_markers(readme, init=True)
    except (ReadmeError, OSError, UnicodeDecodeError) as err:
        raise P.UsageError(f"--readme: {err}") from None


def validate_invocation(args: argparse.Namespace) -> tuple[list[str], torch.device, Path, PretrainConfig]:
    """Names, device, data root and the tiny pretrain's config, or one UsageError listing every
    problem found (one per line).

    Reads and writes nothing of the run's outputs.
    """
    problems: list[str] = []

    def check(fn: Callable[[], T]) -> T | None:
        try:
            return fn()
        except P.UsageError as err:
            problems.append(str(err))
            return None

    names = check(lambda: P.benchmark_names(args.benchmarks))
    device = check(lambda: P.check_device(args.device))
    if not args.tiny and (args.ckpt is None or args.data_root is None):
        problems.append("--ckpt and --data-root are required (or use --tiny)")
    data_root = args.data_root or args.work_dir / "data"
    work_ok = check(lambda: P.check_writable(args.work_dir, "--work-dir", folder=True) or True)
    if args.results is not None or work_ok:  # the default store lives in the work dir
        store = args.results or args.work_dir / "results.jsonl"
        check(lambda: P.check_writable(store, "--results", folder=False))
    check(lambda: check_readme_markers(args.readme))
    pretrain_cfg = check(lambda: _pretrain_config(args))
    if args.tiny:
        check(lambda: P.check_tiny_root(data_root))
        check(lambda: P.check_writable(data_root, "--data-root", folder=True))
    elif args.data_root is not None:
        check(lambda: P.check_data_root(data_root))
    if problems or names is None or device is None or pretrain_cfg is None:
        raise P.UsageError("\nerror: ".join(dict.fromkeys(problems)))
    return names, device, data_root, pretrain_cfg


def _pretrain_config(args: argparse.Namespace) -> PretrainConfig:
    """The tiny pretrain's config; a UsageError for a bad spec or one given where nothing pretrains."""
    from dcbench.config import ConfigError
    from pretrain.config import load_config

    if args.pretrain_config != "tiny" and not (args.tiny and args.ckpt is None):
        raise P.UsageError("--pretrain-config applies only to the tiny pretrain (--tiny without --ckpt)")
    try:
        return load_config(args.pretrain_config)
    except ConfigError as err:
        raise P.UsageError(f"--pretrain-config: {err}") from None


def _prepare_tiny(args: argparse.Namespace, names: list[str], data_root: Path,
                  pretrain_cfg: PretrainConfig) -> Path:
    """Tiny data for `names` at `data_root`, and a tiny pretrain unless --ckpt is given.

    Under torchrun (`torchrun --nproc_per_node N run_all.py --tiny`) rank 0 writes the data while the
    other ranks wait, then the tiny pretrain runs once, under DDP on all N ranks (pretrain.run joins
    them; rank 0 writes the checkpoints), and every rank evaluates that one checkpoint file.
    """
    from dcbench.distributed import on_main_rank
    from dcbench.tiny import make_tiny
    from pretrain import run as pretrain_run

    datasets = P.tiny_datasets(names, pretrain=args.ckpt is None)
    try:
        on_main_rank(functools.partial(make_tiny, data_root, seed=args.seed, datasets=datasets))
    except FileExistsError as err:
        raise P.UsageError(str(err)) from None
    if args.ckpt is not None:
        return args.ckpt
    return pretrain_run(pretrain_cfg, data_root, args.work_dir / "pretrain")


def _model_name(args: argparse.Namespace, ckpt: Path) -> str:
    if args.model_name:
        return args.model_name
    return "deepcluster-tiny" if args.tiny and args.ckpt is None else ckpt.stem


def write_lowshot_plot(store: ResultStore, work_dir: Path, model: str) -> Path:
    """The low-shot curves of `model` (every layer), drawn from the store into the benchmark's folder."""
    from evaluators.suite.runner import benchmark_dir
    from reports.plots import LOWSHOT_LAYERS_PNG, lowshot_layers_plot

    out = benchmark_dir(work_dir, N.VOC07_LOWSHOT) / LOWSHOT_LAYERS_PNG
    return lowshot_layers_plot(store.read(), model, out)


def _report_checks(checks: list[P.DataCheck]) -> None:
    for check in checks:
        if check.status is not None:
            first = (check.reason or "").splitlines()[0]
            print(f"{check.status}: {check.benchmark}: {first}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    """The run after invocation checks: checkpoint, datasets, benchmarks, tables; the exit code.

    Benchmarks the dataset check decided are recorded as such; the others become jobs that the
    scheduler hands to the launcher (in-process, torchrun children or SLURM), skipping every one
    whose finished rows for this checkpoint and config are in the store.
    """
    from dcbench.config import ConfigError
    from evaluators.suite.plan import make_jobs
    from evaluators.suite.registry import EVALUATORS
    from evaluators.suite.runner import SuiteSettings, format_summary, record_status, world
    from evaluators.suite.scheduler import build_launcher, schedule

    names, device, data_root, pretrain_cfg = validate_invocation(args)
    try:
        jobs = make_jobs(names, EVALUATORS, args.tiny, args.set)
    except ConfigError as err:
        raise P.UsageError(str(err)) from None
    rank = world()[0]
    main_rank = rank == 0
    log_name = LOG_NAME if main_rank else f"run_all.rank{rank}.log"  # under torchrun: a file per rank
    with _logging(args.work_dir / log_name, args.verbose), _process_group(device):
        sweep_stale(args.work_dir, recursive=True)  # temporary files of runs killed mid-write
        # a given checkpoint is refused before any tiny data or pretrain
        fmt = (args.ckpt_format, args.ckpt_key)
        backbone = P.load_backbone(args.ckpt, *fmt) if args.ckpt is not None else None
        ckpt = _prepare_tiny(args, names, data_root, pretrain_cfg) if args.tiny else args.ckpt
        backbone = backbone or P.load_backbone(ckpt, *fmt)
        checks = P.check_datasets(names, data_root, args.tiny)
        if all(c.status == "skipped" for c in checks) and not args.allow_missing:
            raise P.UsageError(P.all_missing_message(checks, data_root))
        if main_rank:
            _report_checks(checks)
        settings = SuiteSettings(
            data_root=data_root, work_dir=args.work_dir, model=_model_name(args, ckpt), tiny=args.tiny,
            seed=args.seed, device=device, git_sha=git_sha(), num_workers=args.num_workers,
            num_gpus=args.num_gpus, det_engine=args.det_engine,
        )
        store = ResultStore(args.results or args.work_dir / "results.jsonl")
        try:
            launcher = build_launcher(args, ckpt, data_root, backbone, settings, store)
        except ValueError as err:
            raise P.UsageError(str(err)) from None
        by_name = {j.name: j for j in jobs}
        decided = {c.benchmark: record_status(c.benchmark, EVALUATORS[c.benchmark], backbone, settings, store,
                                              c.status, c.reason or "",  # type: ignore[arg-type]
                                              config=by_name[c.benchmark].config)
                   for c in checks if c.status is not None}
        todo = [j for j in jobs if j.name not in decided]
        ran = schedule(todo, launcher, store, backbone.sha256, args.force)
        outcomes = sorted([*decided.values(), *ran], key=lambda o: names.index(o.benchmark))
        failed = any(o.status == "failed" for o in outcomes)
        if not main_rank:  # under torchrun: rank 0 reports
            return P.EXIT_FAILED if failed else P.EXIT_OK
        print(format_summary(outcomes))
        print(f"results: {store.path}")
        if any(o.benchmark == N.VOC07_LOWSHOT and o.status == "ok" for o in outcomes):
            print(f"low-shot plot: {write_lowshot_plot(store, args.work_dir, settings.model)}")
        if args.readme is not None:
            from reports.render import render_readme

            render_readme(store.path, args.readme, init=True)
            print(f"tables: {args.readme}")
    return P.EXIT_FAILED if failed else P.EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except P.UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return P.EXIT_USAGE
    except Exception as err:  # noqa: BLE001 - an unexpected crash outside a benchmark: one line + log
        log = args.work_dir / LOG_NAME
        if log.exists():
            with open(log, "a", encoding="utf-8") as fh:
                fh.write(traceback.format_exc())
        if args.verbose:
            traceback.print_exc()
        first = next(iter(str(err).splitlines()), "")
        where = f"; traceback in {log}" if log.exists() else ""
        print(f"error: {type(err).__name__}: {first}{where}", file=sys.stderr)
        return P.EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
