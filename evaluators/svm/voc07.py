"""VOC07 SVM (benchmark `voc07_svm`): linear SVMs on frozen Feature1..5, mAP on VOC2007 test.

Protocol (fair_self_supervision_benchmark tools/svm/train_svm_kfold.py + test_svm.py +
svm_helper.py, run by MMSelfSup tools/benchmarks/classification/svm_voc07/tools/eval_svm_full.sh):
features L2-normalised; per class and per cost one LinearSVC (squared hinge, L2, class_weight
{1: 2, -1: 1}, intercept_scaling 1) scored by 3-fold cross-validation (StratifiedKFold, sklearn
average precision) on trainval, difficult samples counted as negatives; the cost with the best
mean CV AP is chosen per class, that class's SVM trained on all of trainval predicts test; test AP
is the reference VOC AP over non-difficult samples; mAP = mean over the 20 classes, per layer.

All 20 classes x 19 costs x (3 folds + full) SVMs of a layer are trained together by
`evaluators.svm.solver.solve_path` (same optimisation problem as LinearSVC, see there).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from dcbench.backbone import LAYERS, Backbone
from dcbench.config import to_dict
from dcbench.context import RunContext
from dcbench.datasets.voc import VOC_CLASSES
from dcbench.distributed import on_main
from dcbench.fileio import atomic_write_text
from dcbench.results import Measurement
from evaluators.svm.common import (
    REFERENCE_COSTS,
    REFERENCE_COSTS_SOURCE,
    TINY_COSTS,
    augmented_gram,
    cv_mean_ap,
    cv_targets,
    feature_center,
    normalize_features,
    primal_weights,
    svm_targets,
    voc_ap,
)
from evaluators.svm.data import TRANSFORM_SOURCE, VocFeatures, load_voc07_features
from evaluators.svm.solver import SolverSettings, solve_path

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class Config:
    layers: tuple[str, ...] = LAYERS
    costs: tuple[float, ...] = REFERENCE_COSTS
    pos_weight: float = 2.0  # class_weight={1: 2, -1: 1}
    neg_weight: float = 1.0
    intercept_scaling: float = 1.0
    cv_folds: int = 3  # cross_val_score(cv=3)
    resize_edge: int = 256
    image_size: int = 224
    batch_size: int = 32  # extraction batch (svm_voc07.py extract_dataloader)
    # feature extraction precision: fp32 = the reference; bf16 = CUDA autocast, a protocol deviation
    # (recorded here, so in the config hash of every row, and in the feature cache key)
    precision: str = "fp32"
    solver_tol: float = 1e-4  # KKT residual (margin units); LinearSVC tol=1e-4 on the dual PG range
    precond_rank: int = 64
    source: str = (
        "fair_self_supervision_benchmark tools/svm/{train_svm_kfold,test_svm,svm_helper}.py "
        "(LinearSVC C, class_weight {1:2,-1:1}, intercept_scaling 1, squared_hinge, l2, cv=3, "
        "best CV AP per class, VOC AP on non-difficult test); costs: " + REFERENCE_COSTS_SOURCE
        + "; features: " + TRANSFORM_SOURCE
    )


TINY = Config(resize_edge=73, image_size=64, batch_size=25, costs=TINY_COSTS)  # CI-sized (see TINY_COSTS)


@dataclass(frozen=True)
class LayerResult:
    map: float  # percent, mean over classes with test positives
    ap: np.ndarray  # (C,) test AP per class (fraction), NaN without test positives
    cv_ap: np.ndarray  # (C, num_costs) mean 3-fold CV AP
    chosen: np.ndarray  # (C,) chosen cost per class
    passes: int
    max_violation: float


def _problems(targets: np.ndarray, folds: int) -> tuple[Tensor, np.ndarray]:
    """Targets (1, C*(1+folds), N): per class the full training set, then each CV training set."""
    per_class = [cv_targets(targets[:, c], folds) for c in range(targets.shape[1])]
    return (torch.from_numpy(np.concatenate([cols for cols, _ in per_class]))[None],
            np.stack([fold_of for _, fold_of in per_class]))


def _cv_ap(outputs: Tensor, targets: np.ndarray, fold_ids: np.ndarray, folds: int) -> np.ndarray:
    """(C, num_costs) mean over folds of sklearn AP on each held-out fold."""
    width = folds + 1
    return np.stack([
        cv_mean_ap(outputs[:, 0, :, c * width + 1:(c + 1) * width].permute(2, 1, 0), targets[:, c],
                   fold_ids[c])
        for c in range(targets.shape[1])])


def evaluate_layer(train: np.ndarray, train_labels: np.ndarray, test: np.ndarray, test_labels: np.ndarray,
                   config: Config, progress: bool = False) -> LayerResult:
    """The full protocol on one feature set (raw features; labels 1 / -1 / 0 = difficult)."""
    xtr, xte = normalize_features(train), normalize_features(test)
    center = feature_center(xtr)
    gram = augmented_gram(xtr, center=center, intercept_scaling=config.intercept_scaling)
    targets = svm_targets(train_labels)
    problems, fold_ids = _problems(targets, config.cv_folds)
    settings = SolverSettings(tol=config.solver_tol, precond_rank=config.precond_rank)
    res = solve_path(gram[None], problems, config.costs, config.pos_weight, config.neg_weight, settings,
                     progress=progress)
    del gram
    cv_ap = _cv_ap(res.outputs, targets, fold_ids, config.cv_folds)
    chosen = cv_ap.argmax(1)  # first best in the reference cost order, as np.argmax in test_svm.py
    full_cols = [c * (config.cv_folds + 1) for c in range(targets.shape[1])]
    beta = torch.stack([res.beta[k, 0, :, col] for k, col in zip(chosen, full_cols, strict=True)], dim=1)
    w, b = primal_weights(xtr, beta, config.intercept_scaling)
    scores = xte.to(torch.float64) @ w + b
    ap = voc_ap(scores, torch.from_numpy(test_labels)).numpy()
    has_pos = (test_labels == 1).any(0)
    value = float(np.mean(ap[has_pos]) * 100.0) if has_pos.any() else math.nan
    return LayerResult(value, ap, cv_ap, np.asarray(config.costs)[chosen], res.passes,
                       float(res.violation.max()))


def _write_details(ctx: RunContext, layer: str, result: LayerResult, config: Config) -> None:
    details = {
        "layer": layer, "mAP": result.map, "costs": list(config.costs), "classes": list(VOC_CLASSES),
        "test_ap": [None if math.isnan(v) else float(v) for v in result.ap],
        "crossval_ap": result.cv_ap.tolist(), "chosen_cost": result.chosen.tolist(),
        "solver": {"passes": result.passes, "max_kkt_residual": result.max_violation},
        "config": to_dict(config),
    }
    atomic_write_text(ctx.work_dir / f"voc07_svm_{layer}.json", json.dumps(details, indent=1) + "\n")


def run(backbone: Backbone, data_root: Path, config: Config, ctx: RunContext) -> list[Measurement]:
    """Entry point of `voc07_svm`: one 'mAP' row per layer.

    Under torchrun the extraction is sharded; rank 0 alone solves and writes the details, and every
    rank returns its rows (dcbench.distributed.on_main), so the runner's rank 0 writes them once.
    """
    feats = load_voc07_features(backbone, data_root, config.layers, config.resize_edge, config.image_size,
                                config.batch_size, ctx, precision=config.precision)
    return on_main(lambda: _solve(feats, config, ctx), feats.dist)


def _solve(feats: VocFeatures, config: Config, ctx: RunContext) -> list[Measurement]:
    rows = []
    for layer in config.layers:
        result = evaluate_layer(feats.train[layer], feats.train_labels, feats.test[layer], feats.test_labels,
                                config, progress=ctx.progress)
        missing = [c for c, ok in enumerate((feats.test_labels == 1).any(0)) if not ok]
        if missing:
            LOG.warning("voc07_svm %s: classes %s have no test positives; left out of the mean",
                        layer, missing)
        LOG.info("voc07_svm %s: mAP %.2f (solver passes %d)", layer, result.map, result.passes)
        _write_details(ctx, layer, result, config)
        rows.append(Measurement(dataset="voc07", metric="mAP", value=result.map, layer=layer))
    return rows
