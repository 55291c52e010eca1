from __future__ import annotations

from pathlib import Path

import numpy as np

from pretrain.metrics import append_log, cluster_stats, nmi, read_log, truncate_log


def test_cluster_stats_and_nmi() -> None:
    stats = cluster_stats(np.array([0, 0, 0, 2, 2, 4]), k=6)
    assert stats == {"empty_clusters": 3, "cluster_size_min": 1, "cluster_size_median": 2.0,
                     "cluster_size_max": 3}
    a = np.array([0, 0, 1, 1])
    assert nmi(a, np.array([5, 5, 7, 7])) == 1.0
    assert nmi(a, None) is None


def test_log_append_and_truncate(tmp_path: Path) -> None:
    for epoch in range(4):
        append_log(tmp_path, {"epoch": epoch, "loss": None if epoch == 0 else 1.0 / epoch})
    truncate_log(tmp_path, 1)
    assert read_log(tmp_path) == [{"epoch": 0, "loss": None}, {"epoch": 1, "loss": 1.0}]
    assert read_log(tmp_path / "none") == []
