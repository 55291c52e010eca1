from __future__ import annotations

import pytest

from evaluators.suite import names
from evaluators.suite.registry import EVALUATORS, UnknownBenchmarkError, resolve


def test_registry_covers_every_table_and_suggests_names() -> None:
    tables = {spec.table for spec in EVALUATORS.values()}
    assert tables == {"voc_svm", "linear_imagenet", "linear_inat18", "linear_places205", "semisup",
                      "det_voc0712", "det_coco", "seg_voc12aug", "seg_cityscapes"}
    assert resolve(["all"]) == list(EVALUATORS)
    with pytest.raises(UnknownBenchmarkError, match="did you mean voc07_svm"):
        resolve(["voc07_svn"])


def test_the_registry_keys_are_the_names_reports_import() -> None:
    assert tuple(EVALUATORS) == names.BENCHMARKS
