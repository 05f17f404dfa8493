"""Which closed form, dual and formula apply to a deep linear experiment: one table.

The table PROGRAMS has one row per (objective, regularization family) (dualviz.regularizers):
the closed forms of docs/math.md §3, the CVXPY dual that cross-checks them, the dual's name,
the closed form written with the run's numbers, the threshold the squared-loss closed form
cuts the spectrum at, and whether the equal-spectrum ratio P/D = r^{(L-2)/2} holds. The runner,
the explanations and the sweeps all read it; nothing else branches on the regularization.

    interpolation, norm bound:   P_std = beta t^{-(L-2)} ||W*||_{S_{2/L}},
                                 P_par = D = beta t^{-(L-2)} ||W*||_*          (§3.1, §3.2)
    interpolation, weight decay: P = (L beta/2) sum sigma_i^{2/L} (both architectures),
                                 D = min_t [(beta/2)(L-2) t^2 + D(t)]          (§3.3)
    squared, norm bound:         the nuclear-norm program at lam = beta t^{-(L-2)}
                                 (closed form for whitened X; parallel or L = 2) (§3.4)
    squared, weight decay:       the Schatten-2/L prox (whitened X) and the certified search
                                 over t                                         (§3.5, §3.6)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cvxpy as cp
import numpy as np

from ..config import Experiment
from ..data import target_matrix
from ..regularizers import REGULARIZERS, Family
from ..results import EXACT_GAP_TOL, ClosedForm, DualResult, SolveStatus
from ..solvers import DEFAULT_SOLVER, GOOD_STATUSES
from .closed_forms import (
    interpolation_feasible,
    interpolation_rescaled_dual,
    interpolation_rescaled_standard,
    interpolation_weight_decay_dual,
    interpolation_weight_decay_standard,
    is_whitened,
    minimize_over_t,
    optimal_t,
    prox_threshold,
    rescaled_factor,
    squared_limits,
    squared_nuclear_whitened,
    squared_weight_decay_whitened,
    t_upper,
    target_spectrum,
    whitened_end_to_end,
)
from .duals import SquaredNuclear, interpolation_dual


@dataclass(frozen=True)
class _Setting:
    """The numbers every row needs: depth, beta, the effective t, the net's capacity."""

    depth: int
    beta: float
    t: float
    capacity: int  # width (standard) or branches (parallel): the largest rank it can carry
    parallel: bool
    weight_decay_bound: bool  # weight decay with L >= 3: the dual is a bound over t

    @classmethod
    def of(cls, exp: Experiment) -> _Setting:
        reg = REGULARIZERS[exp.regularization]
        return cls(exp.depth, exp.beta, reg.t(exp.t),
                   exp.width if exp.arch == "standard" else exp.branches,
                   exp.arch == "parallel",
                   reg.family == Family.WEIGHT_DECAY and exp.depth >= 3)


@dataclass(frozen=True)
class _Dual:
    value: float | None
    status: str
    t_star: float | None = None
    notes: tuple[str, ...] = ()
    lower: float | None = None
    upper: float | None = None


@dataclass(frozen=True)
class LinearProgram:
    """One row of the table (see the module docstring)."""

    objective: str
    family: Family
    closed_form: Callable[[_Setting, np.ndarray, np.ndarray], ClosedForm]
    dual: Callable[[_Setting, np.ndarray, np.ndarray, str], _Dual]
    formula: Callable[[Experiment, _Setting, Sequence[float], float | None, float | None],
                      str | None]
    threshold: Callable[[_Setting], float | None]
    equal_spectrum_ratio: bool = False


def dual_label(exp: Experiment) -> str:
    """Which dual the app shows for this experiment."""
    if _Setting.of(exp).weight_decay_bound:
        return "rescaled dual optimized over t (a lower bound for weight decay)"
    if exp.objective == "squared":
        return "nuclear-norm convex program (equals the dual)"
    return "Lagrangian dual (SDP)"


# -- interpolation ----------------------------------------------------------------------------

