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
