"""One launcher interface, three implementations: how the scheduler's jobs get run.

- `InProcessLauncher`: every benchmark in this process, one after another (default; CPU, tests,
  and `torchrun ... run_all.py`, where the protocols join the process group of the ranks).
- `TorchrunLauncher` (`--gpus N`): each benchmark as a child process on its own GPUs, through
  torchrun (`torch.distributed.run --standalone`) when it asks for more than one process; jobs
  whose protocol needs fewer GPUs than are free run side by side.
- `SlurmLauncher` (`--launcher slurm`): each benchmark its own SLURM job through submitit, with
  the GPUs, time limit and memory of its `Resources`. The job function is `Checkpointable`: on a
  time-out or preemption submitit requeues it and the benchmark resumes from its own state files.

The children run `python -m evaluators.suite.cli NAME ...` and write their rows themselves
(rank 0); a launcher reads the outcome back from the store, and records a `failed` row itself
only when a child died without writing any.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from submitit.helpers import Checkpointable

from dcbench.backbone import Backbone
from dcbench.results import Provenance, ResultStore, status_row
from evaluators.suite.plan import Job, ok_rows
from evaluators.suite.runner import Outcome, SuiteSettings, run_suite

LOG = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[2]


class Launcher(Protocol):
    def launch(self, jobs: Sequence[Job]) -> list[Outcome]:
        """Run `jobs` (none of them finished) and return one outcome per job, in job order."""
        ...


@dataclass(frozen=True)
class JobArgs:
    """What every child job is told: the options of `evaluators.suite.cli`."""

    ckpt: Path
    data_root: Path
    work_dir: Path
    results: Path
    model: str
    checkpoint_sha256: str
    tiny: bool
    seed: int
    device: str
    git_sha: str
    num_workers: int = 0
    overrides: tuple[str, ...] = ()
    forced: frozenset[str] = field(default_factory=frozenset)
    ckpt_format: str | None = None  # so a child reads the checkpoint as the parent did
    ckpt_key: str | None = None
    det_engine: str = "auto"

    def argv(self, job: Job, num_gpus: int = 1) -> list[str]:
        out = [job.name, "--ckpt", str(self.ckpt.resolve()), "--data-root", str(self.data_root.resolve()),
               "--work-dir", str(self.work_dir.resolve()), "--results", str(self.results.resolve()),
               "--model-name", self.model, "--seed", str(self.seed), "--device", self.device,
               "--num-workers", str(self.num_workers), "--num-gpus", str(num_gpus), "--git-sha", self.git_sha,
               "--det-engine", self.det_engine]
        for flag, value in (("--ckpt-format", self.ckpt_format), ("--ckpt-key", self.ckpt_key)):
            if value is not None:
                out += [flag, value]
        out += [a for item in self.overrides if item.startswith(job.name + ".") for a in ("--set", item)]
        if self.tiny:
            out.append("--tiny")
        if job.name in self.forced:
            out.append("--force")
        return out


def _now() -> str:
    """The store's timestamp format (UTC, seconds): rows a job writes are at or after it."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def world_size(job: Job, max_gpus: int | None) -> int:
    """The job's process (GPU) count: its protocol's reference count, capped at `max_gpus`."""
    return max(1, min(job.resources.gpus, max_gpus) if max_gpus else job.resources.gpus)


def collect(job: Job, args: JobArgs, store: ResultStore, since: str, seconds: float,
            failure: str | None) -> Outcome:
    """The job's outcome from the rows it wrote since `since`; a failed row when it wrote none."""
    rows = ok_rows(store.read(), args.checkpoint_sha256, job.name, job.config_hash, since)
    if rows.empty:
        prov = Provenance(model=args.model, checkpoint_sha256=args.checkpoint_sha256, benchmark=job.name,
                          config_hash=job.config_hash, seed=args.seed, git_sha=args.git_sha)
        reason = failure or "the job ended without writing any row"
        store.append([status_row(prov, "failed", reason)])
        return Outcome(job.name, "failed", 0, seconds, reason)
    statuses = set(rows["status"])
    status = "failed" if "failed" in statuses else ("ok" if "ok" in statuses else "skipped")
    reasons = [r for r in rows["reason"] if isinstance(r, str)]
    ok = int((rows["status"] == "ok").sum())
    return Outcome(job.name, status, ok, seconds, reasons[0] if reasons else None)


