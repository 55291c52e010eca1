"""run_all's scheduler: the jobs of a run, the store's finished cells skipped, the rest launched.

`build_launcher` turns run_all's options into one of the three launchers; `schedule` reads the
store once, skips every benchmark whose newest outcome for (checkpoint, config) is ok unless it
is forced, launches the rest and returns one outcome per requested benchmark, in order.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from dcbench.backbone import Backbone
from dcbench.results import ResultStore
from evaluators.suite.launchers import (
    InProcessLauncher,
    JobArgs,
    Launcher,
    SlurmLauncher,
    SlurmOptions,
    TorchrunLauncher,
)
from evaluators.suite.plan import Job, ok_rows, split_finished
from evaluators.suite.runner import Outcome, SuiteSettings

REUSED = "finished earlier: its rows are in the store (--force NAME reruns it)"


def add_launcher_args(p: argparse.ArgumentParser) -> None:
    """run_all's scheduling options."""
    p.add_argument("--launcher", choices=("local", "slurm"), default="local",
                   help="local: in this process, or torchrun children with --gpus; slurm: one job each")
    p.add_argument("--gpus", type=int, default=None, metavar="N",
                   help="local: run each benchmark as a torchrun child on up to N GPUs (several side by "
                        "side when they need fewer); slurm: cap every job at N GPUs")
    p.add_argument("--force", action="append", default=[], metavar="NAME",
                   help="rerun NAME (or 'all') even if the store holds its finished rows; repeatable")
    p.add_argument("--set", action="append", default=[], metavar="NAME.FIELD=VALUE",
                   help="override one config field of one benchmark (VALUE as JSON); changes its config hash")
    p.add_argument("--slurm-partition", default=None)
    p.add_argument("--slurm-account", default=None)
    p.add_argument("--slurm-constraint", default=None)
    p.add_argument("--slurm-opt", action="append", default=[], metavar="KEY=VALUE",
                   help="extra sbatch option, e.g. qos=high; repeatable")
    p.add_argument("--slurm-time-min", type=int, default=None, help="time limit of every job (minutes)")
    p.add_argument("--slurm-folder", type=Path, default=None, help="submitit logs (default: WORK_DIR/slurm)")


def forced_names(items: Sequence[str]) -> list[str]:
    return [n.strip() for item in items for n in item.split(",") if n.strip()]


def build_launcher(args: argparse.Namespace, ckpt: Path, data_root: Path, backbone: Backbone,
                   settings: SuiteSettings, store: ResultStore) -> Launcher:
    """In-process (default), torchrun children (--gpus N) or SLURM jobs (--launcher slurm)."""
    if args.launcher == "local" and args.gpus is None:
        return InProcessLauncher(backbone, settings, store)
    job_args = JobArgs(
        ckpt=ckpt, data_root=data_root, work_dir=settings.work_dir, results=store.path, model=settings.model,
        checkpoint_sha256=backbone.sha256, tiny=settings.tiny, seed=settings.seed,
        device=str(settings.device),
        git_sha=settings.git_sha, num_workers=settings.num_workers, overrides=tuple(args.set),
        forced=frozenset(forced_names(args.force)), ckpt_format=args.ckpt_format,
        ckpt_key=args.ckpt_key, det_engine=settings.det_engine,
    )
    if args.launcher == "local":
        if args.gpus < 1:
            raise ValueError(f"--gpus must be at least 1, got {args.gpus}")
        return TorchrunLauncher(job_args, store, args.gpus)
    opts = SlurmOptions(
        folder=args.slurm_folder or settings.work_dir / "slurm", partition=args.slurm_partition,
        account=args.slurm_account, constraint=args.slurm_constraint, extra=tuple(args.slurm_opt),
        max_gpus=args.gpus, time_min=args.slurm_time_min,
    )
    return SlurmLauncher(job_args, store, opts)


def schedule(jobs: Sequence[Job], launcher: Launcher, store: ResultStore, checkpoint_sha256: str,
             force: Sequence[str] = ()) -> list[Outcome]:
    """Launch the unfinished jobs; the finished ones become `ok` outcomes reusing their stored rows."""
    frame = store.read()
    todo, done = split_finished(jobs, frame, checkpoint_sha256, forced_names(force))
    outcomes = {
        j.name: Outcome(j.name, "ok", int((ok_rows(frame, checkpoint_sha256, j.name, j.config_hash)["status"]
                                           == "ok").sum()), 0.0, REUSED)
        for j in done
    }
    if todo:
        outcomes.update({o.benchmark: o for o in launcher.launch(todo)})
    return [outcomes[j.name] for j in jobs]
