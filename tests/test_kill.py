"""kill -9 at any point loses nothing: run_all is killed by PID during pretraining and during a
benchmark, at several points, and the same command run again completes, reusing finished work.

The tiny pretrain cut to two epochs of one pass each (`--pretrain-config`) and the cheapest benchmark
(linear_places205, tiny config) keep this fast. Kill
points: (1) while the first pretrain checkpoint is being written (its temporary file exists), (2)
after it is complete, during the second epoch, (3) in the middle of the benchmark (after its first
probe epoch), (4) right after the benchmark's rows are appended; then (5) a run to the end.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from dcbench.config import replace
from dcbench.fileio import TMP_PATTERN
from dcbench.results import KEY_COLUMNS, ResultStore
from dcbench.tiny import make_tiny
from pretrain.config import TINY
from reports.render import render_blocks

REPO = Path(__file__).resolve().parents[1]
BENCHMARK = "linear_places205"
RUN_LIMIT_S = 300.0
PRETRAIN = replace(TINY, epochs=2, reassign=1.0)  # kill points need a second epoch, nothing more
PRETRAIN_SPEC = json.dumps({"base": "tiny", "epochs": PRETRAIN.epochs, "reassign": PRETRAIN.reassign})


def _run(argv: list[str], work: Path, kill_when: Callable[[], bool] | None) -> int:
    """Run run_all in a child process; SIGKILL it by PID as soon as `kill_when()` holds."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    with open(work.parent / "console.log", "ab") as out:
        proc = subprocess.Popen([sys.executable, str(REPO / "run_all.py"), *argv], cwd=REPO, env=env,
                                stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + RUN_LIMIT_S
        while proc.poll() is None:
            if kill_when is not None and kill_when():
                os.kill(proc.pid, signal.SIGKILL)
                return proc.wait()
            if time.monotonic() > deadline:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                pytest.fail(f"run_all did not end within {RUN_LIMIT_S:.0f} s")
            time.sleep(0.01)
        return proc.returncode


def _tmp_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob(".*.tmp") if TMP_PATTERN.match(p.name)]


def _log_has(work: Path, text: str) -> bool:
    log = work / "run_all.log"
    return log.exists() and text in log.read_text(encoding="utf-8", errors="replace")


def _ok_rows(store: Path) -> list[dict[str, object]]:
    return [r for r in ResultStore(store).scan().records if r["status"] == "ok"] if store.exists() else []


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny(tmp_path_factory.mktemp("killdata") / "data", seed=0, datasets=["imagenet", "places205"])


def test_kill_9_anywhere_loses_nothing(data_root: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    pretrain = work / "pretrain"
    store, readme = work / "results.jsonl", work / "README.md"
    argv = ["--tiny", "--data-root", str(data_root), "--work-dir", str(work), "--readme", str(readme),
            "--benchmarks", BENCHMARK, "--device", "cpu", "--pretrain-config", PRETRAIN_SPEC]

    # (1) mid-write of the first checkpoint: its temporary file is left behind
    writing = lambda: any(p.name.startswith(".epoch_0001.pth.") for p in _tmp_files(pretrain))  # noqa: E731
    assert _run(argv, work, writing) == -signal.SIGKILL
    assert _tmp_files(pretrain) and not (pretrain / "epoch_0001.pth").exists()

    # (2) after the first epoch's checkpoint is complete, during the second epoch
    assert _run(argv, work, lambda: (pretrain / "epoch_0001.pth").exists()) == -signal.SIGKILL
    epoch_1 = pretrain / "assignments" / "epoch_0001.npy"  # epoch 1 writes it; later runs must not
    first = epoch_1.stat().st_mtime_ns
    assert not [p for p in _tmp_files(pretrain) if p.name.startswith(".epoch_0001.pth.")]  # swept

    # (3) in the middle of the benchmark, after its first probe epoch
    mid = lambda: _log_has(work, "places205 probe epoch 1/2: loss")  # noqa: E731
    assert _run(argv, work, mid) == -signal.SIGKILL
    final = pretrain / f"epoch_{PRETRAIN.epochs:04d}.pth"
    done = final.stat().st_mtime_ns
    assert epoch_1.stat().st_mtime_ns == first  # resumed, epoch 1 not redone
    assert _ok_rows(store) == []

    # (4) right after the benchmark's rows are appended (or at the end, if it gets there first)
    assert _run(argv, work, lambda: bool(_ok_rows(store))) in (-signal.SIGKILL, 0)

    # (5) the same command to the end
    assert _run(argv, work, None) == 0
    assert final.stat().st_mtime_ns == done  # the finished pretrain is reused, not redone
    epochs = [json.loads(line)["epoch"] for line in (pretrain / "log.jsonl").read_text().splitlines()]
    assert epochs == list(range(PRETRAIN.epochs + 1))
    assert _tmp_files(work) == [] and _tmp_files(data_root.parent) == []

    scan = ResultStore(store).scan()
    assert scan.bad_lines == []  # no torn row
    ok = [r for r in scan.records if r["status"] == "ok"]
    assert {r["benchmark"] for r in ok} == {BENCHMARK} and len(ok) % 10 == 0 and ok
    by_key: dict[tuple[object, ...], set[object]] = {}
    for row in ok:
        by_key.setdefault(tuple(row[k] for k in KEY_COLUMNS), set()).add(row["value"])
    assert all(len(values) == 1 for values in by_key.values())  # duplicates agree: no table changes
    frame = ResultStore(store).read()
    unique = frame.drop_duplicates(subset=list(KEY_COLUMNS), keep="last")
    assert render_blocks(frame) == render_blocks(unique)
    assert "deepcluster-tiny" in readme.read_text()
