"""Closed forms for deep linear networks (numpy and scipy only).

Notation (DESIGN §2): X is N x d, Y is N x K, W* = pinv(X) Y with singular values sigma,
beta > 0, depth L >= 2, t the norm bound of the first L - 2 layers under the rescaled
regularization. Every formula here was checked against training and CVXPY (tests/).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import minimize_scalar

from .config import Experiment
from .data import interpolation_residual, target_matrix

WHITENED_TOL = 1e-8
INTERPOLATION_TOL = 1e-8


def singular_values(W: np.ndarray) -> np.ndarray:
    """Singular values of W in decreasing order."""
    return np.linalg.svd(np.asarray(W, dtype=float), compute_uv=False)


def target_spectrum(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """The nonzero singular values sigma of W* = pinv(X) Y (relative cutoff 1e-12)."""
    sigma = singular_values(target_matrix(X, Y))
    return sigma[sigma > 1e-12 * sigma[0]] if sigma.size and sigma[0] > 0 else sigma[:0]


def schatten(sigma: np.ndarray, p: float) -> float:
    """Schatten quasi-norm ||A||_{S_p} = (sum_i sigma_i^p)^{1/p} from the singular values."""
    sigma = np.asarray(sigma, dtype=float)
    sigma = sigma[sigma > 0]
    return float(np.sum(sigma**p) ** (1.0 / p)) if sigma.size else 0.0


def rescaled_factor(beta: float, t: float, depth: int) -> float:
    """beta t^{-(L-2)}: the weight on the end-to-end norm under the rescaled regularization."""
    return beta * t ** (-(depth - 2))


def interpolation_rescaled_standard(sigma, beta: float, t: float, depth: int) -> float:
    """Standard net, rescaled, interpolation: P(t) = beta t^{-(L-2)} ||W*||_{S_{2/L}}."""
    return rescaled_factor(beta, t, depth) * schatten(sigma, 2.0 / depth)


def interpolation_rescaled_dual(sigma, beta: float, t: float, depth: int) -> float:
    """Dual (= parallel primal), rescaled, interpolation: D(t) = beta t^{-(L-2)} ||W*||_*."""
    return rescaled_factor(beta, t, depth) * float(np.sum(sigma))


def interpolation_weight_decay_standard(sigma, beta: float, depth: int) -> float:
    """Weight decay, interpolation (standard and parallel): P = (L beta/2) sum_i sigma_i^{2/L}."""
    sigma = np.asarray(sigma, dtype=float)
    return depth * beta / 2.0 * float(np.sum(sigma[sigma > 0] ** (2.0 / depth)))


def optimal_t(C: float, beta: float, depth: int) -> tuple[float, float]:
    """min_t [(beta/2)(L-2) t^2 + C t^{-(L-2)}] = (L beta/2)(C/beta)^{2/L} at t* = (C/beta)^{1/L}.

    For L = 2 the bracket does not depend on t; the value is C (and t* = 1 by convention).
    """
    if depth == 2:
        return C, 1.0
    return depth * beta / 2.0 * (C / beta) ** (2.0 / depth), (C / beta) ** (1.0 / depth)


def interpolation_weight_decay_dual(sigma, beta: float, depth: int) -> float:
    """Weight-decay bound: the rescaled dual optimized over t, (L beta/2) ||W*||_*^{2/L}.

    (The plain Lagrangian dual of weight decay is degenerate, 0, for L >= 3.)
    """
    return optimal_t(beta * float(np.sum(sigma)), beta, depth)[0]


def prox_schatten(sigma: float, beta: float, depth: int) -> float:
    """argmin_{s >= 0} 0.5 (s - sigma)^2 + (L beta/2) s^{2/L}.

    L = 2: max(sigma - beta, 0). L >= 3: a hard threshold. With s* = (beta(L-2))^{L/(2L-2)}
    and sigma_thr = ((L-1)/(L-2)) s*, s = 0 if sigma <= sigma_thr; otherwise the largest root of
    s + beta s^{2/L-1} = sigma, found by bisection on [s_min, sigma] with
    s_min = (beta(L-2)/L)^{L/(2L-2)} (where the left side is smallest), and kept only if it beats 0.
    """
    if depth == 2:
        return max(sigma - beta, 0.0)
    jump = (beta * (depth - 2)) ** (depth / (2 * depth - 2))
    if sigma <= (depth - 1) / (depth - 2) * jump:
        return 0.0
    lo = (beta * (depth - 2) / depth) ** (depth / (2 * depth - 2))
    hi = sigma
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mid + beta * mid ** (2.0 / depth - 1.0) < sigma:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-15 * max(1.0, hi):
            break
    s = 0.5 * (lo + hi)
    cost = 0.5 * (s - sigma) ** 2 + depth * beta / 2.0 * s ** (2.0 / depth)
    return s if cost < 0.5 * sigma**2 else 0.0


def prox_threshold(beta: float, depth: int) -> float:
    """The sigma below which prox_schatten returns 0: beta (L = 2) or ((L-1)/(L-2)) s*."""
    if depth == 2:
        return beta
    return (depth - 1) / (depth - 2) * (beta * (depth - 2)) ** (depth / (2 * depth - 2))


def is_whitened(X: np.ndarray) -> bool:
    """X^T X = I to WHITENED_TOL."""
    d = X.shape[1]
    return bool(np.linalg.norm(X.T @ X - np.eye(d)) <= WHITENED_TOL * max(1.0, np.sqrt(d)))


def _whitened_parts(X: np.ndarray, Y: np.ndarray) -> tuple[float, np.ndarray, np.ndarray,
                                                            np.ndarray]:
    """For X^T X = I: 0.5||(I - X X^T) Y||^2 and the SVD U diag(sigma) V^T of X^T Y."""
    XtY = X.T @ Y
    outside = 0.5 * float(np.linalg.norm(Y - X @ XtY) ** 2)
    U, sigma, Vt = np.linalg.svd(XtY, full_matrices=False)
    return outside, U, sigma, Vt


def _keep_largest(values: np.ndarray, rank_cap: int | None) -> np.ndarray:
    # Each per-singular-value saving grows with sigma, so a rank cap keeps the largest ones.
    if rank_cap is None or rank_cap >= values.size:
        return values
    capped = values.copy()
    capped[rank_cap:] = 0.0
    return capped


def squared_weight_decay_whitened(X, Y, beta: float, depth: int,
                                  rank_cap: int | None = None) -> tuple[float, np.ndarray]:
    """Squared loss + weight decay, X^T X = I: value and singular values s_i = prox(sigma_i).

    value = 0.5 ||(I - X X^T) Y||^2 + sum_i [0.5 (s_i - sigma_i)^2 + (L beta/2) s_i^{2/L}],
    sigma = singular values of X^T Y; rank_cap (the width) keeps at most that many s_i.
    """
    outside, _, sigma, _ = _whitened_parts(X, Y)
    s = _keep_largest(np.array([prox_schatten(x, beta, depth) for x in sigma]), rank_cap)
    value = outside + float(np.sum(0.5 * (s - sigma) ** 2 + depth * beta / 2 * s ** (2 / depth)))
    return value, s


def squared_nuclear_whitened(X, Y, lam: float,
                             rank_cap: int | None = None) -> tuple[float, np.ndarray]:
    """min_W 0.5||XW - Y||^2 + lam ||W||_* for X^T X = I: soft-threshold sigma(X^T Y) at lam.

    value = 0.5 ||(I - X X^T) Y||^2 + sum_i h(sigma_i),
    h(sigma) = lam sigma - lam^2/2 if sigma > lam else sigma^2/2.
    """
    outside, _, sigma, _ = _whitened_parts(X, Y)
    s = _keep_largest(np.maximum(sigma - lam, 0.0), rank_cap)
    value = outside + float(np.sum(0.5 * (s - sigma) ** 2 + lam * s))
    return value, s


def t_upper(X: np.ndarray, Y: np.ndarray, depth: int) -> float:
    """An upper bound on the optimal t of the weight-decay bound: ||pinv(X) Y||_*^{1/L}.

    At the optimum t^L = ||W(t)||_*, and a nuclear-norm-regularized solution is never larger in
    nuclear norm than pinv(X) Y, the smallest least-squares solution.
    """
    nuclear = float(np.sum(singular_values(target_matrix(X, Y))))
    return max(nuclear, 1e-12) ** (1.0 / depth)


def minimize_over_t(dual_of_t: Callable[[float], float], beta: float, depth: int, t_max: float,
                    grid: int = 41, xatol: float = 1e-10) -> tuple[float, float]:
    """min_t [(beta/2)(L-2) t^2 + D(t)]: the weight-decay bound from the rescaled duals D(t).

    A log-spaced grid on t in [1e-3 t_max, 1.5 t_max] locates the basin, then bounded Brent
    refines log t. Returns (value, t*). For L = 2 the bracket is D(1).
    """
    if depth == 2:
        return dual_of_t(1.0), 1.0

    def bracket(log_t: float) -> float:
        t = float(np.exp(log_t))
        value = beta / 2 * (depth - 2) * t * t + dual_of_t(t)
        return value if np.isfinite(value) else np.inf

    logs = np.linspace(np.log(1e-3 * t_max), np.log(1.5 * t_max), grid)
    values = [bracket(x) for x in logs]
    i = int(np.argmin(values))
    lo, hi = logs[max(i - 1, 0)], logs[min(i + 1, grid - 1)]
    res = minimize_scalar(bracket, bounds=(lo, hi), method="bounded",
                          options={"xatol": xatol, "maxiter": 200})
    best_log, best = (res.x, float(res.fun)) if res.fun <= values[i] else (logs[i], values[i])
    return best, float(np.exp(best_log))


@dataclass(frozen=True)
class ClosedForm:
    """What theory predicts for one experiment; None where no closed form exists.

    primal: optimal value of the chosen architecture; dual: the dual value (or, for weight
    decay, the rescaled dual optimized over t); spectrum: singular values of the optimal
    end-to-end matrix; dual_label says which dual it is.
    """

    primal: float | None
    dual: float | None
    spectrum: np.ndarray | None
    dual_label: str
    notes: tuple[str, ...] = field(default=())


def interpolation_feasible(X: np.ndarray, Y: np.ndarray) -> tuple[bool, float]:
    """Whether XW = Y has a solution, and the relative residual ||X pinv(X) Y - Y|| / ||Y||."""
    relative = interpolation_residual(X, Y)
    return relative <= INTERPOLATION_TOL, relative


def dual_label(exp: Experiment) -> str:
    """Which dual the app shows for this experiment."""
    if exp.regularization == "weight-decay" and exp.depth >= 3:
        return "rescaled dual optimized over t (a lower bound for weight decay)"
    if exp.objective == "squared":
        return "nuclear-norm convex program (equals the dual)"
    return "Lagrangian dual (SDP)"


def closed_form(exp: Experiment, X: np.ndarray, Y: np.ndarray) -> ClosedForm:
    """Dispatch DESIGN §3 on the experiment (deep linear networks only)."""
    label = dual_label(exp)
    if exp.activation != "linear":
        return ClosedForm(None, None, None, label, ("closed forms exist for linear nets only",))
    L, beta = exp.depth, exp.beta
    t = 1.0 if exp.regularization == "lth-power" else exp.t
    capacity = exp.width if exp.arch == "standard" else exp.branches
    if exp.objective == "interpolation":
        return _interpolation(exp, X, Y, L, beta, t, capacity, label)
    return _squared(exp, X, Y, L, beta, t, capacity, label)


def _interpolation(exp, X, Y, L, beta, t, capacity, label) -> ClosedForm:
    feasible, residual = interpolation_feasible(X, Y)
    if not feasible:
        return ClosedForm(None, None, None, label, (
            f"XW = Y has no solution (relative residual {residual:.2e}): no closed form",))
    sigma = target_spectrum(X, Y)
    if exp.regularization == "weight-decay":
        dual = interpolation_weight_decay_dual(sigma, beta, L)
        primal = interpolation_weight_decay_standard(sigma, beta, L)  # parallel is no better
    else:
        dual = interpolation_rescaled_dual(sigma, beta, t, L)
        primal = dual if exp.arch == "parallel" else interpolation_rescaled_standard(
            sigma, beta, t, L)
    notes: tuple[str, ...] = ()
    if capacity < sigma.size:
        what = "width" if exp.arch == "standard" else "branches"
        notes = (f"{what} {capacity} < rank(W*) = {sigma.size}: the net cannot interpolate",)
        primal = None
    return ClosedForm(primal, dual, sigma, label, notes)


def _squared(exp, X, Y, L, beta, t, capacity, label) -> ClosedForm:
    if not is_whitened(X):
        return ClosedForm(None, None, None, label,
                          ("no closed form for the squared loss unless X is whitened",))
    if exp.regularization == "weight-decay":
        primal, spectrum = squared_weight_decay_whitened(X, Y, beta, L, capacity)
        dual = minimize_over_t(
            lambda tt: squared_nuclear_whitened(X, Y, rescaled_factor(beta, tt, L))[0],
            beta, L, t_upper(X, Y, L))[0]
        return ClosedForm(primal, dual, spectrum, label)
    lam = rescaled_factor(beta, t, L)
    dual = squared_nuclear_whitened(X, Y, lam)[0]
    if exp.arch == "parallel" or L == 2:
        primal, spectrum = squared_nuclear_whitened(X, Y, lam, capacity)
        return ClosedForm(primal, dual, spectrum, label)
    return ClosedForm(None, dual, None, label,
                      ("standard net, squared loss, L >= 3: the Schatten-2/L problem has no "
                       "closed form; train it",))
