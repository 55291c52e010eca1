from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import average_precision_score
from sklearn.model_selection import cross_val_score
from sklearn.svm import LinearSVC

from adapters import load_checkpoint
from dcbench.backbone import LAYERS, Backbone, build_resnet50
from dcbench.config import replace
from dcbench.datasets.common import DatasetMissingError
from dcbench.datasets.voc import read_voc_cls
from dcbench.features import FeatureKey
from evaluators.svm import voc07 as voc_svm
from evaluators.svm.common import (
    REFERENCE_COSTS,
    cv_targets,
    normalize_features,
    sklearn_ap,
    svm_targets,
    voc_ap,
)
from evaluators.svm.data import voc07_transform

ROOT = Path(__file__).resolve().parents[3]


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


def test_fold_problems_cover_every_class_training_set() -> None:
    """Fold f's rows hold every class's fold-f training set, with its targets, and 0 on the other rows."""
    _, labels = _synthetic(240, 0)
    targets = svm_targets(labels)
    index, fold_targets, fold_ids = voc_svm._fold_problems(targets, 3)
    assert index.shape[0] == 3 and fold_targets.shape == (3, targets.shape[1], index.shape[1])
    assert index.shape[1] < len(targets)  # the folds' sub-kernels are smaller than the full one
    for c in range(targets.shape[1]):
        cols, fold_of = cv_targets(targets[:, c], 3)
        np.testing.assert_array_equal(fold_ids[c], fold_of)
        for f in range(3):
            rows = index[f].numpy()
            assert len(set(rows.tolist())) == len(rows)
            expected = np.zeros(len(targets), dtype=cols.dtype)
            expected[rows] = fold_targets[f, c].numpy()
            np.testing.assert_array_equal(expected, cols[1 + f])  # every training row is there, nothing else


def test_full_problems_stop_at_the_largest_chosen_cost(monkeypatch: pytest.MonkeyPatch) -> None:
    train, train_labels = _synthetic(240, 0)
    test, test_labels = _synthetic(200, 1)
    seen = []
    solve = voc_svm.solve_path

    def spy(gram, targets, costs, *args, **kwargs):
        seen.append(tuple(costs))
        return solve(gram, targets, costs, *args, **kwargs)

    monkeypatch.setattr(voc_svm, "solve_path", spy)
    config = replace(voc_svm.TINY, costs=(1.0, 10.0, 100.0, 0.0625, 0.5**8))
    ours = voc_svm.evaluate_layer(train, train_labels, test, test_labels, config)
    assert seen[0] == config.costs  # every cost cross-validated
    assert seen[1] == tuple(c for c in config.costs if c <= ours.chosen.max())


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


def test_torchrun_two_ranks_share_the_extraction_and_write_rows_once(tiny_voc_root: Path, tmp_path: Path,
                                                                     make_ctx) -> None:
    """`torchrun --nproc_per_node 2 -m evaluators.svm` (gloo): each rank extracts about half of every
    split, rank 0's assembled cache equals a one-process extraction bit for bit, rank 0 alone solves,
    and the rows (same values as one process) are written once."""
    torch.manual_seed(0)
    ckpt = tmp_path / "resnet50_tv.pth"
    torch.save(build_resnet50().state_dict(), ckpt)
    work, layers, small = tmp_path / "run", ("feature5",), {"resize_edge": 36, "image_size": 32}  # seconds
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "CUDA_VISIBLE_DEVICES": ""}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "evaluators.svm", "--benchmark", "voc07_svm", "--tiny", "--ckpt", str(ckpt),
           "--data-root", str(tiny_voc_root), "--work-dir", str(work), "--device", "cpu",
           "--set", f"voc07_svm.layers={json.dumps(list(layers))}",
           *[f"--set=voc07_svm.{field}={value}" for field, value in small.items()]]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    rows = pd.read_json(work / "results.jsonl", lines=True, dtype=False)
    assert list(rows["layer"]) == list(layers) and set(rows["status"]) == {"ok"}  # once, by rank 0
    assert set(rows["world_size"]) == {2}
    assert len(list(work.glob("benchmarks/voc07_svm/*/voc07_svm_feature5.json"))) == 1

    config = replace(voc_svm.TINY, layers=layers, **small)
    backbone = load_checkpoint(ckpt)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the ranks ran one thread each
    try:
        solo = voc_svm.run(backbone, tiny_voc_root, config, make_ctx(tmp_path / "solo"))
    finally:
        torch.set_num_threads(threads)
    assert [r.value for r in solo] == list(rows["value"])
    _, transform_id = voc07_transform(config.resize_edge, config.image_size)
    for split in ("trainval", "test"):
        size = len(read_voc_cls(tiny_voc_root / "VOCdevkit" / "VOC2007", split).paths)
        key = FeatureKey(backbone.sha256, "voc07", split, transform_id)
        sharded = key.path(work / "feature_cache", "feature5")
        single = key.path(tmp_path / "solo" / "cache", "feature5")
        np.testing.assert_array_equal(np.load(sharded), np.load(single))
        per_rank = json.loads(sharded.with_suffix(".json").read_text())["rows_per_rank"]
        assert sum(per_rank) == size and len(per_rank) == 2
        batches = [-(-n // config.batch_size) for n in per_rank]
        assert abs(batches[0] - batches[1]) <= 1  # whole batches, split evenly
        assert json.loads(single.with_suffix(".json").read_text())["rows_per_rank"] == [size]
    assert "rank 1/2 extracts images" in done.stderr and "rank 0/2 extracts images" in done.stderr
