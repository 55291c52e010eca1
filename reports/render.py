"""Render the tables with Jinja2 and rewrite the marked blocks of a README.

Each table lives between `<!-- BEGIN <table_id> -->` and `<!-- END <table_id> -->`; only the text
between a pair of markers is rewritten, everything else in the README is left byte for byte.
The output depends only on the results store (sorted models, no timestamps).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import jinja2
import pandas as pd

from dcbench.fileio import atomic_write
from dcbench.results import ResultStore
from reports.tables import TABLE_IDS, Table, build_tables

TEMPLATES = Path(__file__).resolve().parent / "templates"
# Headings written before each table's markers by `--init` (the reference page's structure).
HEADINGS: Mapping[str, tuple[str, ...]] = {
    "voc_svm": ("### VOC SVM / Low-shot SVM",),
    "voc_lowshot_clean": ("#### Low-shot SVM, `clean` variant (cost chosen by cross-validation)",),
    "linear_imagenet": ("### ImageNet Linear Evaluation",),
    "linear_inat18": ("### iNaturalist2018 Linear Evaluation",),
    "linear_places205": ("### Places205 Linear Evaluation",),
    "semisup": ("#### Semi-Supervised Classification",),
    "det_voc0712": ("### Detection", "#### Pascal VOC 2007 + 2012"),
    "det_coco": ("#### COCO2017",),
    "seg_voc12aug": ("### Segmentation", "#### Pascal VOC 2012 + Aug"),
    "seg_cityscapes": ("#### Cityscapes",),
}


class ReadmeError(ValueError):
    """The README cannot take the tables (missing or malformed markers, missing file)."""


@dataclass(frozen=True)
class SectionEntry:
    table_id: str
    headings: tuple[str, ...]
    body: str


def begin_marker(table_id: str) -> str:
    return f"<!-- BEGIN {table_id} -->"


def end_marker(table_id: str) -> str:
    return f"<!-- END {table_id} -->"


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)), undefined=jinja2.StrictUndefined,
        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True, autoescape=False,
    )


def _padded(cells: Sequence[str], widths: Sequence[int]) -> list[str]:
    return [cell.ljust(width) for cell, width in zip(cells, widths, strict=True)]


def render_table(table: Table, env: jinja2.Environment | None = None) -> str:
    """The markdown of one table (columns padded to a common width), its notes and footnotes."""
    header = [str(c) for c in table.frame.columns]
    rows = [[str(cell) for cell in record] for record in table.frame.itertuples(index=False, name=None)]
    widths = [max(3, len(header[i]), *(len(row[i]) for row in rows)) for i in range(len(header))]
    template = (env or _environment()).get_template("table.md.j2")
    return template.render(
        header=_padded(header, widths), rule=["-" * w for w in widths],
        rows=[_padded(row, widths) for row in rows], notes=table.notes, footnotes=table.footnotes,
    )


def render_blocks(frame: pd.DataFrame) -> dict[str, str]:
    """table_id -> the text that goes between its markers, for every table."""
    env = _environment()
    return {table.table_id: render_table(table, env) for table in build_tables(frame)}


def _line(text: str, index: int) -> int:
    return text.count("\n", 0, index) + 1


def _marker_lines(text: str, marker: str) -> str:
    lines, at = [], text.find(marker)
    while at >= 0:
        lines.append(str(_line(text, at)))
        at = text.find(marker, at + 1)
    return ", ".join(lines)


def _span(text: str, table_id: str, name: str = "README") -> tuple[int, int] | None:
    """(end of the BEGIN marker, start of the END marker), None when neither marker is present."""
    begin, end = begin_marker(table_id), end_marker(table_id)
    n_begin, n_end = text.count(begin), text.count(end)
    if n_begin == 0 and n_end == 0:
        return None
    if n_begin == 1 and n_end == 0:
        raise ReadmeError(f"{name} line {_marker_lines(text, begin)}: {begin!r} has no matching {end!r}")
    if n_begin == 0 and n_end == 1:
        raise ReadmeError(f"{name} line {_marker_lines(text, end)}: {end!r} has no matching {begin!r}")
    if n_begin != 1 or n_end != 1:
        raise ReadmeError(f"{name}: table {table_id!r} needs one {begin!r} and one {end!r}; found "
                          f"{n_begin} (line {_marker_lines(text, begin) or '-'}) and "
                          f"{n_end} (line {_marker_lines(text, end) or '-'})")
    start, stop = text.index(begin) + len(begin), text.index(end)
    if stop < start:
        raise ReadmeError(f"{name} line {_line(text, stop)}: {end!r} comes before {begin!r} "
                          f"(line {_line(text, start)})")
    return start, stop


def _check_disjoint(spans: Mapping[str, tuple[int, int]], text: str = "", name: str = "README") -> None:
    ordered = sorted(spans.items(), key=lambda item: item[1])
    for (first, (_, stop)), (second, (start, _)) in zip(ordered, ordered[1:], strict=False):
        if start < stop:
            raise ReadmeError(f"{name} line {_line(text, start)}: the markers of tables {first!r} and "
                              f"{second!r} overlap")


def marker_spans(text: str, name: str = "README") -> dict[str, tuple[int, int]]:
    """Every table's marker span in `text`; ReadmeError (file and line) for malformed markers."""
    spans = {t: s for t in TABLE_IDS if (s := _span(text, t, name)) is not None}
    _check_disjoint(spans, text, name)
    return spans


