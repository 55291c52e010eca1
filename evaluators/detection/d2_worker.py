"""What runs inside detectron2's `launch` (one process per GPU); imported only when detectron2 is.

`main(job)`: register our modules (d2_modules: MoCo's Res5ROIHeadsExtraNorm, the Sobel backbones)
and our datasets, build detectron2's config (get_cfg() merged with the job's {KEY: value} dict),
default_setup, DefaultTrainer with the VOC / COCO evaluator, resume_or_load, then (unless a training
checkpoint was resumed) check that every backbone tensor came from our export, train (PreciseBN and
the final test are the trainer's hooks), and rank 0 writes the evaluator's output as JSON.
Needs detectron2 >= 0.3 (Res5ROIHeads built through `from_config` / `_build_res5_block`, as in
MMSelfSup's copy of MoCo's train_net.py); checked with detectron2 0.6 on the CPU.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from detectron2.config import CfgNode, get_cfg
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.engine import DefaultTrainer, default_setup
from detectron2.evaluation import COCOEvaluator, DatasetEvaluator, PascalVOCDetectionEvaluator
from detectron2.structures import BoxMode
from detectron2.utils import comm

from adapters.detectron2 import check_detectron2_load, read_detectron2_pkl
from evaluators.detection.d2_job import D2Dataset, D2Job, setup_args, write_results
from evaluators.detection.d2_modules import register
from evaluators.detection.records import Record, coco_records, voc_metadata, voc_records


def _with_box_modes(records: list[Record]) -> list[Record]:
    return [{**r, "annotations": [{**a, "bbox_mode": BoxMode(a["bbox_mode"])} for a in r["annotations"]]}
            for r in records]


def register_dataset(spec: D2Dataset) -> None:
    """(Re)register `spec` in DatasetCatalog / MetadataCatalog."""
    if spec.name in DatasetCatalog.list():
        DatasetCatalog.remove(spec.name)
        MetadataCatalog.remove(spec.name)
    if spec.kind == "voc":
        records = voc_records(Path(spec.root), spec.split)
        meta = voc_metadata(Path(spec.root), spec.split, spec.year)
    else:
        records, coco_meta = coco_records(Path(spec.root), Path(spec.split))
        meta = coco_meta.as_metadata()
    records = _with_box_modes(records)
    DatasetCatalog.register(spec.name, lambda: records)
    MetadataCatalog.get(spec.name).set(**meta)


class Trainer(DefaultTrainer):
    """MoCo's Trainer: COCOEvaluator for COCO data, PascalVOCDetectionEvaluator for VOC."""

    @classmethod
    def build_evaluator(cls, cfg: CfgNode, dataset_name: str, output_folder: str | None = None
                        ) -> DatasetEvaluator:
        folder = output_folder or os.path.join(cfg.OUTPUT_DIR, "inference")
        if MetadataCatalog.get(dataset_name).evaluator_type == "coco":
            tasks = ("bbox", "segm") if cfg.MODEL.MASK_ON else ("bbox",)
            return COCOEvaluator(dataset_name, tasks=tasks, distributed=True, output_dir=folder)
        return PascalVOCDetectionEvaluator(dataset_name)


def build_cfg(job: D2Job) -> CfgNode:
    cfg = get_cfg()
    cfg.merge_from_other_cfg(CfgNode(job.cfg))
    cfg.freeze()
    return cfg


def check_loaded_backbone(job: D2Job, model: Any) -> int:
    """Every backbone parameter and buffer came from the exported weights (adapters.detectron2)."""
    module = model.module if hasattr(model, "module") else model  # DistributedDataParallel
    exported = read_detectron2_pkl(job.cfg["MODEL"]["WEIGHTS"])["model"]
    return check_detectron2_load(module.state_dict(), exported, job.model_name)


def main(job: D2Job) -> None:
    register()
    for spec in job.datasets:
        register_dataset(spec)
    cfg = build_cfg(job)
    default_setup(cfg, setup_args(job.num_gpus))
    trainer = Trainer(cfg)
    resumed = trainer.checkpointer.has_checkpoint()  # a training checkpoint, not our weights, is loaded
    trainer.resume_or_load(resume=True)
    if not resumed:
        check_loaded_backbone(job, trainer.model)  # matching_heuristics loads non-strictly: check it all
    trainer.train()
    if hasattr(trainer, "_last_eval_results"):  # set by DefaultTrainer's final EvalHook
        results = trainer._last_eval_results
    else:
        results = Trainer.test(cfg, trainer.model)
    if comm.is_main_process():
        write_results(job.results_path, results)
