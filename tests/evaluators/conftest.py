"""Fixtures shared by the evaluator tests: a CPU run context and the tiny classification datasets."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from dcbench.context import RunContext
from dcbench.tiny.classification import make_imagenet, make_inat18, make_places205


@pytest.fixture
def make_ctx() -> Callable[[Path], RunContext]:
    """RunContext on the CPU (seed 0, no bars) with `root/work` as work folder and `root/cache` as cache."""

    def make(root: Path) -> RunContext:
        return RunContext(work_dir=root / "work", cache_dir=root / "cache", device=torch.device("cpu"),
                          seed=0, num_workers=0, progress=False)

    return make


@pytest.fixture(scope="module")
def cls_data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny ImageNet (+ 1 % / 10 % lists), iNaturalist2018 and Places205 in their real layouts."""
    root = tmp_path_factory.mktemp("data")
    make_imagenet(root / "imagenet", np.random.default_rng(0))
    make_inat18(root / "inaturalist2018", np.random.default_rng(1))
    make_places205(root / "places205", np.random.default_rng(2))
    return root
