"""`python -m reports --compare MODEL`: one model's cells beside the published ones, with the difference.

Built from the same table specs as the README tables (`reports.tables.SPECS`), so a cell here is
the cell there. For each table: one line per cell, `ours`, `published` and `ours - published`
(when both are numbers), the published row's note (source, remaining protocol differences), and
which config our rows were measured with (the registry's reference config, its tiny config, or
another one, by config hash).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

import pandas as pd

from reports.published import Published, load_published, published_note
from reports.tables import (
    AVGPOOL_BEST,
    DASH,
    ENGINE_MARKS,
    LAST_EPOCH_MARK,
    SPECS,
    TableSpec,
    _pick,
    current_rows,
    fmt,
)

_MARKS = "".join(ENGINE_MARKS.values()) + LAST_EPOCH_MARK
_NUMBER = re.compile(rf"(-?\d+(?:\.\d+)?)[{_MARKS}]*")  # a value, then its marks
LABEL_COLUMNS = 2  # Model, Config


def _number(cell: str) -> float | None:
    match = _NUMBER.fullmatch(cell)
    return float(match.group(1)) if match else None


def difference(ours: str, published: str) -> str:
    """`ours - published` with a sign and two decimals, `–` unless both cells are numbers."""
    a, b = _number(ours), _number(published)
    return DASH if a is None or b is None else f"{a - b:+.2f}"


def registry_hashes() -> dict[str, dict[str, str]] | None:
    """benchmark -> {config hash: 'reference' | 'tiny'} of the registry's configs (None if unavailable)."""
    try:
        from dcbench.config import config_hash
        from evaluators.suite.registry import EVALUATORS
    except ImportError:
        return None
    return {name: {config_hash(spec.config): "reference", config_hash(spec.tiny): "tiny"}
            for name, spec in EVALUATORS.items()}


def _configs(rows: pd.DataFrame, spec: TableSpec, hashes: Mapping[str, Mapping[str, str]] | None) -> str:
    parts = []
    for benchmark in spec.benchmarks:
        found = sorted(set(rows.loc[rows["benchmark"] == benchmark, "config_hash"].dropna()))
        if not found:
            continue
        known = (hashes or {}).get(benchmark, {})
        kinds = [known.get(h, f"another config ({h})") if hashes is not None else h for h in found]
        parts.append(f"{benchmark}: {', '.join(kinds)}")
    return "; ".join(parts) if parts else "no rows"


def _extra_lines(rows: pd.DataFrame, spec: TableSpec, model: str) -> list[str]:
    """Recorded values the table does not show, e.g. the AvgPool probe's last epoch beside its best."""
    lines = []
    for benchmark in spec.benchmarks:
        if "avgpool" not in benchmark:
            continue
        last = _pick(rows, benchmark, "top1")
        last = last[(last["model"] == model) & (last["layer"] == "avgpool")]
        best = _pick(rows, benchmark, AVGPOOL_BEST)
        best = best[(best["model"] == model) & (best["layer"] == "avgpool")]
        if not last.empty or not best.empty:
            last_value = last["value"].iloc[-1] if len(last) else None
            best_value = best["value"].iloc[-1] if len(best) else None
            lines.append(f"  AvgPool ({benchmark}): last epoch {fmt(last_value)}, "
                         f"best over epochs {fmt(best_value)}")
    return lines


def compare_table(spec: TableSpec, rows: pd.DataFrame, model: str, published: Published,
                  hashes: Mapping[str, Mapping[str, str]] | None) -> list[str]:
    ours = [cells for kind, cells in spec.records(rows, model, True) if kind == "ours"]
    theirs = [cells for _, cells in spec.records(published.rows, published.label, False)]
    headers = spec.columns
    cells: list[tuple[str, str, str]] = []
    for mine, pub in zip(ours, theirs, strict=False):
        prefix = "" if len(ours) == 1 else f"{mine[LABEL_COLUMNS].split(', ')[0]}: "
        cells += [(f"{prefix}{header}", a, b) for header, a, b in
                  zip(headers[LABEL_COLUMNS:], mine[LABEL_COLUMNS:], pub[LABEL_COLUMNS:], strict=True)]
    width = max(len(name) for name, _, _ in cells) + 2
    vwidth = max(10, *(len(v) for _, a, b in cells for v in (a, b)))
    lines = [f"## {spec.table_id}", f"  our config: {_configs(rows[rows['model'] == model], spec, hashes)}",
             f"  {'cell':<{width}} {'ours':>{vwidth}} {'published':>{vwidth}} {'difference':>11}"]
    lines += [f"  {name:<{width}} {a:>{vwidth}} {b:>{vwidth}} {difference(a, b):>11}" for name, a, b in cells]
    lines += _extra_lines(rows, spec, model)
    lines.append("  " + published_note(published, spec.table_id, spec.benchmarks))
    return lines


def compare(frame: pd.DataFrame, model: str, published: Published | None = None,
            specs: Sequence[TableSpec] = SPECS) -> str:
    """The text of the comparison of `model` (its newest checkpoint) with the published run."""
    rows = current_rows(frame)
    known = sorted(rows["model"].unique()) if not rows.empty else []
    if model not in known:
        raise ValueError(f"no successful rows for model {model!r} in the store; models: {known or 'none'}")
    published = published or load_published()
    shas = rows.loc[rows["model"] == model, "checkpoint_sha256"].unique()
    same = published.same_checkpoint(str(shas[0]))
    lines = [
        f"# {model} vs {published.label} ({published.description})",
        f"checkpoint: ours {str(shas[0])[:16]}…, published …-{published.sha256_prefix}.pth: "
        + ("the same checkpoint (sha256 prefix matches)" if same else "a different checkpoint"),
        "",
    ]
    hashes = registry_hashes()
    for spec in specs:
        lines += compare_table(spec, rows, model, published, hashes) + [""]
    return "\n".join(lines)
