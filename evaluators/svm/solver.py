"""Many LinearSVC problems at once: squared-hinge, L2-regularised linear SVMs solved in Gram space.

What is solved is exactly the problem of scikit-learn's `LinearSVC(loss='squared_hinge',
penalty='l2', class_weight=..., fit_intercept=True, intercept_scaling=s)` (liblinear's
L2R_L2LOSS_SVC):

    min_w  1/2 |w|^2 + sum_i C_i max(0, 1 - y_i <w, x~_i>)^2,   x~_i = [x_i, s],  C_i = C * weight(y_i)

The bias is the last coordinate of `w` times `s`, so it is regularised, as in liblinear. With the
representer w = sum_i beta_i x~_i every quantity needs only the augmented Gram matrix
K = X X^T + s^2, shared by all classes, costs and cross-validation folds of one feature set: a
problem is a column of targets in {-1, +1, 0} (0 = not in its training set).

Method: the primal Newton method for the squared hinge (Chapelle, "Training a support vector
machine in the primal", Neural Computation 2007). A Newton step solves the active-set system
(K_AA + diag(1 / 2C_i)) beta_A = y_A by conjugate gradients with a forcing term that tightens as the
problem converges, then takes an exact line search on the piecewise-quadratic objective (no extra
product with K). CG is preconditioned per problem with M = V_A diag(lam) V_A^T + diag(1/2C_i +
lam_min)_A (rank-r Nystrom approximation of K, the remaining spectrum taken as the smallest kept
eigenvalue -- the Nystrom PCG of Frangella, Tropp & Udell, SIAM J. Matrix Anal. Appl. 2023),
applied through the Woodbury identity. Each problem walks the cost list in ascending order,
warm-started from the previous cost (the best of: same point, rescaled, secant in 1/C); with
`split_cost` > 0 the small and the large costs are two such walks ("lanes") run side by side. Problems
run asynchronously in columns: every pass is ONE batched product K @ [n x P] in which each column
carries either its CG direction or its new Newton start (none when that start's image K @ x0 is
already known), so no problem waits for another; finished columns are dropped. The columns are
stored as rows (`ColumnState`: (G, P, n), one problem's samples contiguous), the layout the
prepacked product takes. K's top eigenpairs are applied in float64, its small remainder in float32
(see `evaluators.svm.linalg.Kernel`); all solver state is float64.

Stopping rule, per problem and cost: the KKT residual max_i |alpha_i / 2C_i - max(0, 1 - y_i f_i)|
(margin units; alpha_i = y_i beta_i) is at most `tol` (default 1e-4, sklearn's LinearSVC tol; at an
optimum the residual is liblinear's dual projected gradient, whose *range* liblinear compares
with tol). A problem whose Newton steps stop descending twice in a row (float precision floor,
~1e-5) keeps its last point; `PathResult.violation` records the residual reached.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from tqdm import tqdm

from dcbench import blas
from evaluators.svm.columns import ColumnState
from evaluators.svm.linalg import Kernel, decrease, line_search, objective, violation, weighted_outer


class SolverError(ValueError):
    """The batched SVM solver got inputs it cannot use."""


@dataclass(frozen=True)
class SolverSettings:
    tol: float = 1e-4  # KKT residual in margin units (see module docstring)
    max_newton: int = 100  # Newton steps per cost before giving up on that cost (recorded)
    max_cg: int = 500  # CG iterations per Newton step
    precond_rank: int = 64  # Nystrom rank of the preconditioner
    seed: int = 0  # random test matrix of the Nystrom sketch
    # > 0: the costs below and from here up are two chains run side by side (see `cost_lanes`); pays
    # off when products are memory-bound (small kernels, few columns: low-shot), not for one big kernel
    split_cost: float = 0.0


@dataclass(frozen=True)
class PathResult:
    beta: Tensor  # (num_costs, G, n, P) float64: w = sum_i beta_i x~_i; bias = s^2 * sum_i beta_i
    outputs: Tensor  # (num_costs, G, n, P) float64: decision values K @ beta on every row
    violation: Tensor  # (num_costs, G, P) final KKT residual (<= tol unless stalled / max_newton)
    passes: int  # batched products with K
    newton_steps: int
    cg_iterations: int


def cost_lanes(costs: Sequence[float], split_cost: float) -> list[tuple[int, int]]:
    """[start, end) ranges of the ascending cost list solved as separate warm-started chains ("lanes").

    Below `split_cost` nearly every sample is active and each cost takes a pass or two; the large
    costs, where the active set moves, take most of the passes. Running the two chains side by
    side (the large one started from zero) cuts the sequential passes by about a third.
    """
    small = sum(1 for c in costs if c < split_cost)
    return [lane for lane in ((0, small), (small, len(costs))) if lane[1] > lane[0]]


class _Solver:
    """One `solve_path` call: the per-column state (`ColumnState`) and the passes that advance it."""

    def __init__(self, kernel: Kernel, targets: Tensor, costs: Sequence[float], weights: tuple[float, float],
                 settings: SolverSettings) -> None:
        self.s = settings
        self.kernel = kernel
        self.pbasis32 = kernel.pbasis.to(torch.float32)
        self.costs = torch.tensor(sorted(costs), dtype=torch.float64)
        self.class_w = weights
        self.st = _initial_state(kernel, targets, cost_lanes(costs, settings.split_cost), weights)
        g, problems, n = targets.shape
        k = len(costs)
        self.store_beta = torch.zeros(k, g, n, problems, dtype=torch.float64)
        self.store_out = torch.zeros(k, g, n, problems, dtype=torch.float64)
        self.store_viol = torch.zeros(k, g, problems, dtype=torch.float64)
        self.passes = self.newton_total = self.cg_total = self.fits_done = 0

    # ---------------------------------------------------------------- per-column helpers
    def _cw(self, gi: Tensor, pi: Tensor, shift: int = 0) -> Tensor:
        idx = (self.st.get(gi, pi, "cost_idx") + shift).clamp_max(len(self.costs) - 1)
        return self.costs[idx][:, None] * self.st.get(gi, pi, "weight")

    def _precondition(self, res: Tensor) -> Tensor:
        basis = self.pbasis32  # the preconditioner only steers CG: float32 products are enough
        scaled = self.st.w * res
        proj = blas.matmul(scaled.to(torch.float32), basis).unsqueeze(-1)  # (G, P, r, 1)
        coef = torch.cholesky_solve(proj.to(torch.float64), self.st.chol).squeeze(-1)  # (G, P, r)
        back = blas.matmul(coef.to(torch.float32), basis.transpose(1, 2))
        return scaled - self.st.w * back.to(torch.float64)

    def _prepare(self, gi: Tensor, pi: Tensor) -> None:
        """Start a Newton step (new active set, preconditioner, CG tolerance) for these columns."""
        st = self.st
        cw = self._cw(gi, pi)
        y, o, beta, viol, eta = st.take(gi, pi, "y", "out", "beta", "viol", "eta")
        act = ((cw > 0) & (y * o < 1.0)).to(torch.float64)
        w = 2.0 * cw * act
        # Preconditioner M = V_A diag(lam) V_A^T + diag(1/w + shift)_A (Nystrom with the remainder's
        # spectrum taken as `shift`, cf. Frangella, Tropp & Udell 2023), applied via Woodbury.
        shift = self.kernel.shift[gi][:, None]
        st.put(gi, pi, w=w / (1.0 + shift * w), chol=self._woodbury(gi, pi, act, shift))
        forcing = eta * viol.clamp_max(1.0) * viol
        known = (beta * (1.0 - act)).abs().amax(1) == 0  # then K @ x0 = K @ beta = out
        st.put(gi, pi, act=act, dinv=torch.where(act > 0, 1.0 / (2.0 * cw).clamp_min(1e-300), 0.0),
               x=beta * act, restart=~known,
               tol_cg=torch.maximum(forcing, torch.full_like(viol, min(0.1 * self.s.tol, 1e-6))))
        if bool(known.any()):
            self._start_cg(gi[known], pi[known])

    def _start_cg(self, gi: Tensor, pi: Tensor) -> None:
        """Begin CG without a product with K (the start point's image is the current `out`)."""
        st = self.st
        act, x, out, y, dinv = st.take(gi, pi, "act", "x", "out", "y", "dinv")
        res = y * act - (act * out + dinv * x)
        st.put(gi, pi, kx=out, res=res)
        z = self._precondition(st.res)[gi, pi]  # all columns at once: cheaper than gathering V
        st.put(gi, pi, dirn=z, rz=(res * z).sum(1), cg_its=0)

    def _woodbury(self, gi: Tensor, pi: Tensor, act: Tensor, shift: Tensor) -> Tensor:
        """Cholesky of diag(1/lam) + V^T diag(w') V, from per-column V^T diag(act * class) V updates."""
        basis, lam = self.kernel.pbasis, self.kernel.plam[gi]
        act_old, y, cost_idx = self.st.take(gi, pi, "act", "y", "cost_idx")
        mats = []
        for name, sign in (("outer_pos", 1.0), ("outer_neg", -1.0)):
            mask = (y == sign).to(torch.float64)
            if basis.shape[1] <= 8 * basis.shape[2]:  # small n: recompute, batched
                v = basis.expand(len(gi), -1, -1) if basis.shape[0] == 1 else basis[gi]
                new = (v.transpose(1, 2) * (mask * act)[:, None, :]) @ v
            else:  # large n: update from the rows whose active flag flipped
                group = gi if basis.shape[0] > 1 else torch.zeros_like(gi)
                new = weighted_outer(self.pbasis32, group, mask, self.st.get(gi, pi, name), act_old, act)
            self.st.put(gi, pi, **{name: new})
            mats.append(new)
        cost = self.costs[cost_idx][:, None, None]
        gm = torch.diag_embed(1.0 / lam)
        for mat, class_w in zip(mats, self.class_w, strict=True):
            w = 2.0 * cost * class_w
            gm = gm + w / (1.0 + shift[:, :, None] * w) * mat
        return torch.linalg.cholesky(gm)

    def _newton(self, gi: Tensor, pi: Tensor) -> None:
        """Line search along the CG solution, then advance converged columns to their next cost."""
        st = self.st
        cw = self._cw(gi, pi)
        y, b, o, x, kx, eta, its = st.take(gi, pi, "y", "beta", "out", "x", "kx", "eta", "newton_its")
        step, dout = x - b, kx - o
        t = line_search(b, step, o, dout, y, cw)
        better = (t > 0) & (decrease(t, b, step, o, dout, y, cw) < 0)
        t = torch.where(better, t, 0.0)[:, None]
        b, o = b + t * step, o + t * dout
        eta = torch.where(better, eta, eta * 0.1)
        viol = violation(b, o, y, cw)
        st.put(gi, pi, eta=eta, beta=b, out=o, viol=viol, newton_its=its + 1)
        self.newton_total += int(gi.numel())
        stalled = eta < 1e-3  # two Newton steps in a row without descent: precision floor
        done = (viol <= self.s.tol) | stalled | (its + 1 >= self.s.max_newton)
        self._advance(gi[done], pi[done])

    def _advance(self, gi: Tensor, pi: Tensor) -> None:
        """Store the solution of the current cost and warm-start the next one."""
        if gi.numel() == 0:
            return
        st = self.st
        k, end, beta, out, viol = st.take(gi, pi, "cost_idx", "cost_end", "beta", "out", "viol")
        col = st.col[pi]
        self.store_beta[k, gi, :, col] = beta
        self.store_out[k, gi, :, col] = out
        self.store_viol[k, gi, col] = viol
        self.fits_done += int(gi.numel())
        last = k + 1 >= end
        st.put(gi[last], pi[last], live=False)
        gi, pi = gi[~last], pi[~last]
        if gi.numel():
            self._warm_start(gi, pi)

    def _warm_start(self, gi: Tensor, pi: Tensor) -> None:
        """Best of: keep beta, scale it by C_new/C_old, secant extrapolation in 1/C (by objective)."""
        st = self.st
        k, start, y = st.take(gi, pi, "cost_idx", "cost_start", "y")
        c_old, c_new = self.costs[k][:, None], self.costs[k + 1][:, None]
        c_prev = self.costs[(k - 1).clamp_min(0)][:, None]
        b, o, pb, po = st.take(gi, pi, "beta", "out", "prev_beta", "prev_out")
        secant = (1 / c_old - 1 / c_new) / (1 / c_prev - 1 / c_old)
        gain = torch.where(k[:, None] > start[:, None], secant, 0.0)  # not at lane start
        cands_b = torch.stack([b, b * (c_new / c_old), b + gain * (b - pb)])
        cands_o = torch.stack([o, o * (c_new / c_old), o + gain * (o - po)])
        cw = self._cw(gi, pi, shift=1)
        best = torch.stack([objective(cb, co, y, cw) for cb, co in zip(cands_b, cands_o, strict=True)])
        best = best.argmin(0)
        pick = torch.arange(len(gi))
        nb, no = cands_b[best, pick], cands_o[best, pick]
        st.put(gi, pi, prev_beta=b, prev_out=o, beta=nb, out=no, cost_idx=k + 1, newton_its=0, eta=0.1,
               viol=violation(nb, no, y, cw))

    def _compact(self) -> None:
        """Drop problem slots that are finished in every group (cheaper products for the tail)."""
        keep = self.st.live.any(0)
        if keep.all() or keep.sum() > 0.5 * keep.numel():
            return
        self.st = self.st.select(keep.nonzero().squeeze(1))

    # ---------------------------------------------------------------- one pass
    def _pass(self) -> None:
        st = self.st
        restart = st.restart[:, :, None]
        cg = (st.live & ~st.restart)[:, :, None]
        prod = self.kernel.apply_rows(torch.where(restart, st.x, torch.where(cg, st.dirn, 0.0)))
        self.passes += 1
        ap = st.act * prod + st.dinv * st.dirn
        alpha = torch.where(cg[..., 0], st.rz / (st.dirn * ap).sum(2).clamp_min(1e-300), 0.0)[:, :, None]
        st.x += alpha * st.dirn
        st.kx = torch.where(restart, prod, st.kx + alpha * prod)
        fresh = st.y * st.act - (st.act * prod + st.dinv * st.x)
        st.res = torch.where(restart, fresh, st.res - alpha * ap)
        z = self._precondition(st.res)
        rz = (st.res * z).sum(2)
        ratio = torch.where(cg[..., 0], rz / st.rz.clamp_min(1e-300), 0.0)[:, :, None]
        st.dirn = z + ratio * st.dirn
        st.rz = rz
        st.cg_its = torch.where(st.restart, 0, st.cg_its + 1)
        self.cg_total += int(cg.sum())
        st.restart.zero_()
        small = st.res.abs().amax(2) <= st.tol_cg
        finished = st.live & (small | (st.cg_its >= self.s.max_cg))
        gi, pi = finished.nonzero(as_tuple=True)
        if gi.numel():
            self._newton(gi, pi)
            keep = st.live[gi, pi]
            if bool(keep.any()):
                self._prepare(gi[keep], pi[keep])
            self._compact()

    def run(self, progress: bool) -> PathResult:
        gi, pi = self.st.live.nonzero(as_tuple=True)
        self._prepare(gi, pi)
        total = int(self.store_viol[0].numel()) * len(self.costs)
        with tqdm(total=total, desc="svm solve", unit="fit", disable=not progress, leave=False) as bar:
            while bool(self.st.live.any()):
                before = self.fits_done
                self._pass()
                bar.update(self.fits_done - before)
        return PathResult(self.store_beta, self.store_out, self.store_viol, self.passes,
                          self.newton_total, self.cg_total)


def _initial_state(kernel: Kernel, targets: Tensor, lane_list: list[tuple[int, int]],
                   weights: tuple[float, float]) -> ColumnState:
    """Every column at the start of its lane: zero point, the preconditioner without an active set."""
    lanes = torch.tensor(lane_list)
    g, problems, _ = targets.shape
    p = problems * len(lanes)  # column j: lane j // problems, problem j % problems
    y = targets.to(torch.float64).repeat(1, len(lanes), 1)  # (G, P, n)
    zeros = {name: torch.zeros_like(y) for name in ("beta", "out", "prev_beta", "prev_out", "x", "kx", "res",
                                                     "dirn", "act", "dinv", "w")}
    scal = torch.zeros(g, p, dtype=torch.float64)
    cost_start = lanes[:, 0].repeat_interleave(problems).expand(g, -1).contiguous()
    eye = torch.diag_embed(1.0 / kernel.plam)[:, None].expand(g, p, -1, -1)
    chol = torch.linalg.cholesky(eye.contiguous())
    return ColumnState(
        y=y, weight=torch.where(y > 0, weights[0], weights[1]) * (y != 0), **zeros,
        rz=scal.clone(), tol_cg=scal.clone(), eta=scal + 0.1, viol=scal + 1.0,
        cost_idx=cost_start.clone(), cost_start=cost_start,
        cost_end=lanes[:, 1].repeat_interleave(problems).expand(g, -1).contiguous(),
        newton_its=torch.zeros(g, p, dtype=torch.long), cg_its=torch.zeros(g, p, dtype=torch.long),
        live=torch.ones(g, p, dtype=torch.bool), restart=torch.zeros(g, p, dtype=torch.bool), chol=chol,
        outer_pos=torch.zeros_like(chol), outer_neg=torch.zeros_like(chol),  # per column V^T diag(act*cls) V
        col=torch.arange(p) % problems,  # original problem of each (possibly compacted) slot
    )


def _check(gram: Tensor, targets: Tensor, costs: Sequence[float]) -> None:
    if gram.dim() != 3 or gram.shape[1] != gram.shape[2]:
        raise SolverError(f"gram must be (G, n, n); got {tuple(gram.shape)}")
    if targets.dim() != 3 or targets.shape[0] != gram.shape[0] or targets.shape[2] != gram.shape[1]:
        raise SolverError(f"targets must be (G, P, n) matching gram {tuple(gram.shape)}; "
                          f"got {tuple(targets.shape)}")
    if len(costs) == 0 or min(costs) <= 0:
        raise SolverError(f"costs must be a non-empty list of positive numbers; got {list(costs)}")
    if bool((~((targets == 1) | (targets == -1) | (targets == 0))).any()):
        raise SolverError("targets must hold only -1, +1 (training labels) and 0 (not in the training set)")
    if bool(((targets != 0).sum(-1) == 0).any()):
        raise SolverError("every problem needs at least one training sample")


def solve_path(
    gram: Tensor | Kernel,
    targets: Tensor,
    costs: Sequence[float],
    pos_weight: float = 2.0,
    neg_weight: float = 1.0,
    settings: SolverSettings | None = None,
    progress: bool = False,
) -> PathResult:
    """Train every (problem, cost) pair; problem p of group g uses `gram[g]` and `targets[g, p]`.

    `gram` (G, n, n): augmented Gram matrices (`evaluators.svm.common.augmented_gram`), or a
    `Kernel` already split (e.g. `Kernel.restrict` of one shared Gram: no per-group sketch);
    `targets` (G, P, n) in {-1, +1, 0}; `costs`: LinearSVC `C` values, any order. The first axis
    of every result follows `costs` as given.
    """
    settings = settings or SolverSettings()
    _check(gram.resid if isinstance(gram, Kernel) else gram, targets, costs)
    with blas.threads():
        kernel = gram if isinstance(gram, Kernel) else Kernel.build(gram.to(torch.float64).contiguous(),
                                                                     settings.precond_rank, settings.seed)
        result = _Solver(kernel, targets, costs, (pos_weight, neg_weight), settings).run(progress)
    rank = torch.tensor(sorted(range(len(costs)), key=lambda i: costs[i])).argsort()
    return PathResult(result.beta[rank], result.outputs[rank], result.violation[rank], result.passes,
                      result.newton_steps, result.cg_iterations)
