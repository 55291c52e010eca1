from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from dcbench.results import (
    Measurement,
    Provenance,
    ResultRow,
    ResultStore,
    rows_from_measurements,
    status_row,
)
from reports.__main__ import main
from reports.plots import lowshot_plot
from reports.render import ReadmeError, begin_marker, check_markers, check_readme, end_marker, render_readme
from reports.tables import TABLE_IDS

PROLOGUE = "# Project\n\nHand-written text, kept as is: <!-- not a marker -->\n"
EPILOGUE = "\n## After the tables\n\nMore hand-written text.\n"
PROV = Provenance(model="dc", checkpoint_sha256="a" * 64, benchmark="voc07_svm", config_hash="c", seed=0,
                  git_sha="g", pretrain_config="deepcluster_resnet50_8xb64-steplr-200e_in1k")


def _bench(benchmark: str, measurements: list[Measurement], model: str = "dc",
           time: str = "2024-01-01T00:00:00+00:00") -> list[ResultRow]:
    prov = dataclasses.replace(PROV, benchmark=benchmark, model=model)
    return [dataclasses.replace(r, time=time) for r in rows_from_measurements(prov, measurements)]


def sample_rows() -> list[ResultRow]:
    svm = [Measurement("voc07", "mAP", v, layer=f"feature{i}") for i, v in enumerate([40, 71.234, 60], 3)]
    lowshot = [Measurement("voc07", "mAP", 20 + k / 10, layer="feature4", k=k, variant=variant)
               for k in (1, 2, 4, 8) for variant in ("reference", "clean")]
    det = [Measurement("voc0712", m, v, variant="mean", engine="torchvision")
           for m, v in (("AP", 40.5), ("AP50", 60.5))]
    failed = dataclasses.replace(status_row(dataclasses.replace(PROV, benchmark="det_coco"), "failed", "x"),
                                 time="2024-01-01T00:00:00+00:00")
    return (_bench("voc07_svm", svm) + _bench("voc07_lowshot", lowshot) + _bench("det_voc0712", det)
            + _bench("seg_cityscapes", [Measurement("cityscapes", "mIoU", 50.0)], model="b_model") + [failed])


