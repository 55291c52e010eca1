from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.svm import LinearSVC

from dcbench.backbone import Backbone, build_resnet50
from dcbench.config import replace
from dcbench.context import RunContext
from dcbench.tiny import make_tiny
from evaluators.svm import lowshot as voc_lowshot
from evaluators.svm.common import normalize_features, voc_ap
from evaluators.svm.samples import load_or_draw

CLASSES = ("a", "b", "c")


def _labels(n: int, seed: int) -> tuple[np.ndarray, tuple[str, ...]]:
    rng = np.random.default_rng(seed)
    labels = np.where(rng.random((n, 3)) < 0.35, 1, -1).astype(np.int8)
    labels[(rng.random((n, 3)) < 0.05)] = 0
    return labels, tuple(f"{i:06d}" for i in range(n))


def test_samples_follow_the_reference_recipe_and_are_saved(tmp_path: Path) -> None:
    labels, ids = _labels(120, 0)
    path = tmp_path / "samples.json"
    samples = load_or_draw(path, labels, ids, CLASSES, (1, 4, 64), num_samples=3, seed=7)
    assert samples.k_values == (1, 4) and 64 in samples.skipped and "k=64" in samples.skipped[64]
    for k in samples.k_values:
        idx, tgt = samples.indices[k], samples.targets[k]
        assert idx.shape == (3, 3, 3 * k)
        for s in range(3):
            for c in range(3):
                assert np.all(np.diff(idx[s, c]) > 0)  # distinct, dataset order
                assert (tgt[s, c] == 1).sum() == k and (tgt[s, c] == -1).sum() == 2 * k
                np.testing.assert_array_equal(labels[idx[s, c], c], tgt[s, c])  # never a difficult one
        assert not np.array_equal(idx[0], idx[1])  # independent samples
    saved = json.loads(path.read_text())
    assert saved["seed"] == 7 and saved["skipped"]["64"] == samples.skipped[64]
    assert len(saved["samples"]["4"][2]["b"]["positives"]) == 4
    again = load_or_draw(path, labels, ids, CLASSES, (1, 4, 64), num_samples=3, seed=7)
    for k in samples.k_values:
        np.testing.assert_array_equal(again.indices[k], samples.indices[k])
        np.testing.assert_array_equal(again.targets[k], samples.targets[k])
    fresh = load_or_draw(tmp_path / "other.json", labels, ids, CLASSES, (1, 4, 64), num_samples=3, seed=7)
    np.testing.assert_array_equal(fresh.indices[4], samples.indices[4])  # deterministic from the seed
    other_seed = load_or_draw(path, labels, ids, CLASSES, (1, 4), num_samples=3, seed=8)
    assert not np.array_equal(other_seed.indices[4], samples.indices[4])


def test_layer_matches_per_sample_liblinear(tmp_path: Path) -> None:
    """Test mAP per (sample, cost) equals LinearSVC trained on each class's sample."""
    rng = np.random.default_rng(0)
    protos = rng.normal(size=(3, 32))
    labels, ids = _labels(150, 1)
    test_labels, _ = _labels(90, 2)
    train = np.maximum(0, rng.normal(size=(150, 32)) + 0.6 * (labels == 1) @ protos).astype(np.float32)
    test = np.maximum(0, rng.normal(size=(90, 32)) + 0.6 * (test_labels == 1) @ protos).astype(np.float32)
    samples = load_or_draw(tmp_path / "s.json", labels, ids, CLASSES, (1, 4), num_samples=2, seed=0)
    costs = (0.1, 1.0, 10.0)
    config = replace(voc_lowshot.TINY, costs=costs, solver_tol=1e-6)
    results = voc_lowshot.evaluate_layer(train, test, test_labels, samples, config)
    xtr, xte = normalize_features(train).double().numpy(), normalize_features(test).double().numpy()
    k = 4
    for s in range(2):
        for j, cost in enumerate(costs):
            aps = []
            for c in range(3):
                rows = samples.indices[k][s, c]
                clf = LinearSVC(C=cost, class_weight={1: 2, -1: 1}, intercept_scaling=1.0, dual=True,
                                tol=1e-8, max_iter=100_000)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    clf.fit(xtr[rows], samples.targets[k][s, c])
                scores = torch.from_numpy(clf.decision_function(xte))[:, None]
                aps.append(float(voc_ap(scores, torch.from_numpy(test_labels[:, c : c + 1]))[0]))
            assert results[k].test_map[s, j] == pytest.approx(np.mean(aps), abs=1e-3)
    ref, clean = voc_lowshot.summarize(results[k])
    assert ref == pytest.approx(results[k].test_map.mean(0).max() * 100)
    assert clean is not None and clean <= ref + 1e-9  # the test-selected cost is an upper bound
    assert voc_lowshot.summarize(results[1])[1] is None  # no CV with one positive