def _interpolation(closed: Callable[[_Setting, np.ndarray], tuple[float | None, float]]):
    """The interpolation closed form around `closed(setting, sigma) -> (primal, dual)`."""
    def closed_form(s: _Setting, X: np.ndarray, Y: np.ndarray) -> ClosedForm:
        feasible, residual = interpolation_feasible(X, Y)
        if not feasible:
            return ClosedForm(None, None, None, "", (
                f"XW = Y has no solution (relative residual {residual:.2e}): no closed form",))
        sigma = target_spectrum(X, Y)
        primal, dual = closed(s, sigma)
        notes: tuple[str, ...] = ()
        if s.capacity < sigma.size:
            what = "branches" if s.parallel else "width"
            notes = (f"{what} {s.capacity} < rank(W*) = {sigma.size}: the net cannot "
                     "interpolate",)
            primal = None
        # W* = pinv(X) Y is optimal for every Schatten quasi-norm among the W with XW = Y: the
        # others add a part outside the row space of X, which only raises singular values.
        end_to_end = target_matrix(X, Y) if primal is not None else None
        return ClosedForm(primal, dual, sigma, "", notes, end_to_end)
    return closed_form


def _norm_bound_interpolation(s: _Setting, sigma: np.ndarray) -> tuple[float, float]:
    dual = interpolation_rescaled_dual(sigma, s.beta, s.t, s.depth)
    primal = dual if s.parallel else interpolation_rescaled_standard(sigma, s.beta, s.t, s.depth)
    return primal, dual


def _weight_decay_interpolation(s: _Setting, sigma: np.ndarray) -> tuple[float, float]:
    # Parallel nets are no better under weight decay (docs/math.md §3.3).
    return (interpolation_weight_decay_standard(sigma, s.beta, s.depth),
            interpolation_weight_decay_dual(sigma, s.beta, s.depth))


def _interpolation_dual(s: _Setting, X: np.ndarray, Y: np.ndarray, solver: str) -> _Dual:
    """The SDP with bound beta t^{-(L-2)}; weight decay (L >= 3): D(t) = C t^{-(L-2)} with C
    the SDP value at t = 1, then min_t [(beta/2)(L-2) t^2 + D(t)] in closed form."""
    feasible, residual = interpolation_feasible(X, Y)
    if not feasible:
        return _Dual(None, SolveStatus.UNBOUNDED, notes=(
            f"XW = Y has no solution (relative residual {residual:.2e}): the primal is "
            "infeasible and the dual unbounded",))
    if s.weight_decay_bound:
        C, status = interpolation_dual(X, Y, s.beta, solver)
        if C is None:
            return _Dual(None, status)
        value, t_star = optimal_t(C, s.beta, s.depth)
        return _Dual(value, status, t_star)
    return _Dual(*interpolation_dual(X, Y, rescaled_factor(s.beta, s.t, s.depth), solver))


# -- squared loss -----------------------------------------------------------------------------

_NOT_WHITENED = "no closed form for the squared loss unless X is whitened"


def _norm_bound_squared(s: _Setting, X: np.ndarray, Y: np.ndarray) -> ClosedForm:
    if not is_whitened(X):
        return ClosedForm(None, None, None, "", (_NOT_WHITENED,))
    lam = rescaled_factor(s.beta, s.t, s.depth)
    dual = squared_nuclear_whitened(X, Y, lam)[0]
    if s.parallel or s.depth == 2:
        primal, spectrum = squared_nuclear_whitened(X, Y, lam, s.capacity)
        return ClosedForm(primal, dual, spectrum, "", (), whitened_end_to_end(X, Y, spectrum))
    return ClosedForm(None, dual, None, "",
                      ("standard net, squared loss, L >= 3: the Schatten-2/L problem has no "
                       "closed form; train it",))


def _weight_decay_squared(s: _Setting, X: np.ndarray, Y: np.ndarray) -> ClosedForm:
    if not is_whitened(X):
        return ClosedForm(None, None, None, "", (_NOT_WHITENED,))
    primal, spectrum = squared_weight_decay_whitened(X, Y, s.beta, s.depth, s.capacity)
    dual = minimize_over_t(lambda lam: squared_nuclear_whitened(X, Y, lam)[0], s.beta, s.depth,
                           t_upper(X, Y, s.depth), **squared_limits(X, Y)).lower
    return ClosedForm(primal, dual, spectrum, "", (), whitened_end_to_end(X, Y, spectrum))


