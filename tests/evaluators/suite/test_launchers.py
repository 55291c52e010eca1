"""Launchers: the torchrun children end to end (2 processes on gloo), and their pieces."""

from __future__ import annotations

import subprocess
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from dcbench.config import ConfigError
from evaluators.suite import launchers
from evaluators.suite.launchers import (
    GONE_CHECKS,
    JobArgs,
    _ended,
    child_command,
    slurm_parameters,
    world_size,
)
from evaluators.suite.launchers import SlurmOptions as Opts
from evaluators.suite.plan import make_jobs
from evaluators.suite.registry import EVALUATORS

KEY = ["benchmark", "dataset", "layer", "variant", "metric"]


def _rows(work: Path) -> pd.DataFrame:
    return pd.read_json(work / "results.jsonl", lines=True, dtype=False)


def test_torchrun_children_write_rows_once_and_match_one_process(tiny_inputs, in_process_run, run_all_cli,
                                                                 tmp_path) -> None:
    work = tmp_path / "gpus2"
    cli = run_all_cli
    done = cli.run(cli.argv(tiny_inputs, work, "linear_imagenet,semisup_1pct",
                            cli.frozen_probe + cli.one_setting, "--gpus", "2"))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "--nproc_per_node=2" in done.stderr  # each benchmark was a torchrun child on 2 processes
    rows = _rows(work)
    assert set(rows["status"]) == {"ok"} and set(rows["world_size"]) == {2}
    assert not rows.duplicated(KEY).any()  # only rank 0 wrote, once
    assert len(rows[rows["benchmark"] == "semisup_1pct"]) == 2  # top1 + top5 of the one setting
    # the frozen probe trains nothing: 2 processes (sharded evaluation, summed counts) equal 1 process
    one = _rows(in_process_run)
    assert set(one["world_size"]) == {1}
    merged = one.merge(rows, on=KEY, suffixes=("_1", "_2"))
    assert len(merged) == len(one) == 10
    assert (merged["value_1"] == merged["value_2"]).all()
    assert (merged["config_hash_1"] == merged["config_hash_2"]).all()


def _args(**kw) -> JobArgs:
    base = dict(ckpt=Path("c.pth"), data_root=Path("d"), work_dir=Path("w"), results=Path("w/r.jsonl"),
                model="m", checkpoint_sha256="f" * 64, tiny=True, seed=0, device="cpu", git_sha="g")
    return JobArgs(**{**base, **kw})


def test_child_argv_carries_the_overrides_of_its_own_benchmark_only() -> None:
    jobs = make_jobs(["linear_imagenet", "semisup_1pct"], EVALUATORS, tiny=True,
                     overrides=["linear_imagenet.epochs=3"])
    assert jobs[0].config.epochs == 3 and jobs[0].config_hash != make_jobs(
        ["linear_imagenet"], EVALUATORS, tiny=True)[0].config_hash
    args = _args(overrides=("linear_imagenet.epochs=3",), forced=frozenset({"semisup_1pct"}))
    lin, semi = args.argv(jobs[0], 2), args.argv(jobs[1])
    assert lin[0] == "linear_imagenet" and "linear_imagenet.epochs=3" in lin and "--force" not in lin
    assert "linear_imagenet.epochs=3" not in semi and "--force" in semi and "--tiny" in semi
    assert lin[lin.index("--num-gpus") + 1] == "2"


def test_accumulation_is_set_like_any_field_and_keeps_the_cell() -> None:
    names = ["linear_imagenet", "linear_avgpool_imagenet", "semisup_1pct"]
    base = make_jobs(names, EVALUATORS, tiny=False)
    accum = make_jobs(names, EVALUATORS, tiny=False, overrides=[f"{n}.accum_steps=2" for n in names])
    assert [j.config.accum_steps for j in accum] == [2] * 3
    assert [j.config.accum_steps for j in base] == [1] * 3
    assert [j.config_hash for j in accum] == [j.config_hash for j in base]  # same protocol, same table cell


def test_overrides_are_checked() -> None:
    with pytest.raises(ConfigError, match="unknown config key"):
        make_jobs(["linear_imagenet"], EVALUATORS, tiny=True, overrides=["linear_imagenet.epoch=3"])
    with pytest.raises(ConfigError, match="not a requested benchmark"):
        make_jobs(["linear_imagenet"], EVALUATORS, tiny=True, overrides=["semisup_1pct.epochs=3"])
    with pytest.raises(ConfigError, match="NAME.field=VALUE"):
        make_jobs(["linear_imagenet"], EVALUATORS, tiny=True, overrides=["epochs=3"])


