"""evaluators.svm.linalg: the exact line search, the preconditioner's outer-product updates, the
row-layout and block products of a split kernel."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from evaluators.svm.common import augmented_gram, normalize_features
from evaluators.svm.linalg import Kernel, line_search, objective, weighted_outer


def _line(seed: int, m: int = 6, n: int = 60) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (m, n), generator=gen).double() * 2 - 1
    cw = torch.rand(m, n, generator=gen).double() * (torch.rand(m, n, generator=gen) > 0.2)
    g = torch.randn(n, n, generator=gen).double()
    k = g @ g.T / n
    b, step = torch.randn(m, n, generator=gen).double(), torch.randn(m, n, generator=gen).double()
    step[0] = 0.0  # a row that cannot descend
    return b, step, b @ k, step @ k, y, cw


def _along(t: torch.Tensor, b, step, o, dout, y, cw) -> torch.Tensor:
    return objective(b + t[:, None] * step, o + t[:, None] * dout, y, cw)


@pytest.mark.parametrize("near", [64, 3, 1])  # breakpoints by selection, and the full-sort fallback
@pytest.mark.parametrize("seed", range(5))
def test_line_search_is_the_exact_minimum_along_the_line(seed: int, near: int) -> None:
    b, step, o, dout, y, cw = args = _line(seed)
    t = line_search(b, step, o, dout, y, cw, near=near)
    assert t[0] == 0.0 and bool((t >= 0).all())
    grid = torch.linspace(0.0, 3.0 * float(t.max()) + 1.0, 4001, dtype=torch.float64)
    best = torch.stack([_along(torch.full_like(t, float(g)), *args) for g in grid]).amin(0)
    assert bool((_along(t, *args) <= best + 1e-9).all())
    for eps in (1e-6, -1e-6):  # a local minimum: both neighbours are no lower
        assert bool((_along(t, *args) <= _along((t + eps).clamp_min(0.0), *args) + 1e-12).all())


def test_line_search_agrees_across_the_selection_size() -> None:
    args = _line(7, m=20, n=200)
    torch.testing.assert_close(line_search(*args, near=2), line_search(*args, near=200),
                               rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("grouped", [False, True])
def test_weighted_outer_updates_equal_recomputing(grouped: bool) -> None:
    gen = torch.Generator().manual_seed(0)
    m, n, r = 9, 400, 8
    basis = torch.randn(m if grouped else 1, n, r, generator=gen).double()
    group = torch.arange(m) if grouped else torch.zeros(m, dtype=torch.long)
    weight = (torch.rand(m, n, generator=gen) > 0.5).double()
    act_old = (torch.rand(m, n, generator=gen) > 0.5).double()
    act_new = act_old.clone()
    for row, flips in enumerate([0, 1, 5, 50, 120, 300, 3, 7, 0]):  # few (update) and many (recompute)
        idx = torch.randperm(n, generator=gen)[:flips]
        act_new[row, idx] = 1 - act_new[row, idx]

    def direct(act: torch.Tensor) -> torch.Tensor:
        v = basis[group]
        return (v.transpose(1, 2) * (weight * act)[:, None, :]) @ v

    got = weighted_outer(basis, group, weight, direct(act_old), act_old, act_new)
    torch.testing.assert_close(got, direct(act_new))
    single = weighted_outer(basis.float(), group, weight, direct(act_old), act_old, act_new)  # float32
    assert single.dtype == torch.float64
    torch.testing.assert_close(single, direct(act_new), rtol=1e-4, atol=1e-4)


@pytest.fixture(scope="module")
def gram() -> torch.Tensor:
    rng = np.random.default_rng(0)
    x = np.maximum(0.0, rng.normal(size=(130, 40)) + 0.3)
    return augmented_gram(normalize_features(x))


def test_row_layout_product_equals_the_column_product(gram: torch.Tensor) -> None:
    kernel = Kernel.build(gram[None], 12, seed=0)
    m = torch.randn(1, 5, 130, dtype=torch.float64)
    torch.testing.assert_close(kernel.apply_rows(m), (kernel @ m.transpose(1, 2)).transpose(1, 2))
    torch.testing.assert_close(kernel.apply_rows(m)[0], m[0] @ gram, rtol=1e-6, atol=1e-6)
    assert kernel.packed and len(kernel.packed) == 1


def test_block_product_equals_the_gathered_block(gram: torch.Tensor) -> None:
    kernel = Kernel.build(gram[None], 12, seed=0)
    rows, cols = torch.tensor([3, 0, 99, 17]), torch.arange(40, 100)
    m = torch.randn(60, 7, dtype=torch.float64)
    torch.testing.assert_close(kernel.block_apply(rows, cols, m), gram[rows][:, cols] @ m,
                               rtol=1e-6, atol=1e-6)


def test_packed_restriction_equals_the_batched_one(gram: torch.Tensor) -> None:
    kernel = Kernel.build(gram[None], 12, seed=0)
    index = torch.stack([torch.randperm(130, generator=torch.Generator().manual_seed(s))[:90]
                         for s in range(3)])
    packed, batched = kernel.restrict(index, 16, seed=0, pack_min=0), kernel.restrict(index, 16, seed=0)
    assert len(packed.packed) == 3 and not batched.packed
    m = torch.randn(3, 4, 90, dtype=torch.float64)
    torch.testing.assert_close(packed.apply_rows(m), batched.apply_rows(m), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(packed.pbasis.abs(), batched.pbasis.abs(), rtol=1e-4, atol=1e-5)
