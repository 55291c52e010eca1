from __future__ import annotations

from pathlib import Path

from pretrain.plot import plot_curves


def test_plot_writes_png_with_missing_values(tmp_path: Path) -> None:
    rows = [{"epoch": 0, "loss": None, "kmeans_objective": 3.0, "nmi_gt": None},
            {"epoch": 1, "loss": 2.0, "kmeans_objective": 2.5, "nmi_prev": 0.4, "empty_clusters": 0}]
    out = plot_curves(rows, tmp_path / "curves.png")
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert [p.name for p in tmp_path.iterdir()] == ["curves.png"]
