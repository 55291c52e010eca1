"""Session-wide fixtures: ONE full tiny data tree for every test that only reads it; a torchrun runner.

Writing the whole dcbench.tiny tree (seed 0) takes tens of seconds on a loaded 2-core machine;
the dataset readers, the tiny-tree checks, the SVM and the segmentation tests used to write it (or
their part of it) once each. Read-only by contract: a test that changes data copies it first.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from dcbench.backbone import Backbone, build_resnet50
from dcbench.tiny import make_tiny

# `make test` runs on pytest-xdist workers (`-n 2`).  Tests that must share a worker, by node id
# prefix: those reading the session's one `run_all.py --tiny` (else every worker would run it), and
# the SLURM tests (one local cluster with few slots: side by side they queue behind each other).
# (xdist's own `--dist loadgroup` marks do not group under pytest 9.2, which derives node ids anew.)
XDIST_GROUPS: dict[str, tuple[str, ...]] = {
    "tiny_run_all": ("tests/pretrain/test_learning.py::", "tests/test_run_all.py::test_tiny_pipeline_fills",
                     "tests/test_run_all.py::test_checkpoint_is_reused"),
    "slurm": ("tests/evaluators/suite/test_slurm.py::",),
}


# Under xdist the longest tests start first, so that no worker is left with one of them at the end
# (an order only: by group name or node id prefix; every other test keeps its collection order).
START_FIRST = ("tiny_run_all", "tests/test_kill.py::", "slurm", "tests/evaluators/suite/test_launchers.py::",
               "tests/test_run_all.py::test_torchrun")


def _start_rank(nodeid: str) -> int:
    group = xdist_group(nodeid)
    return next((i for i, key in enumerate(START_FIRST) if group == key or nodeid.startswith(key)),
                len(START_FIRST))


def xdist_group(nodeid: str) -> str:
    """The worker group of a test: its XDIST_GROUPS name, else the test alone."""
    return next((name for name, prefixes in XDIST_GROUPS.items() if nodeid.startswith(prefixes)), nodeid)


def _parallel() -> bool:
    """Whether this process is one of several xdist workers."""
    return int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1


def pytest_configure(config: pytest.Config) -> None:
    """One thread per xdist worker (and for the processes it starts): two workers of two threads
    each would oversubscribe the 2 cores."""
    if _parallel():
        os.environ["OMP_NUM_THREADS"] = "1"
        torch.set_num_threads(1)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """XDIST_GROUPS must name every test that reads the session's tiny run_all; under xdist the
    START_FIRST tests go first."""
    strays = [item.nodeid for item in items if "tiny_run_all" in getattr(item, "fixturenames", ())
              and xdist_group(item.nodeid) != "tiny_run_all"]
    if strays:
        raise pytest.UsageError(f"tests/conftest.py XDIST_GROUPS['tiny_run_all'] misses {strays}")
    if _parallel():
        items.sort(key=lambda item: _start_rank(item.nodeid))  # stable: the rest keep their order


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """xdist's scope scheduler with the scopes of `xdist_group`: a group goes to one worker whole."""
    from xdist.scheduler import LoadScopeScheduling

    class GroupScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return xdist_group(nodeid)

    return GroupScheduling(config, log)


@pytest.fixture(scope="session")
def tiny_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The full tiny data root (every dataset, seed 0), shared by the whole session; never modify it."""
    return make_tiny(tmp_path_factory.mktemp("tiny_tree") / "data", seed=0)


@pytest.fixture(scope="session")
def tiny_run_all(tiny_tree: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """(work dir, exit code) of ONE `run_all.py --tiny` on the shared tree: the tiny DeepCluster
    pretrain exactly as `make demo` runs it (TINY config, the tree's ImageNet), then three benchmarks.

    The end-to-end test checks its rows and tables; the pretrain learning test reads its pretrain
    log (the same run it used to repeat on its own).
    """
    import run_all

    work = tmp_path_factory.mktemp("run_all")
    code = run_all.main([
        "--tiny", "--data-root", str(tiny_tree), "--work-dir", str(work), "--readme", str(work / "README.md"),
        "--benchmarks", "voc07_svm,linear_places205,det_voc0712",
    ])
    return work, code


@pytest.fixture(scope="session")
def random_backbone() -> Backbone:
    """A ResNet-50 at its seed-0 random init (RGB), for tests that need *a* backbone (SVM, segmentation)."""
    torch.manual_seed(0)
    return Backbone(state_dict=build_resnet50().state_dict(), sobel=False, sha256="ab" * 32,
                    source_format="test")


RankRunner = Callable[[Path, int, Path], list[dict]]


@pytest.fixture(scope="session")
def torchrun_ranks() -> RankRunner:
    """run(script, nproc, out): `torchrun --standalone --nproc_per_node nproc script out` on gloo (CPU,
    one thread per rank); asserts exit 0 and returns each rank's `out/rank<r>.json`, in rank order."""
    repo = Path(__file__).resolve().parents[1]

    def run(script: Path, nproc: int, out: Path) -> list[dict]:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(repo), "CUDA_VISIBLE_DEVICES": ""}
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               str(script), str(out)]
        done = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-4000:]
        return [json.loads((out / f"rank{r}.json").read_text()) for r in range(nproc)]

    return run
