"""Fixtures of the SVM protocol tests: one tiny VOC2007 and one feature cache for the whole session.

Both protocols read the same VOC2007 trainval/test features; building the tree and extracting its
features once (same random-init backbone, same checkpoint id) instead of once per test module
halves the cost of the end-to-end tests.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_voc_root(tiny_tree: Path) -> Path:
    return tiny_tree  # the session's one full tree (tests/conftest.py): its VOC2007 is what the SVMs read


@pytest.fixture(scope="session")
def tiny_voc_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("svm_feature_cache")


@pytest.fixture(scope="session")
def e2e_layers() -> tuple[str, ...]:
    """The layers both end-to-end tests run (one extraction pass serves both): stem tap and last stage."""
    return ("feature1", "feature5")
