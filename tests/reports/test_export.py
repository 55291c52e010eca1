from __future__ import annotations

from pathlib import Path

import pandas as pd

from dcbench.results import ResultStore
from reports.export import write_csv
from reports.tables import current_rows


def test_csv_current_and_all_rows(tmp_path: Path, site_store: Path) -> None:
    frame = ResultStore(site_store).read()
    current = pd.read_csv(write_csv(frame, tmp_path / "current.csv"))
    every = pd.read_csv(write_csv(frame, tmp_path / "all.csv", all_rows=True))
    assert len(current) == len(current_rows(frame)) and set(current["status"]) == {"ok"}
    assert len(every) == len(frame) and {"failed", "skipped"} <= set(every["status"])
    assert list(every.columns) == list(frame.columns)
    assert every["value"].sum() == frame["value"].astype(float).sum()
