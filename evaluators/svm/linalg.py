"""Linear algebra of the batched squared-hinge SVM solver (evaluators.svm.solver).

- `Kernel`: the Gram matrix split as V diag(lam) V^T (top eigenpairs from a randomised Nystrom
  sketch, float64) + R (remainder, float32). Deflating the top eigenpairs makes R small, so its
  float32 products give decision values accurate to ~1e-6 at float32 matrix-product speed.
- `weighted_outer`: V^T diag(mask) V per problem, updated from the flipped rows when an active set
  changes a little.
- `line_search` / `decrease`: exact minimisation of the piecewise-quadratic primal objective
  along a Newton direction (sorted breakpoints), and the change of the objective, without forming totals.
- `violation`: the KKT residual used as stopping rule.
All per-problem helpers take rows = problems, columns = samples: (m, n) tensors.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from dcbench.blas import Packed, matmul


def nystrom(gram: Tensor, rank: int, seed: int) -> tuple[Tensor, Tensor]:
    """Top-`rank` eigenpairs (V (G,n,r), lam (G,r)) of each Gram of the batch."""
    g, n, _ = gram.shape
    rank = min(rank, n)
    if _exact(n, rank):
        lam, vec = torch.linalg.eigh(gram)
        return vec[..., -rank:].contiguous(), lam[..., -rank:].clamp_min(1e-12)
    gram32 = gram.to(torch.float32)
    return _sketch(lambda q: matmul(gram32, q.to(torch.float32)).to(torch.float64), g, n, rank, seed)


def _exact(n: int, rank: int) -> bool:
    """Small matrices get a full eigendecomposition instead of a sketch."""
    return n <= 2 * rank + 16


def _remainder_level(lam: Tensor, n: int) -> Tensor:
    """The preconditioner's level for the spectrum below the kept eigenpairs: 0 when all are kept."""
    return torch.zeros_like(lam[:, 0]) if lam.shape[1] >= n else lam[:, 0].clone()


def _apply(basis: Tensor, lam: Tensor, resid: Tensor, m: Tensor, packed: Sequence[Packed] = ()) -> Tensor:
    """(V diag(lam) V^T + R) @ m, the low-rank part in float64, R in float32 (`packed`: R per group)."""
    low = matmul(basis, lam[:, :, None] * matmul(basis.transpose(1, 2), m))
    # R is symmetric: R @ m = (m^T @ R)^T, which BLAS runs 1.2-4x faster for few columns.
    rest = _remainder_rows(resid, packed, m.to(torch.float32).transpose(1, 2))
    return low + rest.transpose(1, 2).to(torch.float64)


def _remainder_rows(resid: Tensor, packed: Sequence[Packed], rows: Tensor) -> Tensor:
    """rows @ R per group for float32 rows (G, P, n): the prepacked R where there is one, else one batch."""
    return torch.stack([p.left(rows[g]) for g, p in enumerate(packed)]) if packed else torch.bmm(rows, resid)


def _remainder(gram: Tensor, basis: Tensor, lam: Tensor, rows: int = 256) -> Tensor:
    """float32 gram - V diag(lam) V^T, a block of rows at a time (no full-size float64 temporaries)."""
    out = torch.empty(gram.shape, dtype=torch.float32)
    scaled = basis * lam[:, None, :]
    for g in range(gram.shape[0]):
        right = basis[g].T.contiguous()
        for start in range(0, gram.shape[1], rows):
            block = slice(start, start + rows)
            out[g, block] = gram[g, block] - matmul(scaled[g, block], right)
    return out


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


