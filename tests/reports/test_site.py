from __future__ import annotations

from pathlib import Path

import pytest

from dcbench.results import ResultStore
from reports.__main__ import main
from reports.site import markdown_inline, missing_reason, model_slug, read_pretrain_log, write_site
from reports.tables import PER_K_LABEL, TABLE_IDS


@pytest.fixture
def frame(tmp_path: Path, site_store: Path):
    return ResultStore(site_store).read()


def test_site_has_every_table_models_and_plots(tmp_path: Path, frame, pretrain_log: Path) -> None:
    log = pretrain_log
    index = write_site(frame, tmp_path / "site", pretrain_logs={"dc": log})
    text = index.read_text(encoding="utf-8")
    for table_id in TABLE_IDS:
        assert f'data-table="{table_id}"' in text
    assert 'href="models/dc.html"' in text and 'href="models/moco-v2-x.html"' in text
    assert 'src="lowshot.png"' in text and 'src="pretrain-dc.png"' in text
    assert "https://" not in text.split("</header>")[0].split("<header>")[0]  # no CDN in <head>
    assert "<script src=\"static/sort.js\">" in text
    site = tmp_path / "site"
    for name in ("lowshot.png", "pretrain-dc.png", "static/site.css", "static/sort.js", "models/dc.html"):
        assert (site / name).stat().st_size > 0


def test_published_and_extra_rows_are_plain_pinned_rows(tmp_path: Path, frame) -> None:
    from reports.site import html_table
    from reports.tables import build_tables

    svm = html_table(next(t for t in build_tables(frame) if t.table_id == "voc_svm"), frame)
    assert svm.kinds == ("ours", "extra", "ours", "published")
    by_model = {row[0].text: row for row in svm.rows}
    assert by_model["dc"][0].href == "models/dc.html"
    published, extra = by_model["published"], by_model[f"dc ({PER_K_LABEL})"]
    assert published[0].href is None and extra[0].href is None  # no store rows: no model page
    assert published[3].text == "74.26" and all(cell.reason is None for cell in extra)
    assert {cell.reason for cell in published if cell.text == "–"} <= {"no published value for this cell"}
    text = write_site(frame, tmp_path / "site").read_text(encoding="utf-8")
    assert text.count('<tr class="row-published" data-pinned>') == len(TABLE_IDS) + 1  # semisup: 1% and 10%
    assert 'href="models/published.html"' not in text
    assert not (tmp_path / "site" / "models" / "published.html").exists()
    empty = write_site(frame.iloc[0:0], tmp_path / "empty").read_text(encoding="utf-8")
    assert empty.count("No results in the store yet.") == len(TABLE_IDS)  # the published row alone


def test_missing_cells_say_why(tmp_path: Path, frame) -> None:
    text = write_site(frame, tmp_path / "site").read_text(encoding="utf-8")
    assert 'title="det_coco: failed (RuntimeError: out of memory)"' in text
    assert 'title="seg_cityscapes: skipped (cityscapes: missing DATA/cityscapes/leftImg8bit)"' in text
    assert missing_reason(frame, "dc", ("semisup_1pct",)) == "semisup_1pct: not run"
    assert missing_reason(frame, "dc", ("voc07_lowshot",)) == "voc07_lowshot: ok, but no value for this cell"


def test_model_page_lists_every_row_with_provenance(tmp_path: Path, frame) -> None:
    write_site(frame, tmp_path / "site")
    page = (tmp_path / "site" / "models" / "dc.html").read_text(encoding="utf-8")
    assert page.count("<tr class=\"status-") == int((frame["model"] == "dc").sum())
    for value in ("a" * 64, "c0ffee", "abc123", "0.1.0", "2024-01-02T00:00:00+00:00", "status-failed"):
        assert value in page


def test_a_failed_build_keeps_the_previous_site(tmp_path: Path, frame,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "site"
    write_site(frame, out)
    before = (out / "index.html").read_bytes()

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr("reports.site._lowshot", boom)
    with pytest.raises(RuntimeError):
        write_site(frame, out)
    assert (out / "index.html").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_helpers() -> None:
    assert model_slug("moco v2|x") == "moco-v2-x"
    html = "<strong>Best</strong> <code>k</code> a|b &lt;i&gt;"
    assert str(markdown_inline("**Best** `k` a\\|b <i>")) == html


def test_torn_pretrain_log_line_is_left_out(tmp_path: Path, pretrain_log: Path) -> None:
    assert [r["epoch"] for r in read_pretrain_log(pretrain_log)] == [0, 1, 2]


def test_cli_exports_leave_the_readme_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, site_store: Path,
                                            pretrain_log: Path) -> None:
    store = site_store
    log = pretrain_log
    monkeypatch.chdir(tmp_path)
    (tmp_path / "README.md").write_text("untouched\n")
    code = main(["--results", str(store), "--html", "site", "--pretrain-log", f"dc={log}",
                 "--metafile", "m.yml", "--csv", "r.csv"])
    assert code == 0
    assert (tmp_path / "README.md").read_text() == "untouched\n"
    assert (tmp_path / "site" / "index.html").exists() and (tmp_path / "m.yml").exists()
    assert main(["--results", str(store), "--html", "site", "--pretrain-log", "nope.jsonl"]) == 2
