from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from dcbench.results import COLUMNS, Measurement, Provenance, ResultRow, rows_from_measurements, status_row
from reports.published import load_published
from reports.tables import (
    DASH,
    DETECTRON2_FOOTNOTE,
    LAST_EPOCH_MARK,
    LOWSHOT_KS,
    PER_K_LABEL,
    TABLE_IDS,
    TORCHVISION_FOOTNOTE,
    Table,
    build_tables,
    current_rows,
)

SHA_A, SHA_B, SHA_OLD = "a" * 64, "b" * 64, "0" * 64


def _rows(model: str, benchmark: str, measurements: list[Measurement], time: str,
          sha: str = SHA_A, pretrain_config: str | None = "deepcluster_resnet50_8xb64-steplr-200e_in1k",
          config_hash: str = "c") -> list[ResultRow]:
    prov = Provenance(model=model, checkpoint_sha256=sha, benchmark=benchmark, config_hash=config_hash,
                      seed=0, git_sha="g", pretrain_config=pretrain_config)
    return [dataclasses.replace(r, time=time) for r in rows_from_measurements(prov, measurements)]


def _frame(rows: list[ResultRow]) -> pd.DataFrame:
    frame = pd.DataFrame([dataclasses.asdict(r) for r in rows], columns=list(COLUMNS))
    frame["k"] = frame["k"].astype("Int64")
    frame["value"] = frame["value"].astype("Float64")
    return frame


def sample_rows() -> list[ResultRow]:
    """Two models: 'dc' with most benchmarks, 'mocov2' (no pretrain config) with a few."""
    t0, t1 = "2024-01-01T00:00:00+00:00", "2024-01-02T00:00:00+00:00"
    svm = [Measurement("voc07", "mAP", v, layer=f"feature{i}")
           for i, v in enumerate([40, 55, 71.234, 71.1, 60], 1)]
    lowshot = [Measurement("voc07", "mAP", 10.0 * i + k / 100, layer=f"feature{i}", k=k, variant="reference")
               for i in (3, 5) for k in LOWSHOT_KS if k != 96]
    lowshot += [Measurement("voc07", "mAP", 5.0 + k / 100, layer="feature5", k=k, variant="clean")
                for k in (1, 2)]
    linear = [Measurement("imagenet", m, v + i, layer=f"feature{i}") for i in range(1, 6)
              for m, v in (("top1", 10.0), ("top5", 30.0))]
    semisup = [Measurement("imagenet_1pct", "top1", 12.0, variant="lr0.01_head1"),
               Measurement("imagenet_1pct", "top5", 33.0, variant="lr0.01_head1"),
               Measurement("imagenet_1pct", "top1", 14.5, variant="lr0.1_head10"),
               Measurement("imagenet_1pct", "top5", 35.5, variant="lr0.1_head10")]
    det = [Measurement("voc0712", m, v + t, variant=f"trial{t}", engine="torchvision")
           for t in (0, 1) for m, v in (("AP", 40), ("AP50", 60), ("AP75", 45))]
    det += [Measurement("voc0712", m, v, variant="mean", engine="torchvision")
            for m, v in (("AP", 40.5), ("AP50", 60.5), ("AP75", 45.5))]
    coco = [Measurement("coco2017", m, 30.0 + i, variant="mean", engine="detectron2")
            for i, m in enumerate(("bbox_AP", "bbox_AP50", "bbox_AP75", "segm_AP", "segm_AP50", "segm_AP75"))]
    rows = (
        _rows("dc", "voc07_svm", svm, t1) + _rows("dc", "voc07_lowshot", lowshot, t1)
        + _rows("dc", "linear_imagenet", linear, t1)
        + _rows("dc", "linear_avgpool_imagenet", [Measurement("imagenet", "top1", 50.123, layer="avgpool")],
                t1)
        + _rows("dc", "semisup_1pct", semisup, t1) + _rows("dc", "det_voc0712", det, t1)
        + _rows("dc", "det_coco", coco, t1)
        + _rows("dc", "seg_cityscapes", [Measurement("cityscapes", "mIoU", 66.666)], t1)
        # superseded by the newer row of the same key
        + _rows("dc", "seg_cityscapes", [Measurement("cityscapes", "mIoU", 1.0)], t0)
        + _rows("mocov2", "voc07_svm", [Measurement("voc07", "mAP", 80.0, layer="feature5")], t0, SHA_B, None)
        + _rows("mocov2", "det_voc0712", [Measurement("voc0712", m, v, variant="mean", engine="mmdet")
                                          for m, v in (("AP", 50.0), ("AP50", 70.0))], t0, SHA_B, None)
    )
    prov = Provenance(model="dc", checkpoint_sha256=SHA_A, benchmark="seg_voc12aug", config_hash="c",
                      seed=0, git_sha="g")
    rows.append(dataclasses.replace(status_row(prov, "failed", "boom"), time="2030-01-01T00:00:00+00:00"))
    ghost = status_row(dataclasses.replace(prov, model="ghost"), "skipped", "no data")
    rows.append(dataclasses.replace(ghost, time=t1))
    return rows


