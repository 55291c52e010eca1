from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import average_precision_score
from sklearn.svm import LinearSVC

from evaluators.svm.common import REFERENCE_COSTS, augmented_gram, normalize_features, primal_weights
from evaluators.svm.linalg import Kernel
from evaluators.svm.solver import SolverError, SolverSettings, cost_lanes, solve_path

COSTS = (0.01, 0.1, 1.0, 10.0)


def _data(n: int, d: int, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Non-negative features with a class signal (separable-ish, like pooled CNN features)."""
    rng = np.random.default_rng(seed)
    labels = np.where(rng.random((n, classes)) < 0.3, 1, -1).astype(np.int8)
    protos = rng.normal(size=(classes, d))
    x = np.maximum(0.0, rng.normal(size=(n, d)) + 0.35 * (labels > 0) @ protos + 0.3)
    return x, labels


@pytest.fixture(scope="module")
def problem() -> dict[str, object]:
    x, y = _data(300, 120, 3, seed=0)
    xt, yt = _data(200, 120, 3, seed=0)  # same prototypes (same seed), fresh samples below
    rng = np.random.default_rng(1)
    xt = np.maximum(0.0, xt + 0.05 * rng.normal(size=xt.shape))
    return {"x": normalize_features(x), "y": y, "xt": normalize_features(xt), "yt": yt}


def _liblinear(x: torch.Tensor, y: np.ndarray, cost: float) -> LinearSVC:
    clf = LinearSVC(C=cost, class_weight={1: 2, -1: 1}, intercept_scaling=1.0, penalty="l2",
                    loss="squared_hinge", dual=True, tol=1e-8, max_iter=200_000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return clf.fit(x.double().numpy(), y)


def test_matches_liblinear_linear_svc(problem: dict[str, object]) -> None:
    x, y, xt, yt = problem["x"], problem["y"], problem["xt"], problem["yt"]
    gram = augmented_gram(x)
    res = solve_path(gram[None], torch.from_numpy(y.T.copy())[None], COSTS, settings=SolverSettings(tol=1e-6))
    assert res.violation.max() <= 1e-6
    for k, cost in enumerate(COSTS):
        w, b = primal_weights(x, res.beta[k, 0])
        ours = (xt.double() @ w + b).numpy()
        for c in range(y.shape[1]):
            ref = _liblinear(x, y[:, c], cost)
            theirs = ref.decision_function(xt.double().numpy())
            np.testing.assert_allclose(ours[:, c], theirs, atol=2e-3 * (1 + np.abs(theirs).max()))
            ap_ours = average_precision_score(yt[:, c] > 0, ours[:, c])
            ap_ref = average_precision_score(yt[:, c] > 0, theirs)
            assert abs(ap_ours - ap_ref) * 100 < 0.1, (cost, c, ap_ours, ap_ref)
            scale = 1 + np.abs(ref.coef_).max()
            np.testing.assert_allclose(w[:, c].numpy(), ref.coef_[0], atol=5e-3 * scale)
            assert b[c].item() == pytest.approx(ref.intercept_[0], abs=5e-3 * (1 + abs(ref.intercept_[0])))


def test_masked_problem_equals_subset(problem: dict[str, object]) -> None:
    x, y = problem["x"], problem["y"]
    keep = np.arange(len(y)) % 3 != 0
    masked = np.where(keep, y[:, 0], 0)
    tight = SolverSettings(tol=1e-6)
    full = solve_path(augmented_gram(x)[None], torch.from_numpy(masked)[None, None], (1.0,), settings=tight)
    sub = solve_path(augmented_gram(x[keep])[None], torch.from_numpy(y[keep, 0])[None, None], (1.0,),
                     settings=tight)
    np.testing.assert_allclose(full.beta[0, 0, keep, 0], sub.beta[0, 0, :, 0], atol=2e-5)
    assert torch.all(full.beta[0, 0, ~keep, 0] == 0)
    np.testing.assert_allclose(full.outputs[0, 0, keep, 0], sub.outputs[0, 0, :, 0], atol=2e-5)


def test_groups_and_cost_order_are_independent(problem: dict[str, object]) -> None:
    x, y = problem["x"], problem["y"]
    a, b = x[:150], x[150:]
    grams = torch.stack([augmented_gram(a), augmented_gram(b)])
    targets = torch.from_numpy(np.stack([y[:150, :2].T, y[150:, :2].T]))
    tight = SolverSettings(tol=1e-6)
    together = solve_path(grams, targets, (10.0, 0.1), settings=tight)
    alone = solve_path(grams[1:], targets[1:], (0.1, 10.0), settings=tight)
    np.testing.assert_allclose(together.outputs[0, 1], alone.outputs[1, 0], atol=1e-5)
    np.testing.assert_allclose(together.outputs[1, 1], alone.outputs[0, 0], atol=1e-5)


@pytest.mark.parametrize("m", [20, 120])  # eigendecomposition / sketch preconditioner
def test_restricted_kernel_equals_gathered_gram(problem: dict[str, object], m: int) -> None:
    x, y = problem["x"], problem["y"]
    gram = augmented_gram(x)
    rng = np.random.default_rng(0)
    index = torch.from_numpy(np.stack([rng.choice(len(y), m, replace=False) for _ in range(3)]))
    gathered = gram[index[:, :, None], index[:, None, :]]
    sub = Kernel.build(gram[None], 8, seed=0).restrict(index, 16, seed=0)
    np.testing.assert_allclose(sub.dense(), gathered, atol=1e-6)
    assert sub.pbasis.shape == (3, m, 16)
    targets = torch.from_numpy(np.stack([y[i, :2].T for i in index.numpy()]))
    tight = SolverSettings(tol=1e-6)
    ours = solve_path(sub, targets, COSTS, settings=tight)
    ref = solve_path(gathered, targets, COSTS, settings=tight)
    np.testing.assert_allclose(ours.outputs, ref.outputs, atol=2e-5)


def test_cost_lanes_split_small_and_large_costs() -> None:
    assert cost_lanes(REFERENCE_COSTS, 0.1) == [(0, 16), (16, 19)]
    assert cost_lanes((1.0, 10.0), 0.1) == [(0, 2)]
    assert cost_lanes((0.01, 0.02), 0.1) == [(0, 2)]


def test_lanes_reach_the_single_chain_solution(problem: dict[str, object]) -> None:
    x, y = problem["x"], problem["y"]
    gram, targets = augmented_gram(x)[None], torch.from_numpy(y.T.copy())[None]
    chain = solve_path(gram, targets, COSTS, settings=SolverSettings(tol=1e-6, split_cost=0.0))
    lanes = solve_path(gram, targets, COSTS, settings=SolverSettings(tol=1e-6, split_cost=0.5))
    np.testing.assert_allclose(lanes.outputs, chain.outputs, atol=2e-5)
    assert lanes.violation.max() <= 1e-6


def test_rejects_bad_input(problem: dict[str, object]) -> None:
    gram = augmented_gram(problem["x"])[None]
    good = torch.from_numpy(problem["y"].T.copy())[None]
    with pytest.raises(SolverError, match="targets must hold only"):
        solve_path(gram, good * 2, (1.0,))
    with pytest.raises(SolverError, match="positive"):
        solve_path(gram, good, (0.0, 1.0))
    with pytest.raises(SolverError, match="matching gram"):
        solve_path(gram, good[:, :, :-1], (1.0,))
    with pytest.raises(SolverError, match="at least one training sample"):
        solve_path(gram, torch.zeros_like(good), (1.0,))
