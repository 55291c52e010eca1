"""A static, offline HTML leaderboard from the results store: `python -m reports --html OUT_DIR`.

The tables come from the same builders as the README (`reports.tables.build_tables`), so the
site and the markdown never disagree. `OUT_DIR/index.html` holds every table (sortable columns,
`–` cells carry the reason on hover), the low-shot curves of every model and the pretraining
health curves of the given `log.jsonl` files; `OUT_DIR/models/<model>.html` lists every store row
of a model with its provenance. No CDN, no server: open `index.html` from disk. The folder is
built beside OUT_DIR and swapped in whole, so a failed build leaves the previous site intact.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import jinja2
import pandas as pd
from markupsafe import Markup

from reports.plots import health_plot, lowshot_plot
from reports.render import HEADINGS, TEMPLATES
from reports.tables import DASH, SPECS, Table, build_tables

# The benchmarks whose rows fill each table (a missing cell's hover names their last status).
TABLE_BENCHMARKS: Mapping[str, tuple[str, ...]] = {spec.table_id: spec.benchmarks for spec in SPECS}
# Why a `–` cell of a row that is not a store model's (`Table.kinds`) is empty.
KIND_REASONS: Mapping[str, str] = {"published": "no published value for this cell"}
PROVENANCE_COLUMNS = (
    "time", "benchmark", "dataset", "layer", "k", "variant", "metric", "value", "status", "reason",
    "engine", "world_size", "accum_steps", "checkpoint_sha256", "pretrain_config", "benchmark_version",
    "config_hash",
    "git_sha", "seed",
)
STATIC_FILES = ("site.css", "sort.js")
LOWSHOT_PNG = "lowshot.png"


@dataclass(frozen=True)
class Cell:
    text: str
    href: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class HtmlTable:
    table_id: str
    heading: str
    header: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]
    notes: tuple[Markup, ...]
    footnotes: tuple[Markup, ...]
    kinds: tuple[str, ...] = ()  # per row: ours | extra | published (only `ours` rows sort and link)


def model_slug(model: str) -> str:
    """A file-name-safe form of a model name (the per-model page is `models/<slug>.html`)."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", model).strip("-.")
    return slug or "model"


def markdown_inline(text: str) -> Markup:
    """The inline markdown of the table notes (`**bold**`, `` `code` ``, `\\|`) as safe HTML."""
    out = html.escape(text.replace("\\|", "|"), quote=False)
    out = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", out)
    out = re.sub(r"`(.+?)`", r"<code>\1</code>", out)
    return Markup(out)


def missing_reason(frame: pd.DataFrame, model: str, benchmarks: Sequence[str]) -> str:
    """Why a cell of `model` is empty: the last status of each benchmark the table reads."""
    parts = []
    for benchmark in benchmarks:
        sub = frame[(frame["model"] == model) & (frame["benchmark"] == benchmark)]
        if sub.empty:
            parts.append(f"{benchmark}: not run")
            continue
        last = sub.sort_values("time", kind="stable").iloc[-1]
        if last["status"] == "ok":
            parts.append(f"{benchmark}: ok, but no value for this cell")
        else:
            reason = str(last["reason"] or "").splitlines()[0] if pd.notna(last["reason"]) else ""
            parts.append(f"{benchmark}: {last['status']}" + (f" ({reason})" if reason else ""))
    return "; ".join(parts)