PACK_MIN = 1024  # sub-kernels from this many rows up are prepacked (see Kernel.restrict)


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
    packed: tuple[Packed, ...] = ()  # R of each group prepacked for thin products (`build`), or none

    @staticmethod
    def build(gram: Tensor, rank: int, seed: int) -> Kernel:
        """Split each Gram of the batch; the remainders are prepacked (each solver pass multiplies them)."""
        basis, lam = nystrom(gram, rank, seed)
        resid = _remainder(gram, basis, lam)
        packed = tuple(Packed.of(r) for r in resid)
        return Kernel(basis, lam, resid, basis, lam, _remainder_level(lam, gram.shape[1]), packed)

    def restrict(self, index: Tensor, rank: int, seed: int, pack_min: int = PACK_MIN) -> Kernel:
        """Sub-kernels K[S_g, S_g] of a single kernel (G = 1), one per row S_g of `index` (G', m).

        The operator is exact (K_S = V_S diag(lam) V_S^T + R_S) and gathers float32 entries only;
        the preconditioner is an eigendecomposition (small m) or sketch of each K_S, so it fits the
        sub-problem as well as a sketch of a gathered float64 sub-Gram would, at a fraction of the cost.
        Sub-kernels of at least `pack_min` rows are prepacked (few large ones: the full protocol's
        folds); smaller ones are multiplied as one batch (many small ones: low-shot).
        """
        if self.resid.shape[0] != 1 or index.dim() != 2:
            raise ValueError("restrict needs a single kernel (G = 1) and a (G', m) index")
        groups, m = index.shape
        basis, lam = self.basis[0][index], self.lam.expand(groups, -1).contiguous()
        resid = self.resid[0][index[:, :, None], index[:, None, :]]
        packed = tuple(Packed.of(r) for r in resid) if m >= pack_min else ()
        if _exact(m, min(rank, m)):
            pbasis, plam = nystrom(_dense(basis, lam, resid), rank, seed)
        else:
            pbasis, plam = _sketch(lambda q: _apply(basis, lam, resid, q, packed), groups, m, rank, seed)
        return Kernel(basis, lam, resid, pbasis, plam, _remainder_level(plam, m), packed)

    def block_apply(self, rows: Tensor, cols: Tensor, m: Tensor) -> Tensor:
        """K[rows, cols] @ m (m (len(cols), P) float64) of a single kernel (G = 1), at `@`'s precision."""
        low = matmul(self.basis[0][rows] * self.lam[0], matmul(self.basis[0][cols].T, m))
        rest = matmul(self.resid[0][rows[:, None], cols[None, :]], m.to(torch.float32))
        return low + rest.to(torch.float64)

    def dense(self) -> Tensor:
        """The float64 matrices (G, n, n)."""
        return _dense(self.basis, self.lam, self.resid)

    def __matmul__(self, m: Tensor) -> Tensor:
        return _apply(self.basis, self.lam, self.resid, m, self.packed)

    def apply_rows(self, m: Tensor) -> Tensor:
        """(K @ m^T)^T for m (G, P, n): the product with vectors stored as rows (K is symmetric)."""
        low = matmul(matmul(m, self.basis) * self.lam[:, None, :], self.basis.transpose(1, 2))
        return low + _remainder_rows(self.resid, self.packed, m.to(torch.float32)).to(torch.float64)


def weighted_outer(basis: Tensor, group: Tensor, weight: Tensor, old: Tensor, act_old: Tensor, act_new: Tensor
                   ) -> Tensor:
    """V_g^T diag(weight * act_new) V_g per row of (m, n) `weight` / `act_*`, updated from `old` (m, r, r).

    `basis` (G, n, r) holds the V of every group, `group` (m,) the group of each row; the products
    run in its dtype (float32 is enough for a preconditioner), the result has `old`'s. A row whose
    active flags flipped on at most n / 4 samples adds the outer products of those samples' rows of
    V (gathered, padded to the most flips of any such row, one batched product); the others are
    recomputed.
    """
    n = act_new.shape[1]
    delta = ((act_new - act_old) * weight).to(basis.dtype)
    flips = (delta != 0).sum(1)
    many = flips > n // 4
    out = old.clone()
    if bool(many.any()):
        v = basis[group[many]]
        scaled = v.transpose(1, 2) * (weight * act_new)[many].to(basis.dtype)[:, None, :]
        out[many] = matmul(scaled, v).to(old.dtype)
    few = (~many & (flips > 0)).nonzero().squeeze(1)
    if few.numel():
        width = int(flips[few].max())
        pos = torch.argsort((delta[few] == 0).to(torch.int8), dim=1, stable=True)[:, :width]  # flipped first
        rows = basis[group[few][:, None], pos]
        out[few] += matmul(rows.transpose(1, 2) * delta[few].gather(1, pos)[:, None, :], rows).to(old.dtype)
    return out


