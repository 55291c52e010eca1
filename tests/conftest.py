"""Session-wide fixtures: ONE full tiny data tree for every test that only reads it.

Writing the whole dcbench.tiny tree (seed 0) takes tens of seconds on a loaded 2-core machine;
the dataset readers, the tiny-tree checks, the SVM and the segmentation tests used to write it (or
their part of it) once each. Read-only by contract: a test that changes data copies it first.
"""

from __future__ import annotations

from pathlib import Path

import pytest

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