def test_processes_per_job_follow_the_reference_and_the_engine() -> None:
    jobs = {j.name: j for j in make_jobs(["linear_imagenet", "semisup_1pct", "voc07_svm", "det_coco"],
                                         EVALUATORS, tiny=False)}
    assert {n: world_size(j, None) for n, j in jobs.items()} == {
        "linear_imagenet": 8, "semisup_1pct": 4, "voc07_svm": 1, "det_coco": 8}
    assert world_size(jobs["linear_imagenet"], 2) == 2 and world_size(jobs["voc07_svm"], 8) == 1
    torchrun = child_command(["linear_imagenet"], 8, "torchrun", python="py")
    assert torchrun[:5] == ["py", "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=8"]
    # detectron2 starts its own workers: one process, told --num-gpus
    assert child_command(["det_coco", "--num-gpus", "8"], 8, "engine", python="py")[:3] == [
        "py", "-m", "evaluators.suite.cli"]


def test_slurm_parameters_ask_for_the_protocols_resources() -> None:
    jobs = {j.name: j for j in make_jobs(["linear_imagenet", "det_coco"], EVALUATORS, tiny=False)}
    opts = Opts(folder=Path("s"), partition="gpu", account="lab", constraint="a100",
                extra=("qos=high", "--exclusive=user"))
    lin = slurm_parameters(jobs["linear_imagenet"], opts, cuda=True)
    assert (lin["gpus_per_node"], lin["tasks_per_node"], lin["nodes"]) == (8, 8, 1)
    assert lin["timeout_min"] == 24 * 60 and lin["mem_gb"] == 128
    assert (lin["slurm_partition"], lin["slurm_account"], lin["slurm_constraint"]) == ("gpu", "lab", "a100")
    assert lin["slurm_additional_parameters"] == {"qos": "high", "exclusive": "user"}
    det = slurm_parameters(jobs["det_coco"], opts, cuda=True)
    assert (det["gpus_per_node"], det["tasks_per_node"], det["cpus_per_task"]) == (8, 1, 64)
    cpu_opts = Opts(folder=Path("s"), max_gpus=1, time_min=5)
    cpu = slurm_parameters(jobs["linear_imagenet"], cpu_opts, cuda=False)
    assert "gpus_per_node" not in cpu and cpu["tasks_per_node"] == 1 and cpu["timeout_min"] == 5
    with pytest.raises(ValueError, match="KEY=VALUE"):
        slurm_parameters(jobs["linear_imagenet"], Opts(folder=Path("s"), extra=("qos",)), cuda=True)


class _Handle:
    """What `_ended` reads of a submitit job: its id and the paths of its result and log."""

    def __init__(self, folder: Path) -> None:
        self.job_id = "7"
        self.paths = SimpleNamespace(result_pickle=folder / "7_result.pkl", stderr=folder / "7_log.err")


def _states(monkeypatch: pytest.MonkeyPatch, states: list[str | None]) -> list[str | None]:
    seen = list(states)
    monkeypatch.setattr(launchers, "queue_state", lambda job_id: seen.pop(0) if len(seen) > 1 else seen[0])
    monkeypatch.setattr(launchers.time, "sleep", lambda s: None)
    return seen


def test_a_job_that_drops_out_of_squeue_for_a_moment_is_still_running(monkeypatch, tmp_path) -> None:
    _states(monkeypatch, [None, None, "PENDING"])  # requeued: briefly unlisted, then pending again
    assert _ended(_Handle(tmp_path)) is None


def test_a_job_unlisted_for_every_check_without_a_result_failed(monkeypatch, tmp_path) -> None:
    seen = _states(monkeypatch, [None] * (GONE_CHECKS + 1))
    log = tmp_path / "7_log.err"
    assert _ended(_Handle(tmp_path)) == f"SLURM job 7 ended as gone without a result (log: {log})"
    assert seen == [None]  # every check was made
    _states(monkeypatch, ["CANCELLED"])
    assert "ended as CANCELLED without a result" in _ended(_Handle(tmp_path))


@pytest.mark.parametrize(("code", "out", "err", "state"), [
    (0, "RUNNING\n", "", "RUNNING"),
    (0, "", "", None),  # no longer listed
    (1, "", "slurm_load_jobs error: Invalid job id specified", None),
    (1, "", "slurm_load_jobs error: Socket timed out on send/recv operation", "UNKNOWN"),  # not a verdict
])
def test_queue_state_tells_a_failed_squeue_from_a_job_that_left(monkeypatch, code, out, err, state) -> None:
    done = subprocess.CompletedProcess([], code, stdout=out, stderr=err)
    monkeypatch.setattr(launchers.subprocess, "run", lambda *a, **k: done)
    assert launchers.queue_state("7") == state