def _squared_dual(s: _Setting, X: np.ndarray, Y: np.ndarray, solver: str) -> _Dual:
    """The nuclear-norm program at lam = beta t^{-(L-2)}; weight decay (L >= 3): the same
    programs inside the certified search over t (closed_forms.minimize_over_t), which includes
    the t -> 0 limit 0.5 ||Y||^2; its lower end is the bound, [lower, upper] is reported."""
    program = SquaredNuclear(X, Y, solver)
    if not s.weight_decay_bound:
        value = program(rescaled_factor(s.beta, s.t, s.depth))
        return _Dual(value if np.isfinite(value) else None, program.statuses[-1])
    search = minimize_over_t(program, s.beta, s.depth, t_upper(X, Y, s.depth),
                             **squared_limits(X, Y), grid=13, rel_tol=1e-9, max_evaluations=80)
    bad = [x for x in program.statuses if x not in GOOD_STATUSES]
    if bad or not np.isfinite(search.lower):
        return _Dual(None, bad[0] if bad else SolveStatus.SEARCH_FAILED, search.t_star)
    notes = () if search.t_star is not None else (
        "the bound is the t -> 0 limit: the zero network, 0.5 ||Y||^2",)
    return _Dual(search.lower, program.statuses[-1] if program.statuses else cp.OPTIMAL,
                 search.t_star, notes, search.lower, search.upper)


def _nuclear_threshold(s: _Setting) -> float | None:
    """The soft threshold lam = beta t^{-(L-2)} (a parallel net, or L = 2)."""
    return rescaled_factor(s.beta, s.t, s.depth) if s.parallel or s.depth == 2 else None


# -- formulas (LaTeX, two aligned lines: the formula, then the numbers) -----------------------

def _sigma_list(sigma: Sequence[float], power: str = "") -> str:
    shown = [f"{x:.4g}{power}" for x in sigma[:4]]
    return " + ".join(shown) + (" + \\cdots" if len(sigma) > 4 else "")


def _two_lines(left: str, formula: str, numbers: str) -> str:
    return f"\\begin{{aligned}} {left} &= {formula} \\\\ &= {numbers} \\end{{aligned}}"


def _num(value: float | None) -> str:
    return "?" if value is None else f"{value:.4f}"


def _equal(a: float | None, b: float | None) -> bool:
    return a is not None and b is not None and abs(a - b) <= EXACT_GAP_TOL * max(abs(b), 1e-12)


def _norm_bound_formula(exp: Experiment, s: _Setting, sigma: Sequence[float],
                        primal: float | None, dual: float | None) -> str:
    powers = _sigma_list(sigma, "^{" + f"2/{s.depth}" + "}")
    has_t = REGULARIZERS[exp.regularization].has_t
    scale = f"{s.beta:g} \\cdot {s.t:g}^{{-{s.depth - 2}}}" if has_t else f"{s.beta:g}"
    symbol = "\\beta t^{-(L-2)}" if has_t else "\\beta"
    if s.parallel:
        return _two_lines("P_{\\text{parallel}} = D", f"{symbol} \\|W^*\\|_*",
                          f"{scale} ({_sigma_list(sigma)}) = {_num(dual)}")
    return _two_lines("P", f"{symbol} \\|W^*\\|_{{S_{{2/L}}}}",
                      f"{scale} ({powers})^{{{s.depth}/2}} = {_num(primal)}")


def _weight_decay_formula(exp: Experiment, s: _Setting, sigma: Sequence[float],
                          primal: float | None, dual: float | None) -> str:
    powers = _sigma_list(sigma, "^{" + f"2/{s.depth}" + "}")
    numbers = f"\\tfrac{{{s.depth} \\cdot {s.beta:g}}}{{2}} ({powers}) = {_num(primal)}"
    if not s.parallel:
        return _two_lines("P", "\\tfrac{L\\beta}{2} \\sum_i \\sigma_i^{2/L}", numbers)
    # equal exactly when the closed forms agree (L = 2 or rank(W*) <= 1)
    relation = "=" if _equal(primal, dual) else ">"
    return _two_lines("P_{\\text{parallel}}",
                      f"P_{{\\text{{standard}}}} \\;{relation}\\; D = {_num(dual)}", numbers)