@pytest.fixture(scope="module")
def tables() -> dict[str, Table]:
    return {t.table_id: t for t in build_tables(_frame(sample_rows()))}


def _ours(table: Table) -> pd.DataFrame:
    return table.frame[[kind == "ours" for kind in table.kinds]]


def _row(table: Table, model: str, nth: int = 0) -> dict[str, str]:
    frame = table.frame
    return frame[frame["Model"] == model].iloc[nth].to_dict()


def test_every_reference_table_with_reference_columns(tables: dict[str, Table]) -> None:
    assert tuple(tables) == TABLE_IDS
    lowshot = [f"k={k}" for k in LOWSHOT_KS]
    assert list(tables["voc_svm"].frame.columns) == ["Model", "Config", "Best Layer", "SVM", *lowshot]
    assert list(tables["voc_lowshot_clean"].frame.columns) == ["Model", "Config", *lowshot]
    for name in ("linear_imagenet", "linear_inat18", "linear_places205"):
        assert list(tables[name].frame.columns) == ["Model", "Config", "Feature1", "Feature2", "Feature3",
                                                    "Feature4", "Feature5", "AvgPool"]
    assert list(tables["semisup"].frame.columns) == ["Model", "Pretrain Config", "Fine-tuned Config",
                                                     "Top-1 (%)", "Top-5 (%)"]
    assert list(tables["det_voc0712"].frame.columns) == ["Model", "Config", "mAP", "AP50"]
    assert list(tables["det_coco"].frame.columns) == ["Model", "Config", "mAP(Box)", "AP50(Box)", "AP75(Box)",
                                                      "mAP(Mask)", "AP50(Mask)", "AP75(Mask)"]
    for name in ("seg_voc12aug", "seg_cityscapes"):
        assert list(tables[name].frame.columns) == ["Model", "Config", "mIOU"]


def test_one_sorted_row_per_model_failed_and_skipped_ignored(tables: dict[str, Table]) -> None:
    for name in TABLE_IDS:
        table = tables[name]
        assert len(table.kinds) == len(table.frame)
        models = list(_ours(table)["Model"])
        expected = ["dc", "dc", "mocov2", "mocov2"] if name == "semisup" else ["dc", "mocov2"]
        assert models == expected, name  # 'ghost' has only a skipped row
    assert _row(tables["seg_voc12aug"], "dc")["mIOU"] == DASH  # the failed run shows no value


def test_lowshot_at_the_svm_best_layer_and_per_k_best_as_labelled_extra(tables: dict[str, Table]) -> None:
    table = tables["voc_svm"]
    dc = _row(table, "dc")
    assert dc["Config"] == "deepcluster_resnet50_8xb64-steplr-200e_in1k"
    assert (dc["Best Layer"], dc["SVM"]) == ("feature3", "71.23")
    # the SVM's best layer is feature3, while feature5 has the best low-shot mAP at every k
    assert dc["k=1"] == "30.01" and dc["k=64"] == "30.64" and dc["k=96"] == DASH
    extra = _row(table, f"dc ({PER_K_LABEL})")
    assert table.kinds[list(table.frame["Model"]).index(f"dc ({PER_K_LABEL})")] == "extra"
    assert (extra["Best Layer"], extra["SVM"]) == (PER_K_LABEL, DASH)
    assert extra["k=1"] == "50.01" and extra["k=64"] == "50.64"
    clean = _row(tables["voc_lowshot_clean"], "dc")  # clean rows exist only at feature5
    assert all(clean[f"k={k}"] == DASH for k in LOWSHOT_KS)
    clean_extra = _row(tables["voc_lowshot_clean"], f"dc ({PER_K_LABEL})")
    assert (clean_extra["k=1"], clean_extra["k=2"], clean_extra["k=4"]) == ("5.01", "5.02", DASH)
    moco = _row(table, "mocov2")
    assert moco["Config"] == "-" and (moco["Best Layer"], moco["SVM"]) == ("feature5", "80.00")
    assert all(moco[f"k={k}"] == DASH for k in LOWSHOT_KS)
    assert f"mocov2 ({PER_K_LABEL})" not in set(table.frame["Model"])  # no low-shot rows, no extra
    assert any("Best Layer** of the full SVM for every k" in note for note in table.notes)


