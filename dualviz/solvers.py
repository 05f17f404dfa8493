"""Solver plumbing shared by every convex program: CVXPY settings, breakdowns as statuses.

A program is solved by :func:`solve_program`, which returns the value (None unless the status
is one of GOOD_STATUSES) and the status; a breakdown inside the solver (Clarabel's Rust panics
among them) becomes the status ``solver_error: ...`` instead of an exception.

CVXPY is not thread-safe: call these from a worker process, not from UI threads.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import TypeVar

import cvxpy as cp
import numpy as np

T = TypeVar("T")
DEFAULT_SOLVER = "CLARABEL"
GOOD_STATUSES = (cp.OPTIMAL, cp.OPTIMAL_INACCURATE)
SOLVER_ERROR = "solver_error"
# Tighter than Clarabel's defaults (1e-8), so CVXPY agrees with the closed forms to ~1e-9.
SOLVER_OPTIONS = {"CLARABEL": {"tol_gap_abs": 1e-10, "tol_gap_rel": 1e-10, "tol_feas": 1e-10}}


def guarded(solve: Callable[[], T]) -> tuple[T | None, str | None]:
    """(solve(), None), or (None, the error in one line) when the solver breaks down.

    Clarabel reports some numerical breakdowns as a Rust panic, which Python sees as a
    BaseException (pyo3's PanicException): caught here, so a job fails with a status instead
    of a traceback. Interrupts still propagate.
    """
    try:
        return solve(), None
    except (KeyboardInterrupt, SystemExit, GeneratorExit, MemoryError):
        raise  # a job out of memory says so (dualviz.service.worker), not "numerical trouble"
    except BaseException as exc:
        first_line = (str(exc).splitlines() or [""])[0][:200]
        return None, f"{type(exc).__name__}: {first_line}"


def solve_program(problem: cp.Problem, solver: str = DEFAULT_SOLVER) -> tuple[float | None, str]:
    """(value, status) of a CVXPY problem; value is None unless the status is good."""
    def solve() -> None:
        with warnings.catch_warnings():
            # The status says whether the solution is accurate; the warning would only repeat it.
            warnings.simplefilter("ignore", UserWarning)
            problem.solve(solver=solver, **SOLVER_OPTIONS.get(solver, {}))

    _, error = guarded(solve)
    if error is not None:
        return None, f"{SOLVER_ERROR}: {error}"
    status = str(problem.status)
    return (float(problem.value) if status in GOOD_STATUSES else None), status


def data_scale(A: np.ndarray) -> float:
    """A positive scale of A (its spectral norm, 1 for a zero A): programs are solved on data
    divided by it, so the solver sees numbers of order one whatever the units."""
    norm = float(np.linalg.norm(A, 2)) if A.size else 0.0
    return norm if norm > 0 and np.isfinite(norm) else 1.0
