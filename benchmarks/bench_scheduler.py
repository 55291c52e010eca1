"""Per-job overhead of the launchers against running the same jobs in-process (prints its figures).

    OMP_NUM_THREADS=1 python benchmarks/bench_scheduler.py            # in-process vs torchrun children
    OMP_NUM_THREADS=1 python benchmarks/bench_scheduler.py --slurm    # + SLURM (scripts/local_slurm.sh start)

The jobs are every registered benchmark on an empty data root: each records a `skipped` row at
once (its dataset is missing), so a job's time is the launcher's own cost: starting the process
(python + torch + the registry imports, loading the checkpoint), torchrun's agent for multi-process
jobs, SLURM's queueing and submitit's pickles, and reading the outcome back from the store. A
random ResNet-50 saved as a torchvision state dict is the checkpoint. Skipped rows never count as
finished, so every launcher runs every job. `mean job s` is a job's own time from start (or
submission) to its outcome, queueing included; `overhead/job s` is that minus the in-process mean.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from adapters import load_checkpoint
from dcbench.backbone import build_resnet50
from dcbench.results import ResultStore
from evaluators.suite.launchers import (
    InProcessLauncher,
    JobArgs,
    SlurmLauncher,
    SlurmOptions,
    TorchrunLauncher,
)
from evaluators.suite.plan import make_jobs
from evaluators.suite.registry import EVALUATORS
from evaluators.suite.runner import SuiteSettings


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--slurm", action="store_true", help="also through SLURM (a running cluster)")
    p.add_argument("--gpus", type=int, default=2, help="slots of the torchrun launcher (CPU processes)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "data").mkdir()
        torch.save(build_resnet50().state_dict(), root / "ckpt.pth")
        backbone = load_checkpoint(root / "ckpt.pth")
        jobs = make_jobs(list(EVALUATORS), EVALUATORS, tiny=True)
        settings = SuiteSettings(data_root=root / "data", work_dir=root / "w", model="bench", tiny=True,
                                 seed=0,
                                 device=torch.device("cpu"), git_sha="bench")
        job_args = JobArgs(ckpt=root / "ckpt.pth", data_root=root / "data", work_dir=root / "w",
                           results=root / "w" / "r.jsonl", model="bench", checkpoint_sha256=backbone.sha256,
                           tiny=True, seed=0, device="cpu", git_sha="bench")
        store = ResultStore(job_args.results)
        launchers = {
            "in-process": InProcessLauncher(backbone, settings, store),
            f"torchrun children (--gpus {args.gpus})": TorchrunLauncher(job_args, store, args.gpus),
        }
        if args.slurm:
            launchers["slurm (submitit)"] = SlurmLauncher(job_args, store, SlurmOptions(
                folder=root / "slurm", max_gpus=1, poll_s=0.2))
        print(f"{len(jobs)} jobs (every benchmark, empty data root -> skipped rows)")
        print(f"{'launcher':<28} {'wall s':>7} {'wall/job s':>10} {'mean job s':>10} {'overhead/job s':>14}")
        base = None
        for name, launcher in launchers.items():
            start = time.perf_counter()
            outcomes = launcher.launch(jobs)
            wall = time.perf_counter() - start
            assert all(o.status == "skipped" for o in outcomes), [(o.benchmark, o.reason) for o in outcomes]
            mean = sum(o.seconds for o in outcomes) / len(outcomes)
            base = base if base is not None else mean
            print(f"{name:<28} {wall:>7.1f} {wall / len(jobs):>10.2f} {mean:>10.2f} {mean - base:>14.2f}")


if __name__ == "__main__":
    main()
