"""dcbench.blas: numpy's BLAS and oneDNN's prepacked products give torch's results, at torch's threads."""

from __future__ import annotations

import numpy as np
import torch
from threadpoolctl import threadpool_info

from dcbench import blas


def test_matmul_and_gram_equal_torch() -> None:
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(3, 40, 30, generator=gen), torch.randn(3, 30, 20, generator=gen)
    torch.testing.assert_close(blas.matmul(a, b), a @ b, rtol=1e-5, atol=1e-5)
    a64 = a.double()
    torch.testing.assert_close(blas.matmul(a64[0].T, a64[1]), a64[0].T @ a64[1])
    x = torch.randn(50, 70, generator=gen)
    torch.testing.assert_close(blas.gram(x), x @ x.T, rtol=1e-5, atol=1e-4)
    assert blas.matmul(a, b).dtype == torch.float32


def test_matmul_falls_back_to_torch_for_what_numpy_cannot_take() -> None:
    a = torch.randn(4, 5, requires_grad=True)
    out = blas.matmul(a, torch.randn(5, 3))
    assert out.requires_grad  # torch's product, so autograd still sees it
    half = torch.randn(4, 5).to(torch.bfloat16)
    assert blas.matmul(half, half.T).dtype == torch.bfloat16


def test_packed_product_equals_plain_product() -> None:
    gen = torch.Generator().manual_seed(1)
    m = torch.randn(300, 200, generator=gen)
    packed = blas.Packed.of(m)
    assert (packed.packed is not None) == torch.backends.mkldnn.is_available()
    for rows in (1, 7, 64):
        x = torch.randn(rows, 300, generator=gen)
        torch.testing.assert_close(packed.left(x), x @ m, rtol=1e-5, atol=1e-4)
        torch.testing.assert_close(packed.left(x.T.contiguous().T), x @ m, rtol=1e-5, atol=1e-4)  # strided x
    assert packed.left(torch.zeros(0, 300)).shape == (0, 200)
    plain = blas.Packed(m, None)
    x = torch.randn(5, 300, generator=gen)
    torch.testing.assert_close(plain.left(x), x @ m)


def _numpy_blas_threads() -> list[int]:
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


def test_threads_sets_numpys_pool_to_torchs_for_the_block() -> None:
    np.ones(1) @ np.ones(1)  # numpy's BLAS is loaded
    before = _numpy_blas_threads()
    assert before, "numpy's BLAS is not visible to threadpoolctl"
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with blas.threads():
            assert set(_numpy_blas_threads()) == {1}
    finally:
        torch.set_num_threads(previous)
    assert _numpy_blas_threads() == before
