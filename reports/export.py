"""The results store as CSV (pandas): the current rows the tables show, or every row."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from dcbench.fileio import atomic_write_text
from reports.tables import current_rows


def write_csv(frame: pd.DataFrame, path: str | os.PathLike[str], all_rows: bool = False) -> Path:
    """Write the store `frame` as CSV: every row with `all_rows`, else each model's current ok rows."""
    rows = frame if all_rows else current_rows(frame)
    atomic_write_text(path, rows.to_csv(index=False, lineterminator="\n"))
    return Path(path)