def line_search(b: Tensor, step: Tensor, o: Tensor, dout: Tensor, y: Tensor, cw: Tensor, near: int = 64
                ) -> Tensor:
    """Exact argmin_{t>=0} of the objective along b + t*step, per row (0 where it does not descend).

    With u = 1 - y o and v = y dout the slope is
    d(t) = lin + t quad - 2 sum_{u_i > t v_i} cw_i (u_i - t v_i) v_i:
    linear between the breakpoints t_i = u_i / v_i > 0, where one hinge term leaves or joins the
    active set, and non-decreasing (the objective is convex). Cumulative sums of the changes at the
    sorted breakpoints give d at each; the root is in the first segment whose right end has d >= 0,
    where d is linear. The `near` smallest breakpoints of a row are found by selection (the root of
    a Newton step is nearly always among them); rows whose root lies beyond are sorted in full.
    """
    train = cw > 0
    u, v = 1.0 - y * o, y * dout
    act0 = train & ((u > 0) | ((u == 0) & (v < 0)))  # active just after t = 0
    a0 = (b * dout).sum(1) - 2.0 * torch.where(act0, cw * u * v, 0.0).sum(1)
    b0 = (step * dout).sum(1) + 2.0 * torch.where(act0, cw * v * v, 0.0).sum(1)
    tau = u / torch.where(v == 0, 1.0, v)
    event = train & (v != 0) & (tau > 0)
    sign = torch.where(act0, 1.0, -1.0)  # an active term leaves at its breakpoint, an inactive one joins
    da, db = sign * 2.0 * cw * u * v, -sign * 2.0 * cw * v * v  # change of d's intercept and slope there
    key = torch.where(event, tau, torch.inf)
    order = key.topk(min(near, key.shape[1]), dim=1, largest=False, sorted=True).indices
    t, found = _root(a0, b0, key.gather(1, order), da.gather(1, order), db.gather(1, order))
    beyond = ~found & (event.sum(1) > order.shape[1])
    if bool(beyond.any()):
        rows = beyond.nonzero().squeeze(1)
        order = key[rows].argsort(1)
        t[rows] = _root(a0[rows], b0[rows], key[rows].gather(1, order), da[rows].gather(1, order),
                        db[rows].gather(1, order))[0]
    return torch.where(a0 < 0, t, 0.0)


def _root(a0: Tensor, b0: Tensor, tau: Tensor, da: Tensor, db: Tensor) -> tuple[Tensor, Tensor]:
    """Root of the slope given its breakpoints `tau` in ascending order (inf = none) and its changes there.

    Returns (t, found): `found` is False where the root lies beyond every finite breakpoint given;
    t is then the root of the segment after the last one.
    """
    ev = torch.isfinite(tau)
    da, db = torch.where(ev, da, 0.0), torch.where(ev, db, 0.0)
    zero = torch.zeros_like(a0[:, None])
    a_seg = a0[:, None] + torch.cat([zero, da.cumsum(1)[:, :-1]], 1)  # slope a + t b on the segment
    b_seg = b0[:, None] + torch.cat([zero, db.cumsum(1)[:, :-1]], 1)  # ending at each breakpoint
    reached = ev & (a_seg + torch.where(ev, tau, 0.0) * b_seg >= 0)
    found = reached.any(1)
    first = reached.to(torch.int8).argmax(1)[:, None]
    start = torch.where(first > 0, tau.gather(1, (first - 1).clamp_min(0)), 0.0)[:, 0]
    a_hit, b_hit = a_seg.gather(1, first)[:, 0], b_seg.gather(1, first)[:, 0]
    a_end, b_end = a0 + da.sum(1), b0 + db.sum(1)
    last = torch.where(ev, tau, 0.0).amax(1)
    a_r, b_r = torch.where(found, a_hit, a_end), torch.where(found, b_hit, b_end)
    lo = torch.where(found, start, last)
    return torch.where(b_r > 0, -a_r / b_r.clamp_min(1e-300), lo).clamp_min(lo), found


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
