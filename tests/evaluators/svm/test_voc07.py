from __future__ import annotations

import dataclasses
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import average_precision_score
from sklearn.model_selection import cross_val_score
from sklearn.svm import LinearSVC

from dcbench.backbone import LAYERS, Backbone, build_resnet50
from dcbench.config import replace
from dcbench.datasets.common import DatasetMissingError
from evaluators.svm import voc07 as voc_svm
from evaluators.svm.common import REFERENCE_COSTS, normalize_features, sklearn_ap, voc_ap


def _reference_voc_ap(labels: np.ndarray, scores: np.ndarray) -> float:
    """VOC AP as the reference computes it, written out step by step (difficult rows dropped)."""
    keep = labels != 0
    labels, scores = labels[keep], scores[keep]
    order = np.argsort(-scores, kind="stable")
    hits = (labels[order] == 1).astype(float)
    tp, fp = np.cumsum(hits), np.cumsum(1 - hits)
    prec, rec = tp / (tp + fp), tp / hits.sum()
    mrec, mpre = np.concatenate([[0], rec, [1]]), np.concatenate([[0], prec, [0]])
    for i in range(len(mpre) - 2, -1, -1):
        mpre[i] = max(mpre[i], mpre[i + 1])
    change = np.where(mrec[1:] != mrec[:-1])[0] + 1
    return float(np.sum((mrec[change] - mrec[change - 1]) * mpre[change]))


def test_voc_ap_matches_reference_definition() -> None:
    rng = np.random.default_rng(0)
    labels = rng.choice([1, -1, -1, 0], size=(300, 6)).astype(np.int8)
    scores = rng.normal(size=(300, 6)) + (labels == 1)
    ours = voc_ap(scores, labels).numpy()
    for c in range(6):
        assert ours[c] == pytest.approx(_reference_voc_ap(labels[:, c], scores[:, c]), abs=1e-12)
    assert math.isnan(float(voc_ap(scores[:, :1], -np.ones((300, 1)))[0]))


def test_sklearn_ap_matches_sklearn_with_ties_and_masks() -> None:
    rng = np.random.default_rng(1)
    labels = rng.choice([1, -1, -1], size=(200, 4))
    scores = np.round(rng.normal(size=(200, 4)) + (labels == 1), 1)  # many ties
    mask = rng.random((200, 4)) < 0.6
    ours = sklearn_ap(scores, labels, mask).numpy()
    for c in range(4):
        m = mask[:, c]
        assert ours[c] == pytest.approx(average_precision_score(labels[m, c] > 0, scores[m, c]), abs=1e-12)


def _synthetic(n: int, seed: int, classes: int = 4, dim: int = 48) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    protos = np.random.default_rng(99).normal(size=(classes, dim))
    labels = np.where(rng.random((n, classes)) < 0.25, 1, -1).astype(np.int8)
    labels[(rng.random((n, classes)) < 0.05) & (labels == 1)] = 0  # difficult
    x = np.maximum(0.0, rng.normal(size=(n, dim)) + 0.5 * (labels != -1) @ protos + 0.2)
    return x.astype(np.float32), labels


def test_layer_protocol_matches_sklearn_reference() -> None:
    """Same CV choice and test AP (within 0.1 point) as LinearSVC + cross_val_score, class by class."""
    train, train_labels = _synthetic(240, 0)
    test, test_labels = _synthetic(200, 1)
    costs = (1.0, 10.0, 100.0, 0.0625, 0.0078125, 0.5**12)
    config = replace(voc_svm.TINY, costs=costs, solver_tol=1e-6)
    ours = voc_svm.evaluate_layer(train, train_labels, test, test_labels, config)
    xtr = normalize_features(train).double().numpy()
    xte = normalize_features(test).double().numpy()
    for c in range(train_labels.shape[1]):
        y = np.where(train_labels[:, c] == 1, 1, -1)
        cv, fits = [], []
        for cost in costs:
            clf = LinearSVC(C=cost, class_weight={1: 2, -1: 1}, intercept_scaling=1.0, loss="squared_hinge",
                            dual=True, tol=1e-6, max_iter=100_000)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                cv.append(cross_val_score(clf, xtr, y, cv=3, scoring="average_precision").mean())
                fits.append(clf.fit(xtr, y))
        np.testing.assert_allclose(ours.cv_ap[c], cv, atol=1e-3)
        best = int(np.argmax(cv))
        ref_ap = _reference_voc_ap(test_labels[:, c], fits[best].decision_function(xte))
        assert abs(ours.ap[c] - ref_ap) * 100 < 0.1
    assert ours.max_violation <= 1e-6
    assert math.isfinite(ours.map)


def test_reference_costs_are_the_reference_list() -> None:
    assert REFERENCE_COSTS[:3] == (1.0, 10.0, 100.0)
    assert REFERENCE_COSTS[3:] == tuple(0.5**k for k in range(4, 20))


def test_run_on_tiny_voc_gives_finite_map_per_layer(tiny_voc_root: Path, tiny_voc_cache: Path, tmp_path: Path,
                                                    random_backbone: Backbone, e2e_layers: tuple[str, ...],
                                                    make_ctx) -> None:
    ctx = dataclasses.replace(make_ctx(tmp_path), cache_dir=tiny_voc_cache)
    rows = voc_svm.run(random_backbone, tiny_voc_root, replace(voc_svm.TINY, layers=e2e_layers), ctx)
    assert [r.layer for r in rows] == list(e2e_layers)
    for row in rows:
        assert row.dataset == "voc07" and row.metric == "mAP"
        assert math.isfinite(row.value) and 0.0 <= row.value <= 100.0
    assert (tmp_path / "work" / "voc07_svm_feature5.json").exists()
    assert len(LAYERS) == 5  # every tap shares this code path; two keep the test cheap


def test_missing_dataset_names_the_layout(tmp_path: Path, make_ctx) -> None:
    backbone = Backbone(state_dict=build_resnet50().state_dict(), sobel=False, sha256="cd" * 32,
                        source_format="test")
    with pytest.raises(DatasetMissingError, match="JPEGImages"):
        voc_svm.run(backbone, tmp_path / "nowhere", voc_svm.TINY, make_ctx(tmp_path))