def test_run_on_tiny_voc(tmp_path: Path) -> None:
    root = make_tiny(tmp_path / "data", seed=0, datasets=["voc2007"])
    torch.manual_seed(0)
    backbone = Backbone(state_dict=build_resnet50().state_dict(), sobel=False, sha256="ef" * 32,
                        source_format="test")
    ctx = RunContext(work_dir=tmp_path / "work", cache_dir=tmp_path / "cache", device=torch.device("cpu"),
                     seed=0, progress=False)
    config = replace(voc_lowshot.TINY, layers=("feature4", "feature5"), num_samples=1, k_values=(1, 2, 96))
    rows = voc_lowshot.run(backbone, root, config, ctx)
    saved = json.loads((ctx.work_dir / voc_lowshot.SAMPLES_FILE).read_text())
    feasible = sorted(int(k) for k in saved["samples"])
    assert feasible == [1, 2, 96] and not saved["skipped"]  # the tiny trainval supports the largest k
    means = [r for r in rows if r.metric == "mAP"]
    refs = {(r.layer, r.k) for r in means if r.variant == "reference"}
    assert refs == {(layer, k) for layer in config.layers for k in feasible}
    assert {(r.layer, r.k) for r in means if r.variant == "clean"} == {x for x in refs if x[1] >= 2}
    assert all(r.dataset == "voc07" and math.isfinite(r.value) for r in rows)
    stats = {(r.layer, r.k, r.variant): [] for r in means}
    for r in rows:
        stats[(r.layer, r.k, r.variant)].append(r.metric)
    assert all(metrics == ["mAP", "mAP_min", "mAP_max", "mAP_std"] for metrics in stats.values())
    one_sample = [r for r in rows if r.metric == "mAP_std"]
    assert all(r.value == 0.0 for r in one_sample)  # num_samples=1: no spread
    details = json.loads((ctx.work_dir / "voc07_lowshot_feature5.json").read_text())
    assert set(details["k"]["2"]["reference"]) == {"mAP", "mAP_min", "mAP_max", "mAP_std"}
    assert not list(ctx.work_dir.glob("*.png"))  # the plot is drawn by reports from the rows


def test_min_max_std_over_the_samples_at_the_reference_cost_choice() -> None:
    """As aggregate_low_shot_svm_stats.py: the cost of the highest sample mean, then min/max/std there."""
    test_map = np.array([[0.10, 0.50, 0.20], [0.30, 0.40, 0.90], [0.20, 0.60, 0.10]])  # (samples, costs)
    cv_map = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])  # per-sample CV picks
    result = voc_lowshot.KResult(test_map=test_map, cv_map=cv_map, passes=1)
    rows = {(m.variant, m.metric): m.value for m in voc_lowshot.measurements("feature5", 8, result)}
    at = test_map[:, 1] * 100  # the cost with the highest mean (0.5), not each sample's best
    assert rows[("reference", "mAP")] == pytest.approx(at.mean())
    assert (rows[("reference", "mAP_min")], rows[("reference", "mAP_max")]) == pytest.approx((40.0, 60.0))
    assert rows[("reference", "mAP_std")] == pytest.approx(np.std(at))  # ddof 0, as np.std
    assert rows[("reference", "mAP_std")] == pytest.approx(np.sqrt(200 / 3))
    clean = np.array([50.0, 90.0, 20.0])  # each sample at its own CV cost
    assert rows[("clean", "mAP")] == pytest.approx(clean.mean())
    assert (rows[("clean", "mAP_min")], rows[("clean", "mAP_max")]) == pytest.approx((20.0, 90.0))
    assert rows[("clean", "mAP_std")] == pytest.approx(np.std(clean))
    assert voc_lowshot.summarize(result) == pytest.approx((at.mean(), clean.mean()))
    no_cv = voc_lowshot.measurements("feature5", 1, voc_lowshot.KResult(test_map, None, 1))
    assert {m.variant for m in no_cv} == {"reference"} and len(no_cv) == 4


def test_test_scores_dense_and_gathered_paths_agree() -> None:
    gen = torch.Generator().manual_seed(0)
    cross = torch.randn(40, 7, generator=gen, dtype=torch.float64)
    beta = torch.randn(3, 2, 12, generator=gen, dtype=torch.float64)  # (costs, groups, m)
    sel = torch.stack([torch.randperm(40, generator=gen)[:12] for _ in range(2)])
    expected = torch.stack([cross[sel[g]].T @ beta[:, g].T for g in range(2)])
    torch.testing.assert_close(voc_lowshot._test_scores(cross, sel, beta), expected)  # dense: 4*12 >= 40
    torch.testing.assert_close(voc_lowshot._test_scores(cross, sel[:, :5], beta[:, :, :5]),
                               torch.stack([cross[sel[g, :5]].T @ beta[:, g, :5].T for g in range(2)]))
