"""Shared pieces of the VOC07 SVM protocols (full and low-shot), as fair_self_supervision_benchmark
`tools/svm/svm_helper.py` defines them (MMSelfSup 0.x `benchmarks/svm_tools` and 1.x
`tools/benchmarks/classification/svm_voc07/tools` copy that file unchanged):

- features: L2-normalised per sample, x / (|x|_2 + 1e-5) (`normalize_features`), in float64;
- costs: the given list plus 0.5**4 .. 0.5**19 (`parse_cost_list`; MMSelfSup passes "1.0,10.0,100.0");
- LinearSVC(C, class_weight={1: 2, -1: 1}, intercept_scaling=1.0, penalty='l2',
  loss='squared_hinge', tol=1e-4, dual=True, max_iter=2000);
- test AP: `get_precision_recall` + `calculate_ap` (VOC all-point interpolated AP over the
  non-ignored samples), not scikit-learn's average_precision_score;
- cross-validation score: scikit-learn `cross_val_score(cv=3, scoring='average_precision')`,
  i.e. StratifiedKFold(3) without shuffling and sklearn's (non-interpolated) AP.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.model_selection import StratifiedKFold
from torch import Tensor

from dcbench import blas

REFERENCE_COSTS: tuple[float, ...] = (1.0, 10.0, 100.0) + tuple(0.5**k for k in range(4, 20))
REFERENCE_COSTS_SOURCE = (
    "MMSelfSup tools/benchmarks/classification/svm_voc07/tools/eval_svm_full.sh and eval_svm_lowshot.sh "
    "(costs='1.0,10.0,100.0') + svm_helper.parse_cost_list (appends 0.5**4..0.5**19)"
)
NORM_EPS = 1e-5  # svm_helper.normalize_features
CHUNK_ROWS = 256  # float64 copies of features are made this many rows at a time (small, reused buffers)
# The tiny (CI / demo) configs: 5 of the 19 reference costs, spread over the list. On the tiny data's
# nearly rank-deficient features the walk over all 19 (C = 10 and 100 above all) took ~600 solver passes
# per layer; five costs still exercise both lanes, warm starts (secant included) and the CV choice.
TINY_COSTS: tuple[float, ...] = (1.0, 0.5**4, 0.5**8, 0.5**12, 0.5**16)


def normalize_features(features: np.ndarray | Tensor) -> Tensor:
    """x / (|x|_2 + 1e-5) per row, as float32 (N, D) (norms in float32, as the reference's numpy)."""
    arr = np.asarray(features, dtype=np.float32)
    x = torch.from_numpy(arr if arr.flags.writeable else arr.copy())
    norms = torch.linalg.vector_norm(x, dim=1)
    return x * (1.0 / (norms + NORM_EPS))[:, None]


def feature_center(features: Tensor) -> Tensor:
    return features.to(torch.float64).mean(0)


def augmented_gram(a: Tensor, b: Tensor | None = None, center: Tensor | None = None,
                   intercept_scaling: float = 1.0) -> Tensor:
    """float64 K = A B^T + s^2 (B defaults to A), via a centred float32 product.

    Normalised features share a large common component; removing `center` (default: the mean of
    A) before the float32 product and adding its terms back in float64 keeps the rounding error of
    the entries near float32 resolution of the *centred* values.
    """
    mu = feature_center(a) if center is None else center.to(torch.float64)
    ac = a.to(torch.float32) - mu.to(torch.float32)
    bc = ac if b is None else b.to(torch.float32) - mu.to(torch.float32)
    core = (blas.gram(ac) if b is None else blas.matmul(ac, bc.T)).to(torch.float64)
    ra = _rows_dot(ac, mu)
    rb = ra if b is None else _rows_dot(bc, mu)
    core += ra[:, None]
    core += rb[None, :]
    core += mu @ mu + intercept_scaling**2
    return core


def _rows_dot(x: Tensor, v: Tensor) -> Tensor:
    """float64 x @ v for float32 x (N, D), converted a chunk of rows at a time."""
    return torch.cat([x[start:start + CHUNK_ROWS].to(torch.float64) @ v
                      for start in range(0, x.shape[0], CHUNK_ROWS)])


def svm_targets(labels: np.ndarray) -> np.ndarray:
    """VOC labels (1 positive, -1 negative, 0 difficult) -> training targets in {-1, +1}.

    train_svm_kfold.py maps only 'absent' to -1 (create_voc_data_files.py encodes difficult as
    -1 = 'ignore', which the training script leaves as -1), so difficult samples are negatives
    when the SVMs are trained and cross-validated.
    """
    return np.where(labels == 1, 1, -1).astype(np.int8)


def stratified_folds(targets: np.ndarray, n_splits: int) -> np.ndarray:
    """Fold index of every sample, exactly as cross_val_score(cv=n_splits) splits a classifier's data."""
    folds = np.empty(len(targets), dtype=np.int64)
    splitter = StratifiedKFold(n_splits=n_splits)
    for fold, (_, test) in enumerate(splitter.split(np.zeros(len(targets)), targets)):
        folds[test] = fold
    return folds


def cv_targets(targets: np.ndarray, folds: int) -> tuple[np.ndarray, np.ndarray]:
    """One problem and its cross-validation splits as solver targets, and the fold of every sample.

    Returns ((1 + folds, n) targets: the whole training set, then each fold's training set with
    its held-out samples set to 0; (n,) fold index as `stratified_folds`).
    """
    fold_of = stratified_folds(targets, folds)
    return np.stack([targets, *(np.where(fold_of == f, 0, targets) for f in range(folds))]), fold_of


def cv_mean_ap(held_out: Tensor, targets: np.ndarray, fold_of: np.ndarray) -> np.ndarray:
    """cross_val_score's mean AP per cost (costs,): each fold's SVMs scored on that fold only.

    held_out (folds, n, costs): decision values of fold f's SVMs on every sample.
    """
    folds, _, costs = held_out.shape
    labels = torch.from_numpy(targets)[:, None].expand(-1, costs)
    total = np.zeros(costs)
    for f in range(folds):
        mask = torch.from_numpy(fold_of == f)[:, None].expand(-1, costs)
        total += sklearn_ap(held_out[f], labels, mask).numpy()
    return total / folds


def _sorted_columns(scores: Tensor, positive: Tensor, negative: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    order = torch.argsort(scores, dim=0, descending=True, stable=True)
    return scores.gather(0, order), positive.gather(0, order), negative.gather(0, order)


def voc_ap(scores: Tensor | np.ndarray, labels: Tensor | np.ndarray) -> Tensor:
    """svm_helper.get_precision_recall AP per column: scores (N, M), labels (N, M) in {1, -1, 0}.

    Rows labelled 0 (difficult) are ignored. AP = area under the monotone precision envelope,
    summed where recall changes (calculate_ap). A column without positives gives NaN, as the
    reference (0/0) does.
    """
    s = torch.as_tensor(np.asarray(scores), dtype=torch.float64)
    lab = torch.as_tensor(np.asarray(labels))
    s, pos, neg = _sorted_columns(s, (lab == 1).double(), (lab == -1).double())
    tp, fp = pos.cumsum(0), neg.cumsum(0)
    precision = tp / (tp + fp).clamp_min(1.0)
    envelope = precision.flip(0).cummax(0).values.flip(0)
    npos = pos.sum(0)
    return (envelope * pos).sum(0) / npos  # recall rises by 1/npos exactly at each positive


def sklearn_ap(scores: Tensor | np.ndarray, labels: Tensor | np.ndarray, mask: Tensor | np.ndarray) -> Tensor:
    """sklearn.metrics.average_precision_score per column over rows where `mask` is true.

    labels (N, M) > 0 is positive; tied scores form one threshold (as sklearn). NaN without positives.
    """
    s = torch.as_tensor(np.asarray(scores), dtype=torch.float64)
    m = torch.as_tensor(np.asarray(mask)).bool()
    lab = torch.as_tensor(np.asarray(labels))
    s = torch.where(m, s, -torch.inf)
    s, pos, used = _sorted_columns(s, ((lab > 0) & m).double(), m.double())
    tp, seen = pos.cumsum(0), used.cumsum(0)
    last = torch.ones_like(s, dtype=torch.bool)
    last[:-1] = s[:-1] != s[1:]  # end of a group of tied scores
    last &= used > 0
    tp_end = torch.where(last, tp, 0.0)
    prev = torch.cat([torch.zeros_like(tp_end[:1]), tp_end[:-1].cummax(0).values])
    precision = tp / seen.clamp_min(1.0)
    npos = pos.sum(0)
    return (torch.where(last, (tp - prev) * precision, 0.0)).sum(0) / npos


def primal_weights(features: Tensor, beta: Tensor, intercept_scaling: float = 1.0) -> tuple[Tensor, Tensor]:
    """(w (D, M), b (M,)) float64 of SVMs with dual coefficients beta (N, M) on `features` (N, D)."""
    w = torch.zeros(features.shape[1], beta.shape[1], dtype=torch.float64)
    for start in range(0, features.shape[0], CHUNK_ROWS):
        rows = slice(start, start + CHUNK_ROWS)
        w += blas.matmul(features[rows].to(torch.float64).T, beta[rows])
    return w, intercept_scaling**2 * beta.sum(0)


def decision_values(features: Tensor, w: Tensor, b: Tensor) -> Tensor:
    """float64 features @ w + b (features (N, D) float32), converted a chunk of rows at a time."""
    return torch.cat([blas.matmul(features[start:start + CHUNK_ROWS].to(torch.float64), w) + b
                      for start in range(0, features.shape[0], CHUNK_ROWS)])
