"""Shared by the launcher tests: tiny ImageNet, a torchvision-format checkpoint, and run_all as a child.

The probe config the launcher tests use (`FROZEN_PROBE`) trains nothing (lr 0, BN momentum 0):
its metrics are then the same on 1 or 2 processes and through every launcher, so the tests can
compare rows and tables across launchers exactly; the resume test trains for real.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dcbench.backbone import build_resnet50
from dcbench.tiny import make_tiny

ROOT = Path(__file__).resolve().parents[3]
FROZEN_PROBE = ("linear_imagenet.lr=0", "linear_imagenet.bn_momentum=0", "linear_imagenet.epochs=1",
                "linear_imagenet.milestones=[]")
ONE_SETTING = ("semisup_1pct.head_lr_mults=[1.0]",)


@pytest.fixture(scope="session")
def tiny_inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(data root with the tiny ImageNet, a random ResNet-50 saved as a torchvision state dict)."""
    root = tmp_path_factory.mktemp("suite_inputs")
    make_tiny(root / "data", seed=0, datasets=["imagenet"])
    torch.manual_seed(0)
    torch.save(build_resnet50().state_dict(), root / "resnet50_tv.pth")
    return root / "data", root / "resnet50_tv.pth"


class RunAll:
    """run_all.py as a child process (what a user types), with the constants the tests share."""

    root = ROOT
    frozen_probe = FROZEN_PROBE
    one_setting = ONE_SETTING

    @staticmethod
    def argv(inputs: tuple[Path, Path], work: Path, benchmarks: str, overrides: tuple[str, ...],
             *extra: str) -> list[str]:
        return run_all_argv(inputs, work, benchmarks, overrides, *extra)

    @staticmethod
    def env() -> dict[str, str]:
        return child_env()

    @staticmethod
    def run(argv: list[str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return run_run_all(argv, timeout)


@pytest.fixture(scope="session")
def run_all_cli() -> type[RunAll]:
    return RunAll


def run_all_argv(inputs: tuple[Path, Path], work: Path, benchmarks: str, overrides: tuple[str, ...],
                 *extra: str) -> list[str]:
    data, ckpt = inputs
    argv = [sys.executable, str(ROOT / "run_all.py"), "--tiny", "--ckpt", str(ckpt), "--data-root", str(data),
            "--work-dir", str(work), "--benchmarks", benchmarks, "--device", "cpu", *extra]
    for item in overrides:
        argv += ["--set", item]
    return argv


def child_env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def run_run_all(argv: list[str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=ROOT, env=child_env(), capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def in_process_run(tiny_inputs: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The frozen probe through the default in-process launcher, tables rendered: the reference."""
    work = tmp_path_factory.mktemp("in_process")
    done = run_run_all(run_all_argv(tiny_inputs, work, "linear_imagenet", FROZEN_PROBE,
                                    "--readme", str(work / "README.md")))
    assert done.returncode == 0, done.stderr[-3000:]
    return work
