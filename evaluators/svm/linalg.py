"""Linear algebra of the batched squared-hinge SVM solver (evaluators.svm.solver).

- `Kernel`: the Gram matrix split as V diag(lam) V^T (top eigenpairs from a randomised Nystrom
  sketch, float64) + R (remainder, float32). Deflating the top eigenpairs makes R small, so its
  float32 products give decision values accurate to ~1e-6 at float32 matrix-product speed.
- `weighted_outer`: V^T diag(mask) V, updated row by row when an active set changes a little.
- `line_search` / `decrease`: exact minimisation of the piecewise-quadratic primal objective
  along a Newton direction, and the change of the objective, without forming totals.
- `violation`: the KKT residual used as stopping rule.
All per-problem helpers take rows = problems, columns = samples: (m, n) tensors.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor


def nystrom(gram: Tensor, rank: int, seed: int) -> tuple[Tensor, Tensor]:
    """Top-`rank` eigenpairs (V (G,n,r), lam (G,r)) of each Gram of the batch."""
    g, n, _ = gram.shape
    rank = min(rank, n)
    if _exact(n, rank):
        lam, vec = torch.linalg.eigh(gram)
        return vec[..., -rank:].contiguous(), lam[..., -rank:].clamp_min(1e-12)
    gram32 = gram.to(torch.float32)
    return _sketch(lambda q: torch.bmm(gram32, q.to(torch.float32)).to(torch.float64), g, n, rank, seed)


def _exact(n: int, rank: int) -> bool:
    """Small matrices get a full eigendecomposition instead of a sketch."""
    return n <= 2 * rank + 16


def _remainder_level(lam: Tensor, n: int) -> Tensor:
    """The preconditioner's level for the spectrum below the kept eigenpairs: 0 when all are kept."""
    return torch.zeros_like(lam[:, 0]) if lam.shape[1] >= n else lam[:, 0].clone()


def _apply(basis: Tensor, lam: Tensor, resid: Tensor, m: Tensor) -> Tensor:
    """(V diag(lam) V^T + R) @ m, the low-rank part in float64, R in float32."""
    low = basis @ (lam[:, :, None] * (basis.transpose(1, 2) @ m))
    # R is symmetric: R @ m = (m^T @ R)^T, which BLAS runs 1.2-4x faster for few columns.
    rest = torch.bmm(m.to(torch.float32).transpose(1, 2), resid).transpose(1, 2)
    return low + rest.to(torch.float64)


def _dense(basis: Tensor, lam: Tensor, resid: Tensor) -> Tensor:
    return (basis * lam[:, None, :]) @ basis.transpose(1, 2) + resid.to(torch.float64)


def _sketch(apply: Callable[[Tensor], Tensor], groups: int, n: int, rank: int, seed: int, power: int = 2
            ) -> tuple[Tensor, Tensor]:
    """Randomised range finder (`power` power iterations) + Rayleigh-Ritz through products `apply`."""
    gen = torch.Generator().manual_seed(seed)
    basis = torch.randn(groups, n, rank + 16, generator=gen, dtype=torch.float64)
    for _ in range(power + 1):
        basis, _ = torch.linalg.qr(apply(basis))
    small = basis.transpose(1, 2) @ apply(basis)
    lam, vec = torch.linalg.eigh((small + small.transpose(1, 2)) / 2)
    return (basis @ vec[..., -rank:]).contiguous(), lam[..., -rank:].clamp_min(1e-12)


@dataclass(frozen=True)
class Kernel:
    """K = V diag(lam) V^T + R: the top of the spectrum in float64, the (small) rest in float32.

    Deflating the top eigenpairs makes the float32 remainder small, so its products are accurate
    to ~1e-6 in the decision values while running at float32 matrix-product speed. The CG
    preconditioner has its own low-rank part (U diag(mu) U^T, orthonormal U, + `shift` for the
    rest of the spectrum): the same as (V, lam) for `build`, a sketch of each sub-kernel for
    `restrict`. It only affects speed, never the solution.
    """

    basis: Tensor  # (G, n, r) float64
    lam: Tensor  # (G, r) float64
    resid: Tensor  # (G, n, n) float32
    pbasis: Tensor  # (G, n, q) float64, orthonormal columns (preconditioner)
    plam: Tensor  # (G, q) float64, ascending (preconditioner)
    shift: Tensor  # (G,) level assumed for the remainder's spectrum in the preconditioner

    @staticmethod
    def build(gram: Tensor, rank: int, seed: int) -> Kernel:
        basis, lam = nystrom(gram, rank, seed)
        resid = (gram - (basis * lam[:, None, :]) @ basis.transpose(1, 2)).to(torch.float32)
        return Kernel(basis, lam, resid, basis, lam, _remainder_level(lam, gram.shape[1]))

    def restrict(self, index: Tensor, rank: int, seed: int) -> Kernel:
        """Sub-kernels K[S_g, S_g] of a single kernel (G = 1), one per row S_g of `index` (G', m).

        The operator is exact (K_S = V_S diag(lam) V_S^T + R_S) and gathers float32 entries only;
        the preconditioner is an eigendecomposition (small m) or sketch of each K_S, so it fits the
        sub-problem as well as a sketch of a gathered float64 sub-Gram would, at a fraction of the cost.
        """
        if self.resid.shape[0] != 1 or index.dim() != 2:
            raise ValueError("restrict needs a single kernel (G = 1) and a (G', m) index")
        groups, m = index.shape
        basis, lam = self.basis[0][index], self.lam.expand(groups, -1).contiguous()
        resid = self.resid[0][index[:, :, None], index[:, None, :]]
        if _exact(m, min(rank, m)):
            pbasis, plam = nystrom(_dense(basis, lam, resid), rank, seed)
        else:
            pbasis, plam = _sketch(lambda q: _apply(basis, lam, resid, q), groups, m, rank, seed)
        return Kernel(basis, lam, resid, pbasis, plam, _remainder_level(plam, m))

    def dense(self) -> Tensor:
        """The float64 matrices (G, n, n)."""
        return _dense(self.basis, self.lam, self.resid)

    def __matmul__(self, m: Tensor) -> Tensor:
        return _apply(self.basis, self.lam, self.resid, m)