# ----------------------------------------------------------------------------- in-process
@dataclass
class InProcessLauncher:
    backbone: Backbone
    settings: SuiteSettings
    store: ResultStore

    def launch(self, jobs: Sequence[Job]) -> list[Outcome]:
        configs = {j.name: j.config for j in jobs}
        return run_suite([j.name for j in jobs], self.backbone, self.settings, self.store, configs=configs)


# ----------------------------------------------------------------------------- local GPUs (torchrun)
def child_command(argv: Sequence[str], nproc: int, spawn: str, python: str = sys.executable) -> list[str]:
    """`torchrun --standalone --nproc_per_node N -m evaluators.suite.cli ...`, or one plain process."""
    if nproc > 1 and spawn == "torchrun":
        return [python, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
                "-m", "evaluators.suite.cli", *argv]
    return [python, "-m", "evaluators.suite.cli", *argv]


def child_env(slots: Sequence[int], cuda: bool, base: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)  # a child is its own world, also when run_all itself runs under torchrun
    if cuda:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(s) for s in slots)
    return env


@dataclass
class _Running:
    job: Job
    proc: subprocess.Popen[bytes]
    slots: list[int]
    since: str
    start: float
    log: Path


@dataclass
class TorchrunLauncher:
    """Each job on its own slice of `gpus` local GPUs (CPU processes on gloo when device is cpu)."""

    args: JobArgs
    store: ResultStore
    gpus: int
    poll_s: float = 0.2

    def launch(self, jobs: Sequence[Job]) -> list[Outcome]:
        free, pending, running, done = list(range(self.gpus)), list(jobs), [], {}
        while pending or running:
            for job in list(pending):
                need = world_size(job, self.gpus)
                if need <= len(free):
                    slots, free = free[:need], free[need:]
                    running.append(self._start(job, slots))
                    pending.remove(job)
            time.sleep(self.poll_s)
            for run in [r for r in running if r.proc.poll() is not None]:
                running.remove(run)
                free = sorted(free + run.slots)
                rc = run.proc.returncode
                failure = f"the job exited with code {rc}; log: {run.log}" if rc else None
                done[run.job.name] = collect(run.job, self.args, self.store, run.since,
                                             time.perf_counter() - run.start, failure)
                LOG.info("%s ended (exit %s) on slot(s) %s", run.job.name, rc, run.slots)
        return [done[j.name] for j in jobs]

    def _start(self, job: Job, slots: list[int]) -> _Running:
        cmd = child_command(self.args.argv(job, len(slots)), len(slots), job.resources.spawn)
        log = self.args.work_dir / "logs" / f"{job.name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        LOG.info("%s on slot(s) %s: %s (log %s)", job.name, slots, " ".join(cmd), log)
        since = _now()
        with open(log, "ab") as fh:
            proc = subprocess.Popen(cmd, cwd=ROOT, env=child_env(slots, self.args.device.startswith("cuda")),
                                    stdout=fh, stderr=subprocess.STDOUT)
        return _Running(job, proc, slots, since, time.perf_counter(), log)


# ----------------------------------------------------------------------------- SLURM (submitit)
@dataclass(frozen=True)
class SlurmOptions:
    folder: Path
    partition: str | None = None
    account: str | None = None
    constraint: str | None = None
    extra: tuple[str, ...] = ()  # sbatch options KEY=VALUE (e.g. qos=high), without the dashes
    max_gpus: int | None = None  # cap per job (--gpus N)
    time_min: int | None = None  # overrides every job's time limit
    poll_s: float = 1.0


