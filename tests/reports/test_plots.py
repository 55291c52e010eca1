from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from dcbench.results import Measurement, Provenance, ResultStore, rows_from_measurements
from reports.plots import lowshot_layer_curves, lowshot_layers_plot

PROV = Provenance(model="dc", checkpoint_sha256="a" * 64, benchmark="voc07_lowshot", config_hash="c", seed=0,
                  git_sha="g")


def _store(tmp_path: Path) -> ResultStore:
    rows = [Measurement("voc07", "mAP", 10.0 * i + k, layer=f"feature{i}", k=k, variant="reference")
            for i in (5, 4) for k in (1, 2, 4)]
    rows += [Measurement("voc07", "mAP", 10.0 * i + k - 0.5, layer=f"feature{i}", k=k, variant="clean")
             for i in (5, 4) for k in (2, 4)]
    store = ResultStore(tmp_path / "results.jsonl")
    store.append(rows_from_measurements(PROV, rows))
    other = dataclasses.replace(PROV, model="other")
    store.append(rows_from_measurements(other, [Measurement("voc07", "mAP", 1.0, layer="feature1", k=1,
                                                            variant="reference")]))
    return store


def test_layer_curves_hold_both_variants_per_k_in_layer_order(tmp_path: Path) -> None:
    curves = lowshot_layer_curves(_store(tmp_path).read(), "dc")
    assert list(curves) == ["feature4", "feature5"]
    f5 = curves["feature5"]
    assert f5["k"].tolist() == [1, 2, 4] and f5["reference"].tolist() == [51.0, 52.0, 54.0]
    assert f5["clean"].isna().tolist() == [True, False, False] and f5["clean"].iloc[2] == 53.5


def test_layers_plot_writes_a_deterministic_png_and_refuses_an_empty_store(tmp_path: Path) -> None:
    frame = _store(tmp_path).read()
    first = lowshot_layers_plot(frame, "dc", tmp_path / "a.png")
    second = lowshot_layers_plot(frame, "dc", tmp_path / "b.png")
    assert first.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and first.read_bytes() == second.read_bytes()
    with pytest.raises(ValueError, match="no successful voc07_lowshot rows of model 'nobody'"):
        lowshot_layers_plot(frame, "nobody", tmp_path / "c.png")