def test_lowshot_layer_follows_the_svm_when_it_agrees() -> None:
    svm = [Measurement("voc07", "mAP", v, layer=f"feature{i}") for i, v in ((4, 60.0), (5, 70.0))]
    lowshot = [Measurement("voc07", "mAP", v + k, layer=layer, k=k, variant="reference")
               for layer, v in (("feature4", 10.0), ("feature5", 20.0)) for k in (1, 2)]
    rows = _rows("m", "voc07_svm", svm, "2024-01-01T00:00:00+00:00")
    rows += _rows("m", "voc07_lowshot", lowshot, "2024-01-01T00:00:00+00:00")
    table = build_tables(_frame(rows), with_published=False)[0]
    assert (_row(table, "m")["k=1"], _row(table, "m")["k=2"]) == ("21.00", "22.00")
    assert (_row(table, f"m ({PER_K_LABEL})")["k=1"], _row(table, f"m ({PER_K_LABEL})")["k=2"]) == \
        ("21.00", "22.00")
    no_svm = build_tables(_frame(rows[len(svm):]), with_published=False)[0]
    assert _row(no_svm, "m")["Best Layer"] == DASH and _row(no_svm, "m")["k=1"] == DASH


def test_linear_cells_and_missing_tables(tables: dict[str, Table]) -> None:
    dc = _row(tables["linear_imagenet"], "dc")
    assert [dc[f"Feature{i}"] for i in range(1, 6)] == ["11.00", "12.00", "13.00", "14.00", "15.00"]
    assert dc["AvgPool"] == "50.12" + LAST_EPOCH_MARK  # only the last epoch was recorded
    assert set(_row(tables["linear_inat18"], "dc").values()) - {"dc", dc["Config"]} == {DASH}


def test_avgpool_shows_the_best_epoch_and_keeps_the_last() -> None:
    last_best = [Measurement("imagenet", "top1", 40.0, layer="avgpool"),
                 Measurement("imagenet", "top5", 70.0, layer="avgpool"),
                 Measurement("imagenet", "top1_best_epoch", 42.5, layer="avgpool")]
    rows = _rows("m", "linear_avgpool_imagenet", last_best, "2024-01-01T00:00:00+00:00")
    tables = {t.table_id: t for t in build_tables(_frame(rows), with_published=False)}
    assert _row(tables["linear_imagenet"], "m")["AvgPool"] == "42.50"  # the page's choice: best over epochs
    assert any("best top-1 over the epochs" in note for note in tables["linear_imagenet"].notes)


def test_semisup_best_setting_per_fraction(tables: dict[str, Table]) -> None:
    one, ten = _row(tables["semisup"], "dc", 0), _row(tables["semisup"], "dc", 1)
    assert one["Fine-tuned Config"] == "1% data, lr0.1_head10, best of 2 on val"
    assert (one["Top-1 (%)"], one["Top-5 (%)"]) == ("14.50", "35.50")
    assert ten["Fine-tuned Config"] == "10% data" and ten["Top-1 (%)"] == DASH
    assert any("selected on the reported split" in note for note in tables["semisup"].notes)


def test_semisup_one_setting_is_labelled_as_no_selection() -> None:
    one = [Measurement("imagenet_1pct", "top1", 12.0, variant="lr0.01_head1"),
           Measurement("imagenet_1pct", "top5", 33.0, variant="lr0.01_head1")]
    rows = _rows("sobel", "semisup_1pct", one, "2024-01-01T00:00:00+00:00")
    table = build_tables(_frame(rows), with_published=False)[5]
    assert table.table_id == "semisup"
    row = _row(table, "sobel")
    assert row["Fine-tuned Config"] == "1% data, lr0.01_head1, 1 setting"
    assert (row["Top-1 (%)"], row["Top-5 (%)"]) == ("12.00", "33.00")


def test_detection_marks_only_engines_other_than_the_pages_mmdet(tables: dict[str, Table]) -> None:
    det = tables["det_voc0712"]
    assert (_row(det, "dc")["mAP"], _row(det, "dc")["AP50"]) == ("40.50†", "60.50†")
    assert (_row(det, "mocov2")["mAP"], _row(det, "mocov2")["AP50"]) == ("50.00", "70.00")
    assert det.footnotes == (TORCHVISION_FOOTNOTE,)
    coco = tables["det_coco"]
    assert _row(coco, "dc")["AP75(Mask)"] == "35.00‡" and coco.footnotes == (DETECTRON2_FOOTNOTE,)