def html_table(table: Table, frame: pd.DataFrame) -> HtmlTable:
    """One README table as HTML cells: model names link to their pages, `–` cells get a reason.

    Only a store model's own rows (kind `ours`) link to a model page and look up the store for a
    missing cell's reason; the `published` row (no store rows) and labelled `extra` rows are plain.
    """
    models = set(frame["model"].astype(str))
    benchmarks = TABLE_BENCHMARKS.get(table.table_id, ())
    kinds = table.kinds or ("ours",) * len(table.frame)
    rows = []
    for kind, record in zip(kinds, table.frame.itertuples(index=False, name=None), strict=True):
        model = str(record[0]).replace("\\|", "|")
        ours = kind == "ours"
        cells = [Cell(model, href=f"models/{model_slug(model)}.html" if ours and model in models else None)]
        texts = [str(value).replace("\\|", "|") for value in record[1:]]
        reason = None  # one per row: every `–` of a row has the same reason (the row's benchmarks)
        if DASH in texts:
            reason = missing_reason(frame, model, benchmarks) if ours else KIND_REASONS.get(kind)
        cells += [Cell(text, reason=reason if text == DASH else None) for text in texts]
        rows.append(tuple(cells))
    heading = HEADINGS.get(table.table_id, (table.table_id,))[-1].lstrip("#").strip().replace("`", "")
    return HtmlTable(
        table.table_id, heading, tuple(str(c) for c in table.frame.columns), tuple(rows),
        tuple(markdown_inline(n) for n in table.notes), tuple(markdown_inline(n) for n in table.footnotes),
        tuple(kinds),
    )


def _text(value: object) -> str:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return ""
    return f"{float(value):.4f}" if isinstance(value, float) else str(value)


def provenance_rows(frame: pd.DataFrame, model: str) -> list[dict[str, object]]:
    """Every store row of `model` (oldest first) as the provenance page's cells."""
    sub = frame[frame["model"] == model].sort_values("time", kind="stable")
    columns = [c for c in PROVENANCE_COLUMNS if c in sub.columns]
    return [{"status": row["status"], "cells": [_text(row[c]) for c in columns]} for _, row in sub.iterrows()]


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)), undefined=jinja2.StrictUndefined,
        autoescape=True, trim_blocks=True, lstrip_blocks=True,
    )


def read_pretrain_log(path: Path) -> list[dict[str, object]]:
    """The per-epoch records of a pretraining `log.jsonl` (blank and torn lines are left out)."""
    records = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and "epoch" in record:
            records.append(record)
    return records


def _health(out: Path, logs: Mapping[str, Path]) -> list[dict[str, str]]:
    shown = []
    for name, log in sorted(logs.items()):
        records = read_pretrain_log(log)
        if records:
            png = f"pretrain-{model_slug(name)}.png"
            health_plot(records, out / png, title=name)
            shown.append({"name": name, "png": png})
    return shown


def _lowshot(out: Path, frame: pd.DataFrame) -> str | None:
    try:
        lowshot_plot(frame, out / LOWSHOT_PNG)
    except ValueError:  # no low-shot rows: no plot
        return None
    return LOWSHOT_PNG


def _write_pages(out: Path, frame: pd.DataFrame, store: str, logs: Mapping[str, Path]) -> None:
    env = _environment()
    (out / "static").mkdir(parents=True)
    for name in STATIC_FILES:
        shutil.copyfile(TEMPLATES / "site" / name, out / "static" / name)
    tables = [html_table(t, frame) for t in build_tables(frame)]
    index = env.get_template("site/index.html.j2").render(
        title="deepcluster-bench leaderboard", root="", store=store, tables=tables,
        lowshot_png=_lowshot(out, frame), health=_health(out, logs),
    )
    (out / "index.html").write_text(index, encoding="utf-8")
    (out / "models").mkdir()
    header = [c for c in PROVENANCE_COLUMNS if c in frame.columns]
    for model in sorted(frame["model"].astype(str).unique()):
        page = env.get_template("site/model.html.j2").render(
            title=f"{model} · deepcluster-bench", root="../", store=store, model=model, header=header,
            rows=provenance_rows(frame, model),
        )
        (out / "models" / f"{model_slug(model)}.html").write_text(page, encoding="utf-8")


def write_site(frame: pd.DataFrame, out_dir: str | os.PathLike[str], store: str = "results.jsonl",
               pretrain_logs: Mapping[str, Path] | None = None) -> Path:
    """Build the site for the store `frame` into `out_dir` (replaced whole); returns index.html."""
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        _write_pages(tmp, frame, store, pretrain_logs or {})
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return out / "index.html"