def check_markers(readme: str | os.PathLike[str], init: bool) -> None:
    """Raise ReadmeError now if `readme` could not take the tables later (nothing is written)."""
    path = Path(readme)
    text = _read_readme(path, init)
    spans = marker_spans(text, str(path))
    missing = [t for t in TABLE_IDS if t not in spans]
    if missing and not init:
        raise ReadmeError(_missing_message(str(path), missing))


def _missing_message(name: str, missing: Sequence[str]) -> str:
    return (f"{name} lacks the markers of table(s) {', '.join(missing)} (expected "
            f"{begin_marker(missing[0])!r} ... {end_marker(missing[0])!r}); add them, or run "
            "`python -m reports --init` to append the missing headings and markers")


def init_section(blocks: Mapping[str, str], table_ids: Sequence[str], intro: bool) -> str:
    """Headings and marked blocks for `table_ids` (the whole model-zoo section when `intro`)."""
    entries = [SectionEntry(t, HEADINGS[t], blocks[t]) for t in table_ids]
    return _environment().get_template("section.md.j2").render(entries=entries, intro=intro)


def update_text(text: str, blocks: Mapping[str, str], init: bool = False, name: str = "README") -> str:
    """`text` with every marked block replaced by its rendering.

    A table whose markers are missing is an error naming it, unless `init`, which appends its
    heading and markers at the end (all of them, with an intro, when none is present).
    """
    spans = marker_spans(text, name)
    missing = [t for t in TABLE_IDS if t not in spans]
    if missing and not init:
        raise ReadmeError(_missing_message(name, missing))
    pieces: list[str] = []
    cursor = 0
    for table_id, (start, stop) in sorted(spans.items(), key=lambda item: item[1]):
        pieces += [text[cursor:start], "\n", blocks[table_id]]
        cursor = stop
    pieces.append(text[cursor:])
    updated = "".join(pieces)
    if not missing:
        return updated
    section = init_section(blocks, missing, intro=len(missing) == len(TABLE_IDS))
    return f"{updated.rstrip(chr(10))}\n\n{section}" if updated.strip() else section


def _read_store(results: str | os.PathLike[str]) -> pd.DataFrame:
    return ResultStore(results).read()


def _read_readme(readme: Path, init: bool) -> str:
    if readme.exists():
        with open(readme, encoding="utf-8", newline="") as fh:  # newline="": bytes outside markers kept
            return fh.read()
    if init:
        return ""
    raise ReadmeError(f"README {readme} does not exist (use --init to create it with the tables)")


def rendered_readme(results: str | os.PathLike[str], readme: str | os.PathLike[str],
                    init: bool = False) -> tuple[str, str]:
    """(README text now, README text with the tables rendered from the store), nothing written."""
    path = Path(readme)
    current = _read_readme(path, init)
    return current, update_text(current, render_blocks(_read_store(results)), init=init, name=str(path))


def render_readme(results: str | os.PathLike[str], readme: str | os.PathLike[str],
                  init: bool = False) -> bool:
    """Rewrite the marked blocks of `readme` from the store, atomically; True when it changed."""
    current, updated = rendered_readme(results, readme, init)
    if updated == current and Path(readme).exists():
        return False
    data = updated.encode("utf-8")
    atomic_write(readme, lambda fh: fh.write(data), mode="wb")
    return True


def check_readme(results: str | os.PathLike[str], readme: str | os.PathLike[str]) -> str:
    """A unified diff from `readme` to its fresh rendering; empty when the README is up to date."""
    current, updated = rendered_readme(results, readme)
    diff = difflib.unified_diff(
        current.splitlines(keepends=True), updated.splitlines(keepends=True),
        fromfile=f"{readme} (on disk)", tofile=f"{readme} (rendered from {results})",
    )
    return "".join(diff)
