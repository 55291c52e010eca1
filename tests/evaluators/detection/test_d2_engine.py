"""The detectron2 engine: everything around detectron2 is tested without it; the rest skips cleanly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from dcbench.context import RunContext
from evaluators.detection import coco, voc0712
from evaluators.detection.d2_engine import build_cfg_dict, parse_d2_results

DATA = Path(__file__).parent / "data"
# Types of detectron2's defaults (detectron2/config/defaults.py) for the keys we set: yacs refuses
# to merge a value of another type (tuple <-> list excepted), e.g. an int where a float is expected.
D2_DEFAULT_TYPES = {
    "MODEL.META_ARCHITECTURE": str,
    "MODEL.DEVICE": str,
    "MODEL.WEIGHTS": str,
    "MODEL.MASK_ON": bool,
    "MODEL.PIXEL_MEAN": list,
    "MODEL.PIXEL_STD": list,
    "MODEL.BACKBONE.NAME": str,
    "MODEL.BACKBONE.FREEZE_AT": int,
    "MODEL.RESNETS.DEPTH": int,
    "MODEL.RESNETS.NORM": str,
    "MODEL.RESNETS.STRIDE_IN_1X1": bool,
    "MODEL.RESNETS.OUT_FEATURES": list,
    "MODEL.FPN.IN_FEATURES": list,
    "MODEL.FPN.NORM": str,
    "MODEL.FPN.OUT_CHANNELS": int,
    "MODEL.ANCHOR_GENERATOR.SIZES": list,
    "MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS": list,
    "MODEL.RPN.IN_FEATURES": list,
    "MODEL.RPN.PRE_NMS_TOPK_TRAIN": int,
    "MODEL.RPN.POST_NMS_TOPK_TRAIN": int,
    "MODEL.RPN.PRE_NMS_TOPK_TEST": int,
    "MODEL.RPN.POST_NMS_TOPK_TEST": int,
    "MODEL.RPN.NMS_THRESH": float,
    "MODEL.RPN.IOU_THRESHOLDS": list,
    "MODEL.RPN.BATCH_SIZE_PER_IMAGE": int,
    "MODEL.RPN.POSITIVE_FRACTION": float,
    "MODEL.ROI_HEADS.NAME": str,
    "MODEL.ROI_HEADS.NUM_CLASSES": int,
    "MODEL.ROI_HEADS.IN_FEATURES": list,
    "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE": int,
    "MODEL.ROI_HEADS.POSITIVE_FRACTION": float,
    "MODEL.ROI_HEADS.IOU_THRESHOLDS": list,
    "MODEL.ROI_HEADS.SCORE_THRESH_TEST": float,
    "MODEL.ROI_HEADS.NMS_THRESH_TEST": float,
    "MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION": int,
    "MODEL.ROI_BOX_HEAD.BBOX_REG_WEIGHTS": tuple,
    "MODEL.ROI_BOX_HEAD.NAME": str,
    "MODEL.ROI_BOX_HEAD.NUM_FC": int,
    "MODEL.ROI_BOX_HEAD.FC_DIM": int,
    "MODEL.ROI_MASK_HEAD.NAME": str,
    "MODEL.ROI_MASK_HEAD.NUM_CONV": int,
    "MODEL.ROI_MASK_HEAD.CONV_DIM": int,
    "MODEL.ROI_MASK_HEAD.POOLER_RESOLUTION": int,
    "INPUT.FORMAT": str,
    "INPUT.MIN_SIZE_TRAIN": tuple,
    "INPUT.MAX_SIZE_TRAIN": int,
    "INPUT.MIN_SIZE_TEST": int,
    "INPUT.MAX_SIZE_TEST": int,
    "INPUT.RANDOM_FLIP": str,
    "DATASETS.TRAIN": tuple,
    "DATASETS.TEST": tuple,
    "DATALOADER.NUM_WORKERS": int,
    "SOLVER.IMS_PER_BATCH": int,
    "SOLVER.BASE_LR": float,
    "SOLVER.MAX_ITER": int,
    "SOLVER.STEPS": tuple,
    "SOLVER.WARMUP_ITERS": int,
    "SOLVER.WARMUP_FACTOR": float,
    "SOLVER.GAMMA": float,
    "SOLVER.MOMENTUM": float,
    "SOLVER.WEIGHT_DECAY": float,
    "SOLVER.WEIGHT_DECAY_NORM": float,
    "SOLVER.CHECKPOINT_PERIOD": int,
    "TEST.PRECISE_BN.ENABLED": bool,
    "TEST.PRECISE_BN.NUM_ITER": int,
    "TEST.DETECTIONS_PER_IMAGE": int,
    "TEST.EVAL_PERIOD": int,
    "OUTPUT_DIR": str,
    "SEED": int,
}


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _cfg(config, **kw) -> dict:
    args = dict(
        num_classes=20,
        train_names=["a", "b"],
        test_names=["t"],
        weights="/w.pkl",
        output_dir="/o",
        device="cuda",
        seed=3,
        num_workers=4,
    )
    return build_cfg_dict(config, **{**args, **kw})


def test_voc_cfg_is_mocos_pascal_voc_r50_c4_24k() -> None:
    flat = _flat(_cfg(voc0712.Config().detectron2))
    assert flat["MODEL.ROI_HEADS.NAME"] == "Res5ROIHeadsExtraNorm"
    assert flat["MODEL.RESNETS.NORM"] == "SyncBN" and flat["MODEL.BACKBONE.FREEZE_AT"] == 0
    assert flat["MODEL.RESNETS.STRIDE_IN_1X1"] is False and flat["MODEL.MASK_ON"] is False
    assert flat["MODEL.PIXEL_MEAN"] == [123.675, 116.28, 103.53] and flat["MODEL.PIXEL_STD"] == [
        58.395,
        57.12,
        57.375,
    ]
    assert flat["INPUT.FORMAT"] == "RGB" and flat["INPUT.MIN_SIZE_TRAIN"] == tuple(range(480, 801, 32))
    assert flat["INPUT.MIN_SIZE_TEST"] == 800 and flat["MODEL.ROI_HEADS.NUM_CLASSES"] == 20
    assert (flat["MODEL.RPN.PRE_NMS_TOPK_TEST"], flat["MODEL.RPN.POST_NMS_TOPK_TEST"]) == (6000, 1000)
    assert (flat["SOLVER.IMS_PER_BATCH"], flat["SOLVER.BASE_LR"], flat["SOLVER.MAX_ITER"]) == (
        16,
        0.02,
        24000,
    )
    assert (flat["SOLVER.STEPS"], flat["SOLVER.WARMUP_ITERS"]) == ((18000, 22000), 100)
    assert flat["TEST.PRECISE_BN.ENABLED"] is True and flat["MODEL.BACKBONE.NAME"] == "build_resnet_backbone"
    assert (
        flat["MODEL.RESNETS.OUT_FEATURES"] == ["res4"] and flat["MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION"] == 14
    )
    assert (flat["DATASETS.TRAIN"], flat["DATASETS.TEST"], flat["SEED"]) == (("a", "b"), ("t",), 3)
    assert "MODEL.FPN.NORM" not in flat and "MODEL.ROI_MASK_HEAD.NAME" not in flat


def test_coco_cfg_is_mask_rcnn_r50_fpn_1x_with_syncbn() -> None:
    flat = _flat(_cfg(coco.Config().detectron2, num_classes=80))
    assert flat["MODEL.BACKBONE.NAME"] == "build_resnet_fpn_backbone" and flat["MODEL.MASK_ON"] is True
    assert flat["MODEL.RESNETS.NORM"] == "SyncBN" and flat["MODEL.FPN.NORM"] == "SyncBN"
    assert flat["MODEL.ROI_HEADS.NAME"] == "StandardROIHeads" and flat["MODEL.ROI_HEADS.NUM_CLASSES"] == 80
    assert flat["MODEL.RPN.IN_FEATURES"] == ["p2", "p3", "p4", "p5", "p6"]
    assert flat["MODEL.ANCHOR_GENERATOR.SIZES"] == [[32], [64], [128], [256], [512]]
    assert (flat["MODEL.ROI_BOX_HEAD.NAME"], flat["MODEL.ROI_BOX_HEAD.NUM_FC"]) == ("FastRCNNConvFCHead", 2)
    assert flat["MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION"] == 7 and flat["MODEL.ROI_MASK_HEAD.NUM_CONV"] == 4
    assert (flat["SOLVER.MAX_ITER"], flat["SOLVER.STEPS"]) == (90000, (60000, 80000))
    assert flat["MODEL.PIXEL_MEAN"] == [123.675, 116.28, 103.53] and flat["INPUT.FORMAT"] == "RGB"


@pytest.mark.parametrize("config", [voc0712.Config().detectron2, coco.Config().detectron2,
                                    voc0712.TINY.detectron2, coco.TINY.detectron2])
def test_cfg_values_have_detectron2s_types(config) -> None:
    flat = _flat(_cfg(config))
    assert set(flat) <= set(D2_DEFAULT_TYPES), sorted(set(flat) - set(D2_DEFAULT_TYPES))
    for key, value in flat.items():
        want = D2_DEFAULT_TYPES[key]
        assert isinstance(value, want) or {type(value), want} == {list, tuple}, (key, value)
        assert not (want is float and isinstance(value, int)), key


def test_results_parsed_from_recorded_detectron2_output() -> None:
    voc = json.loads((DATA / "d2_voc_results.json").read_text())
    assert parse_d2_results(voc, "voc") == {k: voc["bbox"][k] for k in ("AP", "AP50", "AP75")}
    out = json.loads((DATA / "d2_coco_results.json").read_text())
    parsed = parse_d2_results(out, "coco")
    assert list(parsed) == ["bbox_AP", "bbox_AP50", "bbox_AP75", "segm_AP", "segm_AP50", "segm_AP75"]
    assert parsed["segm_AP75"] == out["segm"]["AP75"] and parsed["bbox_AP"] == out["bbox"]["AP"]


def test_parse_rejects_missing_and_nan() -> None:
    with pytest.raises(KeyError, match="segm"):
        parse_d2_results({"bbox": {"AP": 1.0, "AP50": 2.0, "AP75": 3.0}}, "coco")
    with pytest.raises(KeyError, match="AP75"):
        parse_d2_results({"bbox": {"AP": 1.0, "AP50": 2.0}}, "voc")
    with pytest.raises(ValueError, match="non-finite"):
        parse_d2_results({"bbox": {"AP": float("nan"), "AP50": 2.0, "AP75": 3.0}}, "voc")


def test_sobel_backbones_run_on_our_registered_sobel_stem_backbones() -> None:
    for config, name in ((voc0712.Config().detectron2, "build_sobel_resnet_backbone"),
                         (coco.Config().detectron2, "build_sobel_resnet_fpn_backbone")):
        plain, sobel = (_flat(_cfg(config, sobel=s)) for s in (False, True))
        assert sobel.pop("MODEL.BACKBONE.NAME") == name
        assert plain.pop("MODEL.BACKBONE.NAME") in ("build_resnet_backbone", "build_resnet_fpn_backbone")
        assert sobel == plain


# ---- with detectron2 installed -------------------------------------------------------------------


def test_cfg_merges_into_detectron2s_defaults() -> None:
    pytest.importorskip("detectron2")
    from evaluators.detection.d2_job import D2Job
    from evaluators.detection.d2_worker import build_cfg

    for config in (voc0712.Config().detectron2, coco.Config().detectron2):
        cfg = build_cfg(D2Job(cfg=_cfg(config), datasets=(), results_path="/r.json", num_gpus=1))
        for key, value in _flat(_cfg(config)).items():
            node = cfg
            for part in key.split("."):
                node = node[part]
            assert node == value or list(node) == list(value), key


def test_detectron2_builds_the_extra_norm_c4_model_and_registers_our_data(det_data_root) -> None:
    pytest.importorskip("detectron2")
    from detectron2.data import DatasetCatalog, MetadataCatalog
    from detectron2.modeling import build_model

    from evaluators.detection.d2_job import D2Dataset, D2Job
    from evaluators.detection.d2_modules import register
    from evaluators.detection.d2_worker import build_cfg, register_dataset

    register()
    register()  # idempotent
    job = D2Job(cfg=_cfg(voc0712.TINY.detectron2, device="cpu"), datasets=(), results_path="/r", num_gpus=1)
    cfg = build_cfg(job)
    model = build_model(cfg)
    assert type(model.roi_heads).__name__ == "Res5ROIHeadsExtraNorm"
    assert isinstance(model.roi_heads.res5.norm, torch.nn.Module)
    spec = D2Dataset("dcbench_test_voc", "voc", str(det_data_root / "VOCdevkit" / "VOC2007"), "test", 2007)
    register_dataset(spec)
    register_dataset(spec)  # re-registering replaces
    dicts = DatasetCatalog.get("dcbench_test_voc")
    assert len(dicts) == 6 and MetadataCatalog.get("dcbench_test_voc").year == 2007


def test_detectron2_engine_runs_the_tiny_protocol(det_data_root, backbone, tmp_path) -> None:
    pytest.importorskip("detectron2")
    ctx = RunContext(
        work_dir=tmp_path / "w",
        cache_dir=tmp_path / "c",
        device=torch.device("cpu"),
        seed=0,
        progress=False,
        num_workers=1,
        det_engine="detectron2",
    )
    rows = voc0712.run(backbone, det_data_root, voc0712.TINY, ctx)
    assert {r.engine for r in rows} == {"detectron2"} and len(rows) == 6
    rows = coco.run(backbone, det_data_root, coco.TINY, ctx)
    assert {r.engine for r in rows} == {"detectron2"} and len(rows) == 12


@pytest.mark.parametrize("model_name", ["faster_rcnn_R_50_C4", "mask_rcnn_R_50_FPN"])
def test_detectron2_sobel_backbone_builds_loads_strictly_and_filters(tmp_path, model_name) -> None:
    pytest.importorskip("detectron2")
    from detectron2.checkpoint import DetectionCheckpointer
    from detectron2.modeling import build_model

    from adapters.detectron2 import check_detectron2_load, read_detectron2_pkl, write_detectron2_pkl
    from dcbench.backbone import Backbone, Sobel, build_resnet50
    from evaluators.detection.d2_job import D2Job
    from evaluators.detection.d2_modules import register
    from evaluators.detection.d2_worker import build_cfg

    register()
    torch.manual_seed(2)
    sobel = Backbone(state_dict=build_resnet50(sobel=True).state_dict(), sobel=True, sha256="5" * 64,
                     source_format="test")
    weights = tmp_path / "w.pkl"
    write_detectron2_pkl(sobel, weights, allow_sobel=True)
    config = (voc0712.TINY if model_name.startswith("faster") else coco.TINY).detectron2
    cfg = build_cfg(D2Job(cfg=_cfg(config, device="cpu", sobel=True, weights=str(weights)), datasets=(),
                          results_path="/r", num_gpus=1, model_name=model_name))
    model = build_model(cfg)
    DetectionCheckpointer(model).load(str(weights))
    exported = read_detectron2_pkl(weights)["model"]
    assert check_detectron2_load(model.state_dict(), exported, model_name) == 318
    resnet = model.backbone if model_name.startswith("faster") else model.backbone.bottom_up
    assert tuple(resnet.stem.conv1.weight.shape) == (64, 2, 7, 7)
    assert not [k for k in model.state_dict() if "sobel" in k]  # the fixed filter holds no state
    image = torch.rand(1, 3, 32, 32)
    resnet.eval()
    torch.testing.assert_close(resnet.stem(image), type(resnet.stem).__mro__[1].forward(resnet.stem,
                                                                                          Sobel()(image)))


def test_detectron2_worker_refuses_a_model_the_weights_did_not_fill(tmp_path, backbone) -> None:
    pytest.importorskip("detectron2")
    from detectron2.modeling import build_model

    from adapters.detectron2 import write_detectron2_pkl
    from adapters.mmseg import BackboneLoadError
    from evaluators.detection.d2_job import D2Job
    from evaluators.detection.d2_modules import register
    from evaluators.detection.d2_worker import build_cfg, check_loaded_backbone

    register()
    weights = tmp_path / "w.pkl"
    write_detectron2_pkl(backbone, weights)
    job = D2Job(cfg=_cfg(voc0712.TINY.detectron2, device="cpu", weights=str(weights)), datasets=(),
                results_path="/r", num_gpus=1, model_name="faster_rcnn_R_50_C4")
    model = build_model(build_cfg(job))  # random init: nothing loaded
    with pytest.raises(BackboneLoadError, match="differ from the checkpoint"):
        check_loaded_backbone(job, model)


def test_detectron2_engine_runs_the_sobel_model(det_data_root, tmp_path) -> None:
    pytest.importorskip("detectron2")
    from dcbench.backbone import Backbone, build_resnet50

    torch.manual_seed(3)
    sobel = Backbone(state_dict=build_resnet50(sobel=True).state_dict(), sobel=True, sha256="6" * 64,
                     source_format="test")
    ctx = RunContext(work_dir=tmp_path / "w", cache_dir=tmp_path / "c", device=torch.device("cpu"), seed=0,
                     progress=False, num_workers=1, det_engine="auto")
    rows = coco.run(sobel, det_data_root, coco.TINY, ctx)
    assert {r.engine for r in rows} == {"detectron2"} and len(rows) == 12
