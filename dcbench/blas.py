"""Large float32 matrix products on the CPU through the fastest kernels at hand.

torch's CPU matmul calls MKL, which on AMD CPUs runs a slow path. Measured on this project's
2-core AMD EPYC (Zen 4, AVX-512), one thread, by `benchmarks/bench_blas.py`:
- the Gram X X^T of 5,011 x 9,216 features: torch 7.25 s, numpy's OpenBLAS 2.24 s (3.2x; numpy runs
  `a @ a.T` as syrk, half the products);
- a fixed 5,011 x 5,011 kernel times 20 / 80 thin vectors (one SVM solver pass): torch 22 / 60 ms,
  numpy 22 / 50 ms, oneDNN with the kernel prepacked once 12 / 39 ms (1.9x / 1.5x; the packing
  is what each thin product repeats).

So `gram` and `matmul` go through numpy, and `Packed` holds a fixed matrix in oneDNN's layout for
repeated products (the layout torch's own CPU inductor uses for linear layers); each falls back
to torch's matmul where the faster kernel is missing. Results equal torch's up to summation order.
numpy's BLAS keeps its own thread pool: run these inside `threads()`, which sets it to torch's
thread count for the block (oneDNN already shares torch's).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from threadpoolctl import ThreadpoolController
from torch import Tensor


def _plain(t: Tensor) -> bool:
    return t.device.type == "cpu" and not t.requires_grad and t.dtype in (torch.float32, torch.float64)


@contextmanager
def threads() -> Iterator[None]:
    """numpy's BLAS at torch's thread count for the block (its pool is sized apart from torch's)."""
    with ThreadpoolController().limit(limits=torch.get_num_threads(), user_api="blas"):
        yield


def matmul(a: Tensor, b: Tensor) -> Tensor:
    """a @ b (CPU, float32/float64, 2-D or batched) through numpy's BLAS."""
    if not (_plain(a) and _plain(b) and a.dtype == b.dtype):
        return a @ b
    return torch.from_numpy(np.matmul(a.numpy(), b.numpy()))


def gram(x: Tensor) -> Tensor:
    """x @ x.T (x (n, d)), as numpy's syrk."""
    if not _plain(x):
        return x @ x.T
    xn = np.ascontiguousarray(x.numpy())
    return torch.from_numpy(xn @ xn.T)


def _onednn_pack(weight: Tensor) -> Tensor | None:
    """oneDNN's prepacked layout of `weight` (out, in) for `_linear_pointwise`; None without oneDNN."""
    if not torch.backends.mkldnn.is_available() or weight.dtype != torch.float32:
        return None
    try:
        return torch.ops.mkldnn._reorder_linear_weight(weight, None)
    except (AttributeError, RuntimeError):
        return None


@dataclass(frozen=True)
class Packed:
    """A fixed float32 matrix M (n, m), kept prepacked for many products x @ M with thin x (P, n)."""

    matrix: Tensor
    packed: Tensor | None  # oneDNN layout of M^T (linear computes x @ W^T); None: plain matmul

    @staticmethod
    def of(matrix: Tensor) -> Packed:
        return Packed(matrix, _onednn_pack(matrix.T.contiguous()))

    def left(self, x: Tensor) -> Tensor:
        """x @ M for x (P, n) float32."""
        if self.packed is None or x.shape[0] == 0:
            return x @ self.matrix
        return torch.ops.mkldnn._linear_pointwise(x.contiguous(), self.packed, None, "none", [], "")