def _no_formula(*_args) -> None:
    return None


PROGRAMS: dict[tuple[str, Family], LinearProgram] = {
    (p.objective, p.family): p for p in (
        LinearProgram("interpolation", Family.NORM_BOUND,
                      _interpolation(_norm_bound_interpolation), _interpolation_dual,
                      _norm_bound_formula, _no_formula, equal_spectrum_ratio=True),
        LinearProgram("interpolation", Family.WEIGHT_DECAY,
                      _interpolation(_weight_decay_interpolation), _interpolation_dual,
                      _weight_decay_formula, _no_formula),
        LinearProgram("squared", Family.NORM_BOUND, _norm_bound_squared, _squared_dual,
                      _no_formula, _nuclear_threshold),
        LinearProgram("squared", Family.WEIGHT_DECAY, _weight_decay_squared, _squared_dual,
                      _no_formula, lambda s: prox_threshold(s.beta, s.depth)),
    )}


def program_for(exp: Experiment) -> LinearProgram:
    return PROGRAMS[(exp.objective, REGULARIZERS[exp.regularization].family)]


# -- the public surface -----------------------------------------------------------------------

def closed_form(exp: Experiment, X: np.ndarray, Y: np.ndarray) -> ClosedForm:
    """The closed forms of docs/math.md §3 for this experiment (deep linear networks only)."""
    label = dual_label(exp)
    if exp.activation != "linear":
        return ClosedForm(None, None, None, label, ("closed forms exist for linear nets only",))
    if not np.any(Y):  # every objective and regularizer is >= 0, and W = 0 attains 0
        return ClosedForm(0.0, 0.0, np.zeros(0), label,
                          ("the target is zero: the zero network is optimal, at value 0",),
                          np.zeros((X.shape[1], Y.shape[1])))
    found = program_for(exp).closed_form(_Setting.of(exp), X, Y)
    return ClosedForm(found.primal, found.dual, found.spectrum, label, found.notes,
                      found.end_to_end)


def solve_dual(exp: Experiment, X: np.ndarray, Y: np.ndarray,
               solver: str = DEFAULT_SOLVER) -> DualResult:
    """The dual of docs/math.md §3 for this experiment, by CVXPY (see the table's rows)."""
    started = time.perf_counter()
    found = program_for(exp).dual(_Setting.of(exp), X, Y, solver)
    status, detail = SolveStatus.parse(found.status)
    return DualResult(found.value, f"{dual_label(exp)} [CVXPY/{solver}]", status,
                      time.perf_counter() - started, found.t_star, list(found.notes),
                      found.lower, found.upper, detail=detail)


def formula_latex(exp: Experiment, sigma: Sequence[float] | None,
                  primal: float | None, dual: float | None) -> str | None:
    """The closed form of this architecture's optimal value (interpolation), numbers included,
    on two aligned lines (formula, then numbers) so it fits half a projected screen; None where
    docs/math.md §3 gives no closed form."""
    if exp.activation != "linear" or not sigma:
        return None
    return program_for(exp).formula(exp, _Setting.of(exp), sigma, primal, dual)


def spectrum_threshold(exp: Experiment) -> float | None:
    """The singular value of X^T Y below which the squared-loss closed form cuts to zero
    (docs/math.md §3.5): the prox threshold of weight decay, the soft threshold of the nuclear
    norm (a parallel net, or L = 2); None where the closed form is not a threshold
    (interpolation keeps every singular value)."""
    if exp.activation != "linear":
        return None
    return program_for(exp).threshold(_Setting.of(exp))


def has_equal_spectrum_ratio(exp: Experiment) -> bool:
    """Whether P/D = r^{(L-2)/2} (standard) and 1 (parallel) hold for W* with r equal singular
    values (docs/math.md §3.2): linear nets, interpolation, the norm-bound family."""
    return exp.activation == "linear" and program_for(exp).equal_spectrum_ratio
