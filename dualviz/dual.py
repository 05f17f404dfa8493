"""Convex programs in CVXPY (Clarabel by default): the duals of deep linear networks.

CVXPY is not thread-safe: call these from a worker process, not from UI threads.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import cvxpy as cp
import numpy as np

from .config import Experiment
from .theory import (
    dual_label,
    interpolation_feasible,
    minimize_over_t,
    optimal_t,
    rescaled_factor,
    squared_limits,
    t_upper,
)

T = TypeVar("T")
DEFAULT_SOLVER = "CLARABEL"
GOOD_STATUSES = (cp.OPTIMAL, cp.OPTIMAL_INACCURATE)
# Tighter than Clarabel's defaults (1e-8), so CVXPY agrees with the closed forms to ~1e-9.
SOLVER_OPTIONS = {"CLARABEL": {"tol_gap_abs": 1e-10, "tol_gap_rel": 1e-10, "tol_feas": 1e-10}}


@dataclass(frozen=True)
class DualResult:
    """A dual value with how it was obtained; value is None unless the solver succeeded."""

    value: float | None
    method: str
    status: str
    seconds: float
    t_star: float | None = None  # the optimizing t, for the weight-decay bound
    notes: list[str] = field(default_factory=list)
    # A certified bracket lower <= optimum <= upper, where the solver provides one
    lower: float | None = None
    upper: float | None = None
    certified: bool | None = None


def guarded(solve: Callable[[], T]) -> tuple[T | None, str | None]:
    """(solve(), None), or (None, the error in one line) when the solver breaks down.

    Clarabel reports some numerical breakdowns as a Rust panic, which Python sees as a
    BaseException (pyo3's PanicException): caught here, so a job fails with a status instead
    of a traceback. Interrupts still propagate.
    """
    try:
        return solve(), None
    except (KeyboardInterrupt, SystemExit, GeneratorExit, MemoryError):
        raise  # a job out of memory says so (dualviz.worker), not "numerical trouble"
    except BaseException as exc:
        first_line = (str(exc).splitlines() or [""])[0][:200]
        return None, f"{type(exc).__name__}: {first_line}"


def _solve(problem: cp.Problem, solver: str) -> tuple[float | None, str]:
    def solve() -> None:
        with warnings.catch_warnings():
            # The status says whether the solution is accurate; the warning would only repeat it.
            warnings.simplefilter("ignore", UserWarning)
            problem.solve(solver=solver, **SOLVER_OPTIONS.get(solver, {}))

    _, error = guarded(solve)
    if error is not None:
        return None, f"solver_error: {error}"
    status = str(problem.status)
    return (float(problem.value) if status in GOOD_STATUSES else None), status


def _scale(A: np.ndarray) -> float:
    """A positive scale of A (its spectral norm, 1 for a zero A): the programs below are
    solved on data divided by it, so the solver sees numbers of order one whatever the units."""
    norm = float(np.linalg.norm(A, 2)) if A.size else 0.0
    return norm if norm > 0 and np.isfinite(norm) else 1.0


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
    x_scale, y_scale = _scale(X), float(np.linalg.norm(Y))
    Lam = cp.Variable(Y.shape)
    problem = cp.Problem(cp.Maximize(cp.trace(Lam.T @ (Y / y_scale))),
                         [cp.sigma_max((X / x_scale).T @ Lam) <= 1.0])
    value, status = _solve(problem, solver)
    return (None if value is None else value * bound * y_scale / x_scale), status


class SquaredNuclear:
    """D(lam) = min_W 0.5 ||X W - Y||_F^2 + lam ||W||_*, compiled once and re-solved per lam.

    Solved on X / ||X||_2 and Y / ||Y||_F: with X = a X', Y = b Y', W = (b/a) W',
    D(lam) = b^2 D'(lam / (a b)). For lam >= ||X^T Y||_2, W = 0 is optimal (0 is then a
    subgradient) and D = 0.5 ||Y||^2 without a solve: the weight-decay search reaches huge lam
    (lam ~ 1e10 made Clarabel panic).
    """

    def __init__(self, X: np.ndarray, Y: np.ndarray, solver: str = DEFAULT_SOLVER):
        self.x_scale, self.y_scale = _scale(X), float(np.linalg.norm(Y)) or 1.0
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
        value, status = _solve(self.problem, self.solver)
        self.statuses.append(status)
        return float("nan") if value is None else value * self.y_scale**2


def solve_dual(exp: Experiment, X: np.ndarray, Y: np.ndarray,
               solver: str = DEFAULT_SOLVER) -> DualResult:
    """The dual of docs/math.md §3 for this experiment, by CVXPY.

    interpolation, rescaled / L-th power: the SDP with bound beta t^{-(L-2)} (t = 1 for L-th power).
    interpolation, weight decay (L >= 3): D(t) = C t^{-(L-2)} with C the SDP value at t = 1, then
        min_t [(beta/2)(L-2) t^2 + D(t)] in closed form.
    squared, rescaled / L-th power: the nuclear-norm program with lam = beta t^{-(L-2)}.
    squared, weight decay: the same programs inside the certified 1-D search over t of
        theory.minimize_over_t, which includes the t -> 0 limit 0.5 ||Y||^2 (the zero
        network); the value is the search's lower end, so it is a bound, and [lower, upper]
        is reported.
    """
    started = time.perf_counter()
    label = dual_label(exp)
    L, beta = exp.depth, exp.beta
    t = 1.0 if exp.regularization == "lth-power" else exp.t
    weight_decay = exp.regularization == "weight-decay" and L >= 3

    def done(value, status, t_star=None, notes=(), lower=None, upper=None):
        return DualResult(value, f"{label} [CVXPY/{solver}]", status,
                          time.perf_counter() - started, t_star, list(notes), lower, upper)

    if exp.objective == "interpolation":
        feasible, residual = interpolation_feasible(X, Y)
        if not feasible:
            return done(None, "unbounded", notes=[
                f"XW = Y has no solution (relative residual {residual:.2e}): the primal is "
                "infeasible and the dual unbounded"])
        if weight_decay:
            C, status = interpolation_dual(X, Y, beta, solver)
            if C is None:
                return done(None, status)
            value, t_star = optimal_t(C, beta, L)
            return done(value, status, t_star)
        value, status = interpolation_dual(X, Y, rescaled_factor(beta, t, L), solver)
        return done(value, status)

    program = SquaredNuclear(X, Y, solver)
    if weight_decay:
        search = minimize_over_t(program, beta, L, t_upper(X, Y, L), **squared_limits(X, Y),
                                 grid=13, rel_tol=1e-9, max_evaluations=80)
        bad = [x for x in program.statuses if x not in GOOD_STATUSES]
        if bad or not np.isfinite(search.lower):
            return done(None, bad[0] if bad else "search failed", search.t_star)
        notes = [] if search.t_star is not None else [
            "the bound is the t -> 0 limit: the zero network, 0.5 ||Y||^2"]
        return done(search.lower, program.statuses[-1] if program.statuses else cp.OPTIMAL,
                    search.t_star, notes, search.lower, search.upper)
    value = program(rescaled_factor(beta, t, L))
    return done(value if np.isfinite(value) else None, program.statuses[-1])


def rank_one_relu_dual(c: np.ndarray, Y: np.ndarray, bound: float,
                       solver: str = DEFAULT_SOLVER) -> tuple[float | None, str]:
    """Dual of the three-layer ReLU net on rank-one data X = c a^T (docs/math.md §5), an SOCP:

    max_Lambda tr(Lambda^T Y) s.t. ||Lambda^T c+|| <= bound, ||Lambda^T c-|| <= bound,
    with c+ = max(c, 0), c- = max(-c, 0) and bound = beta / T, T = t ||a||.
    Its value is (beta/T)(||alpha|| + ||gamma||), which the parallel net attains. Solved on
    c / ||c||, Y / ||Y|| and bound 1 (the value scales as bound ||Y|| / ||c||); a zero Y has the
    value 0 without a solve.
    """
    Y = Y.reshape(len(c), -1)
    if not np.any(Y):
        return 0.0, cp.OPTIMAL
    c_scale, y_scale = _scale(np.asarray(c, dtype=float)[:, None]), float(np.linalg.norm(Y))
    Lam = cp.Variable(Y.shape)
    plus, minus = np.maximum(c, 0.0) / c_scale, np.maximum(-c, 0.0) / c_scale
    problem = cp.Problem(cp.Maximize(cp.trace(Lam.T @ (Y / y_scale))),
                         [cp.norm(Lam.T @ plus, 2) <= 1.0, cp.norm(Lam.T @ minus, 2) <= 1.0])
    value, status = _solve(problem, solver)
    return (None if value is None else value * bound * y_scale / c_scale), status