def test_latest_row_wins_and_newest_checkpoint_per_model(tables: dict[str, Table]) -> None:
    assert _row(tables["seg_cityscapes"], "dc")["mIOU"] == "66.67"
    old = _rows("dc", "seg_cityscapes", [Measurement("cityscapes", "mIoU", 99.0)],
                "2023-01-01T00:00:00+00:00", sha=SHA_OLD)
    current = current_rows(_frame(sample_rows() + old))
    assert SHA_OLD not in set(current["checkpoint_sha256"])
    newer = _rows("dc", "seg_voc12aug", [Measurement("voc12aug", "mIoU", 7.0)], "2031-01-01T00:00:00+00:00",
                  sha=SHA_OLD)
    tables = {t.table_id: t for t in build_tables(_frame(sample_rows() + newer))}
    assert _row(tables["seg_voc12aug"], "dc")["mIOU"] == "7.00"
    assert _row(tables["seg_cityscapes"], "dc")["mIOU"] == DASH  # measured on the other checkpoint


def test_a_tiny_run_never_shares_a_cell_with_the_reference_run() -> None:
    tiny = _rows("dc", "linear_imagenet", [Measurement("imagenet", "top1", 1.5, layer="feature5")],
                 "2031-01-01T00:00:00+00:00", config_hash="tiny")
    table = {t.table_id: t for t in build_tables(_frame(sample_rows() + tiny))}["linear_imagenet"]
    dc = _row(table, "dc")
    # the newer tiny run fills Feature5; the older reference run's Feature1..4 are not mixed in
    assert [dc[f"Feature{i}"] for i in range(1, 6)] == [DASH] * 4 + ["1.50"]
    assert dc["AvgPool"] == "50.12" + LAST_EPOCH_MARK  # linear_avgpool_imagenet: its own config


def test_empty_store_gives_empty_tables() -> None:
    for table in build_tables(_frame([]), with_published=False):
        assert table.frame.empty and len(table.frame.columns) >= 3
    for table in build_tables(_frame([])):
        assert table.kinds == ("published",) * len(table.frame) and len(table.frame) >= 1


def test_every_table_ends_with_the_published_row(tables: dict[str, Table]) -> None:
    published = load_published()
    for table in tables.values():
        assert table.kinds[-1] == "published" and "published" not in table.kinds[:-2]
        assert set(table.frame["Model"][[k == "published" for k in table.kinds]]) == {published.label}
        assert any(note.startswith(f"**{published.label}**") for note in table.notes)
    svm = _row(tables["voc_svm"], "published")
    assert (svm["Best Layer"], svm["SVM"], svm["k=1"], svm["k=96"]) == ("feature5", "74.26", "29.37", "71.37")
    linear = _row(tables["linear_imagenet"], "published")
    assert (linear["Feature4"], linear["AvgPool"]) == ("57.71", "46.92")
    assert _row(tables["linear_places205"], "published")["Feature1"] == "18.80"
    one, ten = _row(tables["semisup"], "published", 0), _row(tables["semisup"], "published", 1)
    assert one["Fine-tuned Config"] == "1% data, lr0.01_head1, 1 setting" and one["Top-1 (%)"] == "33.44"
    assert (ten["Top-1 (%)"], ten["Top-5 (%)"]) == ("52.94", "77.96")
    assert set(_row(tables["det_coco"], "published").values()) - {"published", published.pretrain_config} \
        == {DASH}
    notes = " ".join(tables["voc_svm"].notes)
    assert "protocol differences from the published run that remain" in notes and "29.73" in notes
    assert "no published value" in " ".join(tables["linear_inat18"].notes)


def test_every_registered_table_is_rendered_and_the_constants_are_the_evaluators() -> None:
    from dcbench.backbone import LAYERS as BACKBONE_LAYERS
    from evaluators.suite.registry import EVALUATORS
    from evaluators.svm.lowshot import Config as LowShotConfig
    from reports.tables import LAYERS, LOWSHOT_KS, TABLE_IDS

    assert {spec.table for spec in EVALUATORS.values()} <= set(TABLE_IDS)
    assert LAYERS == BACKBONE_LAYERS and LOWSHOT_KS == LowShotConfig().k_values
