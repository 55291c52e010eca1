"""Working state of the batched SVM solver (evaluators.svm.solver), one object for every column.

A column is one (group g, slot p) pair: a problem at its current cost. Every quantity the solver
tracks is either a *sample* field, (G, P, n): one value per training sample, a column's samples
contiguous (the row layout of the batched kernel products), or a *column* field, (G, P, ...): one
value (or small matrix) per column. `take` reads and
`put` writes a set of columns (gi, pi) of named fields, `select` keeps a subset of the slots
(dropping finished ones); `col` maps each slot to its original problem.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

from torch import Tensor

SAMPLE = "sample"  # (G, P, n)
COLUMN = "column"  # (G, P, ...)


def _sample() -> Tensor:
    return field(metadata={"kind": SAMPLE})  # type: ignore[return-value]


def _column() -> Tensor:
    return field(metadata={"kind": COLUMN})  # type: ignore[return-value]


@dataclass(eq=False)
class ColumnState:
    """Per-column tensors of one `solve_path` call (see the module docstring for the layout)."""

    # sample fields (G, P, n) float64
    y: Tensor = _sample()  # targets in {-1, +1, 0}
    weight: Tensor = _sample()  # class weight of each training sample, 0 outside the training set
    beta: Tensor = _sample()  # current point (dual coefficients)
    out: Tensor = _sample()  # K @ beta
    prev_beta: Tensor = _sample()  # solution at the previous cost (secant warm start)
    prev_out: Tensor = _sample()
    x: Tensor = _sample()  # CG iterate
    kx: Tensor = _sample()  # K @ x
    res: Tensor = _sample()  # CG residual
    dirn: Tensor = _sample()  # CG direction
    act: Tensor = _sample()  # active set of the current Newton step (0 / 1)
    dinv: Tensor = _sample()  # 1 / 2C_i on the active set
    w: Tensor = _sample()  # preconditioner weights
    # column fields (G, P, ...)
    rz: Tensor = _column()  # <res, M^-1 res>
    tol_cg: Tensor = _column()  # CG stopping level of the current Newton step
    eta: Tensor = _column()  # forcing factor (shrinks when a Newton step fails to descend)
    viol: Tensor = _column()  # KKT residual
    cost_idx: Tensor = _column()  # index into the sorted costs
    cost_start: Tensor = _column()  # [start, end) of the column's cost lane
    cost_end: Tensor = _column()
    newton_its: Tensor = _column()  # Newton steps at the current cost
    cg_its: Tensor = _column()  # CG iterations of the current Newton step
    live: Tensor = _column()  # still has costs to solve
    restart: Tensor = _column()  # the next pass carries its Newton start, not its CG direction
    chol: Tensor = _column()  # (G, P, q, q) Cholesky factor of the Woodbury core
    outer_pos: Tensor = _column()  # (G, P, q, q) V^T diag(act * [y > 0]) V
    outer_neg: Tensor = _column()  # (G, P, q, q) V^T diag(act * [y < 0]) V
    col: Tensor = field(default=None, metadata={"kind": "slot"})  # type: ignore[assignment]  # (P,)

    def take(self, gi: Tensor, pi: Tensor, *names: str) -> tuple[Tensor, ...]:
        """The named fields at columns (gi, pi): (m, n) for sample fields, (m, ...) for column fields."""
        return tuple(getattr(self, n)[gi, pi] for n in names)

    def get(self, gi: Tensor, pi: Tensor, name: str) -> Tensor:
        return self.take(gi, pi, name)[0]

    def put(self, gi: Tensor, pi: Tensor, **values: Tensor) -> None:
        """Write the named fields at columns (gi, pi) (shapes as `take` returns them)."""
        for name, value in values.items():
            getattr(self, name)[gi, pi] = value

    def select(self, slots: Tensor) -> ColumnState:
        """A state holding only `slots` (indices of the slot axis), in that order."""
        kept = {}
        for f in fields(self):
            value = getattr(self, f.name)
            axis = {SAMPLE: 1, COLUMN: 1, "slot": 0}[f.metadata["kind"]]
            kept[f.name] = value.index_select(axis, slots).contiguous()
        return replace(self, **kept)


