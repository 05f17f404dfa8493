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


def interpolation_dual(X: np.ndarray, Y: np.ndarray, bound: float,
                       solver: str = DEFAULT_SOLVER) -> tuple[float | None, str]:
    """max_Lambda tr(Lambda^T Y) s.t. sigma_max(X^T Lambda) <= bound   (an SDP).

    With bound = beta t^{-(L-2)} this is the dual D(t) of the rescaled interpolation problem;
    it equals bound * ||pinv(X) Y||_* when XW = Y is feasible, and is unbounded otherwise.
    """
    Lam = cp.Variable(Y.shape)
    problem = cp.Problem(cp.Maximize(cp.trace(Lam.T @ Y)), [cp.sigma_max(X.T @ Lam) <= bound])
    return _solve(problem, solver)


class SquaredNuclear:
    """D(lam) = min_W 0.5 ||X W - Y||_F^2 + lam ||W||_*, compiled once and re-solved per lam."""

    def __init__(self, X: np.ndarray, Y: np.ndarray, solver: str = DEFAULT_SOLVER):
        self.lam = cp.Parameter(nonneg=True)
        W = cp.Variable((X.shape[1], Y.shape[1]))
        objective = 0.5 * cp.sum_squares(X @ W - Y) + self.lam * cp.normNuc(W)
        self.problem = cp.Problem(cp.Minimize(objective))
        self.solver = solver
        self.statuses: list[str] = []

    def __call__(self, lam: float) -> float:
        self.lam.value = lam
        value, status = _solve(self.problem, self.solver)
        self.statuses.append(status)
        return float("nan") if value is None else value


def solve_dual(exp: Experiment, X: np.ndarray, Y: np.ndarray,
               solver: str = DEFAULT_SOLVER) -> DualResult:
    """The dual of DESIGN §3 for this experiment, by CVXPY.

    interpolation, rescaled / L-th power: the SDP with bound beta t^{-(L-2)} (t = 1 for L-th power).
    interpolation, weight decay (L >= 3): D(t) = C t^{-(L-2)} with C the SDP value at t = 1, then
        min_t [(beta/2)(L-2) t^2 + D(t)] in closed form.
    squared, rescaled / L-th power: the nuclear-norm program with lam = beta t^{-(L-2)}.
    squared, weight decay: the same programs inside a 1-D search over t.
    """
    started = time.perf_counter()
    label = dual_label(exp)
    L, beta = exp.depth, exp.beta
    t = 1.0 if exp.regularization == "lth-power" else exp.t
    weight_decay = exp.regularization == "weight-decay" and L >= 3

    def done(value, status, t_star=None, notes=()):
        return DualResult(value, f"{label} [CVXPY/{solver}]", status,
                          time.perf_counter() - started, t_star, list(notes))

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
        _, t_star = minimize_over_t(lambda tt: program(rescaled_factor(beta, tt, L)),
                                    beta, L, t_upper(X, Y, L), grid=13, xatol=1e-7)
        # Report the value and status of one final solve at t*, not of the search's probes.
        value = beta / 2 * (L - 2) * t_star**2 + program(rescaled_factor(beta, t_star, L))
        return done(value if np.isfinite(value) else None, program.statuses[-1], t_star)
    value = program(rescaled_factor(beta, t, L))
    return done(value if np.isfinite(value) else None, program.statuses[-1])


def rank_one_relu_dual(c: np.ndarray, Y: np.ndarray, bound: float,
                       solver: str = DEFAULT_SOLVER) -> tuple[float | None, str]:
    """Dual of the three-layer ReLU net on rank-one data X = c a^T (DESIGN §4), an SOCP:

    max_Lambda tr(Lambda^T Y) s.t. ||Lambda^T c+|| <= bound, ||Lambda^T c-|| <= bound,
    with c+ = max(c, 0), c- = max(-c, 0) and bound = beta / T, T = t ||a||.
    Its value is (beta/T)(||alpha|| + ||gamma||), which the parallel net attains.
    """
    Y = Y.reshape(len(c), -1)
    Lam = cp.Variable(Y.shape)
    plus, minus = np.maximum(c, 0.0), np.maximum(-c, 0.0)
    problem = cp.Problem(cp.Maximize(cp.trace(Lam.T @ Y)),
                         [cp.norm(Lam.T @ plus, 2) <= bound, cp.norm(Lam.T @ minus, 2) <= bound])
    return _solve(problem, solver)
