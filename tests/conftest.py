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
