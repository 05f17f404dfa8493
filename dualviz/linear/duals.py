"""The duals of deep linear networks as CVXPY programs (Clarabel by default): docs/math.md §3.

Which program applies to an experiment is decided in dualviz.linear.programs.
CVXPY is not thread-safe: call these from a worker process, not from UI threads.
"""

from __future__ import annotations

import cvxpy as cp
import numpy as np

from ..solvers import DEFAULT_SOLVER, data_scale, solve_program
from .closed_forms import squared_limits


def interpolation_dual(X: np.ndarray, Y: np.ndarray, bound: float,
                       solver: str = DEFAULT_SOLVER) -> tuple[float | None, str]:
    """max_Lambda tr(Lambda^T Y) s.t. sigma_max(X^T Lambda) <= bound   (an SDP).

    With bound = beta t^{-(L-2)} this is the dual D(t) of the rescaled interpolation problem;
    it equals bound * ||pinv(X) Y||_* when XW = Y is feasible, and is unbounded otherwise.
    Solved on X / ||X||_2, Y / ||Y||_F and bound 1: the value scales as bound ||Y|| / ||X||_2
    (Lambda -> bound Lambda / ||X||_2). A zero Y has the value 0 without a solve.
    """
    if not np.any(Y):
        return 0.0, cp.OPTIMAL
    x_scale, y_scale = data_scale(X), float(np.linalg.norm(Y))
    Lam = cp.Variable(Y.shape)
    problem = cp.Problem(cp.Maximize(cp.trace(Lam.T @ (Y / y_scale))),
                         [cp.sigma_max((X / x_scale).T @ Lam) <= 1.0])
    value, status = solve_program(problem, solver)
    return (None if value is None else value * bound * y_scale / x_scale), status


class SquaredNuclear:
    """D(lam) = min_W 0.5 ||X W - Y||_F^2 + lam ||W||_*, compiled once and re-solved per lam.

    Solved on X / ||X||_2 and Y / ||Y||_F: with X = a X', Y = b Y', W = (b/a) W',
    D(lam) = b^2 D'(lam / (a b)). For lam >= ||X^T Y||_2, W = 0 is optimal (0 is then a
    subgradient) and D = 0.5 ||Y||^2 without a solve: the weight-decay search reaches huge lam
    (lam ~ 1e10 made Clarabel panic).
    """

    def __init__(self, X: np.ndarray, Y: np.ndarray, solver: str = DEFAULT_SOLVER):
        self.x_scale, self.y_scale = data_scale(X), float(np.linalg.norm(Y)) or 1.0
        limits = squared_limits(X, Y)
        self.lam_zero, self.zero_value = limits["lam_zero"], limits["limit_zero"]
        self.lam = cp.Parameter(nonneg=True)
        W = cp.Variable((X.shape[1], Y.shape[1]))
        objective = (0.5 * cp.sum_squares((X / self.x_scale) @ W - Y / self.y_scale)
                     + self.lam * cp.normNuc(W))
        self.problem = cp.Problem(cp.Minimize(objective))
        self.solver = solver
        self.statuses: list[str] = []

    def __call__(self, lam: float) -> float:
        if lam >= self.lam_zero:
            self.statuses.append(cp.OPTIMAL)
            return self.zero_value
        self.lam.value = lam / (self.x_scale * self.y_scale)
        value, status = solve_program(self.problem, self.solver)
        self.statuses.append(status)
        return float("nan") if value is None else value * self.y_scale**2
