"""VOC07 SVM (benchmark `voc07_svm`): linear SVMs on frozen Feature1..5, mAP on VOC2007 test.

Protocol (fair_self_supervision_benchmark tools/svm/train_svm_kfold.py + test_svm.py +
svm_helper.py, run by MMSelfSup tools/benchmarks/classification/svm_voc07/tools/eval_svm_full.sh):
features L2-normalised; per class and per cost one LinearSVC (squared hinge, L2, class_weight
{1: 2, -1: 1}, intercept_scaling 1) scored by 3-fold cross-validation (StratifiedKFold, sklearn
average precision) on trainval, difficult samples counted as negatives; the cost with the best
mean CV AP is chosen per class, that class's SVM trained on all of trainval predicts test; test AP
is the reference VOC AP over non-difficult samples; mAP = mean over the 20 classes, per layer.

The SVMs are trained in two batched `evaluators.svm.solver.solve_path` calls (same optimisation
problem as LinearSVC, see there) on one split Gram matrix: all 20 classes x 19 costs x 3 folds
(each fold on the sub-kernel of the rows it trains on), then the 20 classes on all of trainval up
to the largest cost the cross-validation chose.
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

from dcbench import blas
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
    decision_values,
    feature_center,
    normalize_features,
    primal_weights,
    svm_targets,
    voc_ap,
)
from evaluators.svm.data import TRANSFORM_SOURCE, VocFeatures, load_voc07_features
from evaluators.svm.linalg import Kernel
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


def _fold_problems(targets: np.ndarray, folds: int) -> tuple[Tensor, Tensor, np.ndarray]:
    """The cross-validation problems, one group per fold on the rows any class trains on in that fold.

    StratifiedKFold splits each class's labels in index order, so fold f's held-out rows are nearly
    the same third for every class: the union U_f of the classes' training rows is about 2/3 of the
    samples. Returns (index (folds, m): U_f padded with other rows to the largest size; targets
    (folds, C, m): class c's fold-f training targets on those rows, 0 elsewhere; fold_ids (C, N)).
    """
    n, classes = targets.shape
    per_class = [cv_targets(targets[:, c], folds) for c in range(classes)]
    fold_ids = np.stack([fold_of for _, fold_of in per_class])
    train = np.stack([cols[1:] for cols, _ in per_class], axis=1)  # (folds, C, N), 0 = held out
    used = [np.flatnonzero((train[f] != 0).any(0)) for f in range(folds)]
    m = max(len(u) for u in used)
    index = np.stack([np.concatenate([u, np.setdiff1d(np.arange(n), u)[:m - len(u)]]) for u in used])
    fold_targets = np.take_along_axis(train, index[:, None, :], axis=2)
    return torch.from_numpy(index), torch.from_numpy(fold_targets), fold_ids


def _cv_outputs(kernel: Kernel, index: Tensor, beta: Tensor, outputs: Tensor) -> Tensor:
    """(folds, N, costs, C) decision values on every sample of the fold-f SVMs (solved on rows index[f]).

    The index rows' values are the solver's; the other rows' are K[rest, index] @ beta.
    """
    costs, folds, m, classes = outputs.shape
    n = kernel.resid.shape[1]
    full = torch.empty(folds, n, costs, classes, dtype=torch.float64)
    for f in range(folds):
        rows = index[f]
        rest = torch.from_numpy(np.setdiff1d(np.arange(n), rows.numpy()))
        full[f, rows] = outputs[:, f].permute(1, 0, 2)
        if rest.numel():
            coef = beta[:, f].permute(1, 0, 2).reshape(m, costs * classes)
            full[f, rest] = kernel.block_apply(rest, rows, coef).reshape(-1, costs, classes)
    return full


def _cv_ap(held_out: Tensor, targets: np.ndarray, fold_ids: np.ndarray) -> np.ndarray:
    """(C, num_costs) mean over folds of sklearn AP on each held-out fold."""
    return np.stack([cv_mean_ap(held_out[:, :, :, c], targets[:, c], fold_ids[c])
                     for c in range(targets.shape[1])])


def _solve_cv(kernel: Kernel, targets: np.ndarray, config: Config, settings: SolverSettings,
              progress: bool) -> tuple[np.ndarray, int, float]:
    """(C, num_costs) mean CV AP of every class and cost, solver passes, largest KKT residual."""
    index, fold_targets, fold_ids = _fold_problems(targets, config.cv_folds)
    sub = kernel.restrict(index, config.precond_rank, settings.seed)
    res = solve_path(sub, fold_targets, config.costs, config.pos_weight, config.neg_weight, settings,
                     progress=progress)
    held_out = _cv_outputs(kernel, index, res.beta, res.outputs)
    return _cv_ap(held_out, targets, fold_ids), res.passes, float(res.violation.max())


def evaluate_layer(train: np.ndarray, train_labels: np.ndarray, test: np.ndarray, test_labels: np.ndarray,
                   config: Config, progress: bool = False) -> LayerResult:
    """The full protocol on one feature set (raw features; labels 1 / -1 / 0 = difficult).

    The 3-fold CV problems are solved first (each fold on the rows it trains on), then each class's
    SVM on all of trainval only up to the largest chosen cost (the reference fits every cost and
    keeps the chosen one: the same SVMs, less work).
    """
    xtr, xte = normalize_features(train), normalize_features(test)
    targets = svm_targets(train_labels)
    settings = SolverSettings(tol=config.solver_tol, precond_rank=config.precond_rank)
    with blas.threads():
        gram = augmented_gram(xtr, center=feature_center(xtr), intercept_scaling=config.intercept_scaling)
        kernel = Kernel.build(gram[None], settings.precond_rank, settings.seed)
        del gram
        cv_ap, cv_passes, cv_viol = _solve_cv(kernel, targets, config, settings, progress)
        chosen = cv_ap.argmax(1)  # first best in the reference cost order, as np.argmax in test_svm.py
        beta, passes, viol = _solve_full(kernel, targets, chosen, config, settings, progress)
        w, b = primal_weights(xtr, beta, config.intercept_scaling)
        scores = decision_values(xte, w, b)
    ap = voc_ap(scores, torch.from_numpy(test_labels)).numpy()
    has_pos = (test_labels == 1).any(0)
    value = float(np.mean(ap[has_pos]) * 100.0) if has_pos.any() else math.nan
    return LayerResult(value, ap, cv_ap, np.asarray(config.costs)[chosen], cv_passes + passes,
                       max(cv_viol, viol))


def _solve_full(kernel: Kernel, targets: np.ndarray, chosen: np.ndarray, config: Config,
                settings: SolverSettings, progress: bool) -> tuple[Tensor, int, float]:
    """(N, C) dual coefficients of each class's SVM on all of trainval at its chosen cost, passes, residual.

    The costs are walked in ascending order up to the largest chosen one, as in the CV solve.
    """
    costs = np.asarray(config.costs)
    needed = tuple(float(c) for c in costs[costs <= costs[chosen].max()])
    res = solve_path(kernel, torch.from_numpy(targets.T.copy())[None], needed, config.pos_weight,
                     config.neg_weight, settings, progress=progress)
    at = [needed.index(float(costs[k])) for k in chosen]
    beta = torch.stack([res.beta[k, 0, :, c] for c, k in enumerate(at)], dim=1)
    return beta, res.passes, float(res.violation.max())


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
