"""The SLURM launcher on a real one-node cluster that the test starts (scripts/local_slurm.sh).

If the cluster cannot start, the tests FAIL with the script's reason; they never skip.
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

SLURM = ("--launcher", "slurm", "--gpus", "1")


@pytest.fixture(scope="module")
def slurm_cluster(run_all_cli) -> None:
    try:
        done = subprocess.run(["bash", str(run_all_cli.root / "scripts" / "local_slurm.sh"), "start"],
                              capture_output=True, text=True, timeout=900)
    except (OSError, subprocess.SubprocessError) as err:
        pytest.fail(f"the local SLURM cluster could not be started: {err}")
    if done.returncode != 0:
        pytest.fail(f"the local SLURM cluster did not start: {(done.stderr or done.stdout)[-2000:]}")


def _block(readme: Path, table: str) -> str:
    return readme.read_text().split(f"<!-- BEGIN {table} -->")[1].split(f"<!-- END {table} -->")[0]


def test_tiny_suite_through_slurm_renders_the_in_process_tables(slurm_cluster, tiny_inputs, in_process_run,
                                                                run_all_cli, tmp_path) -> None:
    work, cli = tmp_path / "slurm", run_all_cli
    done = cli.run(cli.argv(tiny_inputs, work, "linear_imagenet", cli.frozen_probe, *SLURM,
                            "--readme", str(work / "README.md")))
    assert done.returncode == 0, done.stderr[-3000:]
    assert re.search(r"linear_imagenet: SLURM job \d+", done.stderr)
    rows = pd.read_json(work / "results.jsonl", lines=True)
    assert set(rows["status"]) == {"ok"} and len(rows) == 10
    ours, reference = work / "README.md", in_process_run / "README.md"
    assert _block(ours, "linear_imagenet") == _block(reference, "linear_imagenet")


def _probe_epoch(work: Path) -> int:
    for path in (work / "benchmarks" / "linear_imagenet").glob("*/probe_state.pth"):
        try:
            return int(torch.load(path, map_location="cpu", weights_only=True)["epoch"])
        except (OSError, RuntimeError, EOFError, KeyError):
            return 0
    return 0


def _job_logs(work: Path) -> set[Path]:
    return set((work / "slurm").glob("*_log.err"))


def _start_and_wait_for_first_epoch(argv: list[str], cli, work: Path) -> subprocess.Popen:
    """Start run_all (output captured) and return once the probe finished an epoch, or it ended, or 300 s."""
    proc = subprocess.Popen(argv, cwd=cli.root, env=cli.env(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 300
    while _probe_epoch(work) < 1 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    return proc


def test_cancelled_job_resumes_and_finished_benchmarks_are_not_rerun(slurm_cluster, tiny_inputs, run_all_cli,
                                                                     tmp_path) -> None:
    work, cli = tmp_path / "resume", run_all_cli
    epochs = 10  # slack: scancel on a loaded machine can take seconds, the tiny epochs ~2 s each
    overrides = (f"linear_imagenet.epochs={epochs}", "linear_imagenet.milestones=[8]", *cli.one_setting)
    argv = cli.argv(tiny_inputs, work, "semisup_1pct,linear_imagenet", overrides, *SLURM)
    first = _start_and_wait_for_first_epoch(argv, cli, work)
    cancelled_after = _probe_epoch(work)
    # SIGKILL to the whole job (batch script included): submitit catches SLURM's default SIGTERM to
    # checkpoint, and the tiny remaining epochs could finish inside the kill window
    subprocess.run(["scancel", "--signal=KILL", "--full", "--name", "dcbench-linear_imagenet"], check=True,
                   timeout=60)
    out, _ = first.communicate(timeout=300)
    assert 1 <= cancelled_after < epochs, out[-3000:]
    assert first.returncode == 1, out[-3000:]  # the cancelled benchmark is a failed row
    rows = pd.read_json(work / "results.jsonl", lines=True)
    assert set(rows.loc[rows["benchmark"] == "linear_imagenet", "status"]) == {"failed"}
    assert (rows.loc[rows["benchmark"] == "semisup_1pct", "status"] == "ok").sum() == 2

    before = _job_logs(work)
    second = cli.run(argv)
    assert second.returncode == 0, second.stderr[-3000:]
    assert re.search(r"semisup_1pct +ok +2 .*finished earlier", second.stdout)
    new_logs = "".join(p.read_text() for p in _job_logs(work) - before)
    resumed = re.search(r"resuming probe training from .* after epoch (\d+)", new_logs)
    assert resumed and int(resumed.group(1)) >= cancelled_after, new_logs[-3000:]
    trained = re.findall(rf"imagenet probe epoch (\d+)/{epochs}: loss", new_logs)
    assert trained and len(trained) < epochs and int(trained[-1]) == epochs  # fewer epochs, run to the end
    assert "semisup" not in new_logs  # the finished benchmark was not submitted again
    rows = pd.read_json(work / "results.jsonl", lines=True)
    assert (rows.loc[rows["benchmark"] == "semisup_1pct", "status"] == "ok").sum() == 2  # not recomputed
    assert (rows.loc[rows["benchmark"] == "linear_imagenet", "status"] == "ok").sum() == 10


def test_preempted_job_requeues_itself_and_resumes(slurm_cluster, tiny_inputs, run_all_cli, tmp_path) -> None:
    work, cli = tmp_path / "requeue", run_all_cli
    epochs = 3
    overrides = (f"linear_imagenet.epochs={epochs}", "linear_imagenet.milestones=[2]")
    argv = cli.argv(tiny_inputs, work, "linear_imagenet", overrides, *SLURM)
    run = _start_and_wait_for_first_epoch(argv, cli, work)
    job = subprocess.run(["squeue", "-h", "-n", "dcbench-linear_imagenet", "-o", "%i"], capture_output=True,
                         text=True, check=True, timeout=60).stdout.split()
    preempted_after = _probe_epoch(work)
    assert len(job) == 1 and 1 <= preempted_after < epochs
    for signal in ("TERM", "USR2"):  # what SLURM sends a preempted job (submitit's own test path)
        subprocess.run(["scancel", f"--signal={signal}", job[0]], check=True, timeout=60)
    for _ in range(300):  # a requeued job waits for its BeginTime; this test cluster need not wait
        state = subprocess.run(["squeue", "-h", "-j", job[0], "-o", "%T %r"], capture_output=True, text=True,
                               timeout=60).stdout
        if "BeginTime" in state:
            subprocess.run(["scontrol", "update", f"jobid={job[0]}", "StartTime=now"], check=True, timeout=60)
            break
        time.sleep(0.2)
    out, _ = run.communicate(timeout=300)
    assert run.returncode == 0, out[-3000:]
    log = "".join(p.read_text() for p in _job_logs(work))
    assert "this job is preempted" in log
    resumed = re.search(r"resuming probe training from .* after epoch (\d+)", log)
    assert resumed and int(resumed.group(1)) >= preempted_after, log[-3000:]
    rows = pd.read_json(work / "results.jsonl", lines=True)
    assert list(rows["status"]).count("ok") == 10 and set(rows["status"]) == {"ok"}