def weighted_outer(basis: Tensor, weight: Tensor, old: Tensor, act_old: Tensor, act_new: Tensor) -> Tensor:
    """V^T diag(weight * act_new) V, updated from `old` (the same for act_old) when few rows flip."""
    delta = act_new - act_old
    idx = delta.nonzero().squeeze(1)
    if idx.numel() > basis.shape[0] // 4:
        return (basis.T * (weight * act_new)) @ basis
    rows = basis[idx]
    return old + (rows.T * (weight[idx] * delta[idx])) @ rows


def slope(t: Tensor, lin: Tensor, quad: Tensor, o: Tensor, dout: Tensor, y: Tensor, cw: Tensor
           ) -> tuple[Tensor, Tensor]:
    """First and second derivative in t of the objective along the line (rows of (m, n) inputs)."""
    margin = (1.0 - y * (o + t[:, None] * dout)).clamp_min(0.0) * (cw > 0)
    d1 = lin + t * quad - 2.0 * (cw * margin * y * dout).sum(1)
    d2 = quad + 2.0 * (cw * (margin > 0) * dout * dout).sum(1)
    return d1, d2


def line_search(b: Tensor, step: Tensor, o: Tensor, dout: Tensor, y: Tensor, cw: Tensor) -> Tensor:
    """Exact argmin_{t>=0} along b + t*step, per row: safeguarded Newton on the piecewise-linear slope."""
    lin, quad = (b * dout).sum(1), (step * dout).sum(1)
    lo, hi = torch.zeros_like(lin), torch.ones_like(lin)
    for _ in range(40):  # grow the bracket until the slope at `hi` is non-negative
        up = slope(hi, lin, quad, o, dout, y, cw)[0] < 0
        if not bool(up.any()):
            break
        lo, hi = torch.where(up, hi, lo), torch.where(up, 2.0 * hi, hi)
    t = hi.clone()
    for _ in range(100):
        d1, d2 = slope(t, lin, quad, o, dout, y, cw)
        lo, hi = torch.where(d1 < 0, t, lo), torch.where(d1 > 0, t, hi)
        newton = t - d1 / d2.clamp_min(1e-300)
        inside = (newton > lo) & (newton < hi)
        nxt = torch.where(d1 == 0, t, torch.where(inside, newton, 0.5 * (lo + hi)))
        if bool(((nxt - t).abs() <= 1e-10 * (1.0 + t)).all()):
            t = nxt
            break
        t = nxt
    return torch.where(slope(torch.zeros_like(t), lin, quad, o, dout, y, cw)[0] < 0, t, 0.0)


def objective(b: Tensor, o: Tensor, y: Tensor, cw: Tensor) -> Tensor:
    hinge = (1.0 - y * o).clamp_min(0.0) * (cw > 0)
    return 0.5 * (b * o).sum(1) + (cw * hinge * hinge).sum(1)


def decrease(t: Tensor, b: Tensor, step: Tensor, o: Tensor, dout: Tensor, y: Tensor, cw: Tensor) -> Tensor:
    """objective(b + t*step) - objective(b), computed without cancellation of the totals."""
    h0 = (1.0 - y * o).clamp_min(0.0) * (cw > 0)
    ht = (1.0 - y * (o + t[:, None] * dout)).clamp_min(0.0) * (cw > 0)
    quad = t * (b * dout).sum(1) + 0.5 * t * t * (step * dout).sum(1)
    return quad + (cw * (ht - h0) * (ht + h0)).sum(1)


def violation(b: Tensor, o: Tensor, y: Tensor, cw: Tensor) -> Tensor:
    """max_i |alpha_i / 2C_i - max(0, 1 - y_i f_i)| over training rows (rows of (m, n) inputs)."""
    resid = (y * b / (2.0 * cw).clamp_min(1e-300) - (1.0 - y * o).clamp_min(0.0)).abs()
    return torch.where(cw > 0, resid, 0.0).amax(1)