def _write_store(path: Path, rows: list[ResultRow]) -> Path:
    with open(path, "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(dataclasses.asdict(r), sort_keys=True) + "\n" for r in rows)
    return path


def _marked_readme(path: Path, table_ids: tuple[str, ...] | list[str] = TABLE_IDS) -> Path:
    blocks = "".join(f"\n{begin_marker(t)}\nstale\n{end_marker(t)}\n" for t in table_ids)
    path.write_text(PROLOGUE + blocks + EPILOGUE, encoding="utf-8")
    return path


@pytest.fixture()
def store(tmp_path: Path) -> Path:
    return _write_store(tmp_path / "results.jsonl", sample_rows())


def test_render_fills_every_block_and_keeps_the_rest(tmp_path: Path, store: Path) -> None:
    readme = _marked_readme(tmp_path / "README.md")
    assert render_readme(store, readme) is True
    text = readme.read_text(encoding="utf-8")
    assert text.startswith(PROLOGUE) and text.endswith(EPILOGUE)
    assert "stale" not in text
    for table_id in TABLE_IDS:
        block = text.split(begin_marker(table_id))[1].split(end_marker(table_id))[0]
        assert block.startswith("\n| Model")
    dc_row = next(line for line in text.splitlines() if line.startswith("| dc "))
    assert [c.strip() for c in dc_row.split("|")[1:6]] == [
        "dc", "deepcluster_resnet50_8xb64-steplr-200e_in1k", "feature4", "71.23", "20.10"]
    assert "| published " in text
    assert "40.50†" in text and "embedded torchvision detection engine" in text
    assert render_readme(store, readme) is False  # nothing left to change
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md", "results.jsonl"]  # no temp files


def test_rendering_is_byte_identical_across_runs(tmp_path: Path, store: Path) -> None:
    first, second = _marked_readme(tmp_path / "a.md"), _marked_readme(tmp_path / "b.md")
    render_readme(store, first)
    render_readme(store, second)
    assert first.read_bytes() == second.read_bytes()
    render_readme(store, first)
    assert first.read_bytes() == second.read_bytes()


def test_check_passes_after_render_and_fails_after_the_store_changes(
    tmp_path: Path, store: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    readme = _marked_readme(tmp_path / "README.md")
    assert main(["--results", str(store), "--readme", str(readme), "--check"]) == 1  # stale placeholders
    assert main(["--results", str(store), "--readme", str(readme)]) == 0
    assert main(["--results", str(store), "--readme", str(readme), "--check"]) == 0
    assert check_readme(store, readme) == ""
    before = readme.read_bytes()
    newer = _bench("seg_voc12aug", [Measurement("voc12aug", "mIoU", 42.0)], time="2040-01-01T00:00:00+00:00")
    ResultStore(store).append(newer)
    capsys.readouterr()
    assert main(["--results", str(store), "--readme", str(readme), "--check"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("---") and "+| dc " in out and "42.00" in out
    assert readme.read_bytes() == before  # --check writes nothing


def test_missing_marker_is_an_error_naming_it(
    tmp_path: Path, store: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    readme = _marked_readme(tmp_path / "README.md", [t for t in TABLE_IDS if t != "det_coco"])
    before = readme.read_bytes()
    with pytest.raises(ReadmeError, match="det_coco"):
        render_readme(store, readme)
    assert main(["--results", str(store), "--readme", str(readme)]) == 2
    assert "det_coco" in capsys.readouterr().err
    assert readme.read_bytes() == before
    bad = tmp_path / "bad.md"
    bad.write_text(f"{end_marker('voc_svm')}\n{begin_marker('voc_svm')}\n", encoding="utf-8")
    with pytest.raises(ReadmeError, match="voc_svm"):
        render_readme(store, bad, init=True)


def test_init_appends_the_section_then_renders_in_place(tmp_path: Path, store: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(PROLOGUE, encoding="utf-8")
    assert main(["--results", str(store), "--readme", str(readme), "--init"]) == 0
    text = readme.read_text(encoding="utf-8")
    assert text.startswith(PROLOGUE) and text.endswith(f"{end_marker('seg_cityscapes')}\n")
    positions = [text.index(begin_marker(t)) for t in TABLE_IDS]
    assert positions == sorted(positions)
    assert "### VOC SVM / Low-shot SVM" in text and "#### Cityscapes" in text
    assert main(["--results", str(store), "--readme", str(readme), "--init"]) == 0
    assert readme.read_text(encoding="utf-8") == text  # idempotent: no second section
    created = tmp_path / "demo" / "README.md"
    assert render_readme(store, created, init=True) is True
    assert created.read_text(encoding="utf-8").startswith("## Models and Benchmarks")


def test_bad_cli_input(tmp_path: Path, store: Path) -> None:
    assert main(["--results", str(tmp_path / "nope.jsonl"), "--readme", str(tmp_path / "R.md")]) == 2
    assert main(["--results", str(store), "--readme", str(tmp_path / "R.md")]) == 2  # no README, no --init


def test_lowshot_plot_writes_a_deterministic_png(tmp_path: Path, store: Path) -> None:
    frame = ResultStore(store).read()
    first, second = lowshot_plot(frame, tmp_path / "a.png"), lowshot_plot(frame, tmp_path / "b.png")
    assert first.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert first.read_bytes() == second.read_bytes()
    with pytest.raises(ValueError, match="voc07_lowshot"):
        lowshot_plot(frame[frame["benchmark"] != "voc07_lowshot"], tmp_path / "c.png")
    assert not (tmp_path / "c.png").exists()


def test_begin_without_end_names_file_and_line(
    tmp_path: Path, store: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    readme = _marked_readme(tmp_path / "README.md")
    text = readme.read_text(encoding="utf-8").replace(end_marker("det_coco") + "\n", "")
    readme.write_text(text, encoding="utf-8")
    before = readme.read_bytes()
    line = text[:text.index(begin_marker("det_coco"))].count("\n") + 1
    with pytest.raises(ReadmeError, match=f"README.md line {line}: .*has no matching"):
        check_markers(readme, init=True)
    assert main(["--results", str(store), "--readme", str(readme)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"line {line}" in err and "END det_coco" in err
    assert readme.read_bytes() == before


def test_torn_store_line_is_reported_and_ignored(
    tmp_path: Path, store: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    readme = _marked_readme(tmp_path / "README.md")
    assert main(["--results", str(store), "--readme", str(readme)]) == 0
    clean = readme.read_bytes()
    with open(store, "ab") as fh:
        fh.write(b'{"model": "dc", "val')
    assert main(["--results", str(store), "--readme", str(readme), "--check"]) == 0
    err = capsys.readouterr().err
    assert "not whole JSON rows" in err and "Traceback" not in err
    assert readme.read_bytes() == clean