def parse_extra(items: Sequence[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.lstrip("-").partition("=")
        if not sep or not key:
            raise ValueError(f"--slurm-opt {item!r}: expected KEY=VALUE, e.g. qos=high")
        out[key.replace("-", "_")] = value
    return out


def slurm_parameters(job: Job, opts: SlurmOptions, cuda: bool) -> dict[str, Any]:
    """submitit AutoExecutor parameters of one job (GPUs, tasks, CPUs, memory, time, queue)."""
    n = world_size(job, opts.max_gpus)
    tasks = n if job.resources.spawn == "torchrun" else 1
    params: dict[str, Any] = {
        "name": f"dcbench-{job.name}", "nodes": 1, "tasks_per_node": tasks,
        "cpus_per_task": max(1, job.resources.cpus_per_gpu * n // tasks) if cuda else 1,
        "mem_gb": job.resources.mem_gb,
        "timeout_min": opts.time_min or max(1, math.ceil(job.resources.hours * 60)),
        "slurm_signal_delay_s": 120,
        "slurm_setup": [f"export PYTHONPATH={ROOT}:${{PYTHONPATH:-}}", f"cd {ROOT}"],
    }
    if cuda:
        params["gpus_per_node"] = n
    for key, value in (("partition", opts.partition), ("account", opts.account),
                       ("constraint", opts.constraint)):
        if value:
            params[f"slurm_{key}"] = value
    if opts.extra:
        params["slurm_additional_parameters"] = parse_extra(opts.extra)
    return params


class BenchmarkTask(Checkpointable):
    """The function a SLURM job runs: one benchmark through the job CLI, on every task of the job.

    Requeued as is on time-out / preemption (submitit's Checkpointable); the benchmark's own state
    files (keyed by checkpoint and config) carry the progress.
    """

    def __init__(self, argv: Sequence[str]) -> None:
        self.argv = list(argv)

    def __call__(self) -> int:
        import submitit

        from evaluators.suite import cli

        if submitit.JobEnvironment().num_tasks > 1:
            submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
        return cli.main(self.argv)


@dataclass
class SlurmLauncher:
    args: JobArgs
    store: ResultStore
    opts: SlurmOptions

    def launch(self, jobs: Sequence[Job]) -> list[Outcome]:
        import submitit

        cuda = self.args.device.startswith("cuda")
        submitted = []
        for job in jobs:
            executor = submitit.AutoExecutor(folder=self.opts.folder, cluster="slurm")
            executor.update_parameters(**slurm_parameters(job, self.opts, cuda))
            n = world_size(job, self.opts.max_gpus)
            since = _now()
            handle = executor.submit(BenchmarkTask(self.args.argv(job, n)))
            LOG.info("%s: SLURM job %s (%d GPU(s))", job.name, handle.job_id, n if cuda else 0)
            submitted.append((job, handle, since, time.perf_counter()))
        outcomes: dict[str, Outcome] = {}
        while len(outcomes) < len(submitted):
            for job, handle, since, start in submitted:
                if job.name in outcomes:
                    continue
                failure = _ended(handle)
                if failure is None:
                    continue
                outcomes[job.name] = collect(job, self.args, self.store, since, time.perf_counter() - start,
                                             failure or None)
            time.sleep(self.opts.poll_s)
        return [outcomes[j.name] for j in jobs]


GONE_CHECKS = 5
FINAL_STATES = {"COMPLETED", "CANCELLED", "FAILED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL",
                "DEADLINE", "SPECIAL_EXIT", "REVOKED"}


def queue_state(job_id: str) -> str | None:
    """The job's state as squeue shows it; None once SLURM no longer lists it."""
    try:
        out = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True,
                             timeout=60, check=False)
    except (OSError, subprocess.SubprocessError):
        return "UNKNOWN"  # keep waiting: the controller may be briefly unreachable
    if out.returncode != 0 and "invalid job id" not in out.stderr.lower():
        return "UNKNOWN"  # squeue itself failed (e.g. a controller timeout): not a verdict on the job
    state = out.stdout.strip().split()
    return state[0].split("+")[0] if out.returncode == 0 and state else None


def _listed(state: str | None) -> bool:
    return state is not None and state not in FINAL_STATES


def _ended(handle: Any) -> str | None:
    """None while the job runs or is requeued; '' when it returned 0; else why it failed.

    Reads submitit's result file and squeue, never waits on `sacct` (clusters without accounting,
    like scripts/local_slurm.sh, have none): a job that left the queue without a result failed.
    """
    if handle.paths.result_pickle.exists():
        try:
            code = handle.result()
        except Exception as err:  # noqa: BLE001 - a crashed job is an outcome, not a crash
            first = " ".join(str(err).strip().splitlines()[:3])
            return f"SLURM job {handle.job_id}: {type(err).__name__}: {first}"
        return "" if code == 0 else f"SLURM job {handle.job_id} exited with code {code}"
    state = queue_state(handle.job_id)
    # Not listed (or final) is only believed for GONE_CHECKS s in a row: the result file of a job that
    # just completed may land a moment after squeue drops it, and a job being requeued (preemption)
    # can drop out of squeue for a moment.
    for _ in range(GONE_CHECKS):
        if _listed(state):
            return None
        time.sleep(1.0)
        if handle.paths.result_pickle.exists():
            return _ended(handle)
        state = queue_state(handle.job_id)
    log = handle.paths.stderr
    return f"SLURM job {handle.job_id} ended as {state or 'gone'} without a result (log: {log})"
