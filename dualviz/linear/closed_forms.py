"""Closed forms for deep linear networks (numpy and scipy only): the formulas of docs/math.md §3.

Notation (docs/math.md §1): X is N x d, Y is N x K, W* = pinv(X) Y with singular values sigma,
beta > 0, depth L >= 2, t the norm bound of the first L - 2 layers under the rescaled
regularization. Every formula here was checked against training and CVXPY (tests/). Which
formula applies to an experiment is decided in one place, dualviz.linear.programs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize_scalar

from ..data import interpolation_residual, target_matrix

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


def whitened_end_to_end(X: np.ndarray, Y: np.ndarray, s: np.ndarray) -> np.ndarray:
    """U diag(s) V^T with X^T Y = U diag(sigma) V^T: the optimal end-to-end matrix of the
    whitened squared problems, whose solutions act on the singular values only."""
    _, U, _, Vt = _whitened_parts(X, Y)
    return (U * s) @ Vt


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


def squared_limits(X: np.ndarray, Y: np.ndarray) -> dict[str, float]:
    """The limits of D(lam) = min_W 0.5 ||XW - Y||^2 + lam ||W||_* that minimize_over_t needs:
    limit_zero = 0.5 ||Y||^2 (W = 0, optimal iff lam >= lam_zero = ||X^T Y||_2) and
    limit_infinity = D(0) = 0.5 ||(I - X pinv(X)) Y||^2 (least squares)."""
    residual = Y - X @ target_matrix(X, Y)
    return {"limit_zero": 0.5 * float(np.sum(Y * Y)),
            "lam_zero": float(np.linalg.norm(X.T @ Y, 2)) if Y.size else 0.0,
            "limit_infinity": 0.5 * float(np.sum(residual * residual))}


def t_upper(X: np.ndarray, Y: np.ndarray, depth: int) -> float:
    """An upper bound on the optimal t of the weight-decay bound: ||pinv(X) Y||_*^{1/L}.

    At the optimum t^L = ||W(t)||_*, and a nuclear-norm-regularized solution is never larger in
    nuclear norm than pinv(X) Y, the smallest least-squares solution.
    """
    nuclear = float(np.sum(singular_values(target_matrix(X, Y))))
    return max(nuclear, 1e-12) ** (1.0 / depth)


@dataclass(frozen=True)
class TSearch:
    """min_t g(t), g(t) = (beta/2)(L-2) t^2 + D(lam(t)), lam(t) = beta t^{-(L-2)}, bracketed:
    lower <= min_t g <= upper (lower is the bound to report: it never exceeds the optimum).
    t_star: where upper was attained (None when it is the t -> 0 limit); evaluations: how many
    D(lam) were computed."""

    lower: float
    upper: float
    t_star: float | None
    evaluations: int


def minimize_over_t(dual_of_lam: Callable[[float], float], beta: float, depth: int,
                    t_max: float, *, limit_zero: float, lam_zero: float, limit_infinity: float,
                    grid: int = 41, rel_tol: float = 1e-12, max_evaluations: int = 400) -> TSearch:
    """The weight-decay bound min_{t > 0} [(beta/2)(L-2) t^2 + D(lam(t))] from the rescaled
    duals D(lam), certified, with every limit of the search.

    D(lam) = min_W [loss(W) + lam ||W||_*] is concave and nondecreasing in lam (an infimum of
    affine functions with slopes ||W||_* >= 0), and lam(t) decreases in t. So:
    - t -> 0 (lam -> inf): g -> limit_zero (the zero network: 0.5 ||Y||^2 for the squared loss);
      for lam >= lam_zero (= ||X^T Y||_2, where W = 0 is optimal) D is that constant and g only
      grows with t, so (0, t_zero] contributes its infimum limit_zero and nothing else;
    - between two evaluated t_i < t_j, D(lam) lies above its chord in lam (concavity), so
      g >= min over [t_i, t_j] of (beta/2)(L-2) t^2 + chord(lam(t)), a convex function of t
      whose minimiser is t^L = (chord slope), clipped to the interval; the last interval is
      [t_hi, inf), with D(0) = limit_infinity (the least-squares residual) at its end.
    The interval of least lower bound is bisected (in log t) until upper - lower <= rel_tol
    |upper| or max_evaluations. Each evaluation of g also improves upper. For L = 2 there is no
    t: both are D(beta) (lam = beta).
    """
    if depth == 2:
        value = limit_zero if beta >= lam_zero else dual_of_lam(beta)  # W = 0 optimal: known
        return TSearch(value, value, 1.0, 1)
    a = beta / 2 * (depth - 2)

    def lam(t: float) -> float:
        return beta * t ** (-(depth - 2))

    t_zero = (beta / lam_zero) ** (1.0 / (depth - 2)) if lam_zero > 0 else np.inf
    t_hi = 1.5 * max(t_max, 1e-300)
    if not t_zero < t_hi:  # D(lam(t)) = limit_zero on the whole search range
        return TSearch(limit_zero, limit_zero, None, 0)
    points: dict[float, float] = {}

    def evaluate(t: float) -> float:
        # Compared in t, not in lam(t): lam(t_zero) can round to just below lam_zero (it did on
        # one CPU and not another), and a solve where W = 0 is known to be optimal may fail.
        if t not in points:
            points[t] = limit_zero if t <= t_zero else dual_of_lam(lam(t))
        return points[t]

    grid_ts = np.exp(np.linspace(np.log(t_zero), np.log(t_hi), grid))
    grid_ts[0] = t_zero
    for t in grid_ts:
        evaluate(float(t))

    def bracket(log_t: float) -> float:
        t = float(np.exp(log_t))
        value = a * t * t + evaluate(t)
        return value if np.isfinite(value) else np.inf

    ts = sorted(points)
    values = [a * t * t + points[t] for t in ts]
    if not np.any(np.isfinite(values)):  # every solve failed: nothing is bounded
        return TSearch(-np.inf, np.inf, None, len(points))
    i = int(np.nanargmin(values))
    lo, hi = np.log(ts[max(i - 1, 0)]), np.log(ts[min(i + 1, len(ts) - 1)])
    if hi > lo:
        minimize_scalar(bracket, bounds=(lo, hi), method="bounded",
                        options={"xatol": 1e-10, "maxiter": 100})
    while True:
        ts = sorted(points)
        g = [a * t * t + points[t] for t in ts]
        best = int(np.nanargmin(g))
        upper, t_star = (g[best], ts[best]) if g[best] < limit_zero else (limit_zero, None)
        bounds = [_chord_bound(a, beta, depth, ts[k], ts[k + 1], points[ts[k]],
                               points[ts[k + 1]]) for k in range(len(ts) - 1)]
        tail = _chord_bound(a, beta, depth, ts[-1], np.inf, points[ts[-1]], limit_infinity)
        lower = min([limit_zero, tail, *bounds])
        if upper - lower <= rel_tol * abs(upper) or len(points) >= max_evaluations or not bounds:
            return TSearch(min(lower, upper), upper, t_star, len(points))
        k = int(np.argmin(bounds))
        middle = float(np.sqrt(ts[k] * ts[k + 1]))
        if middle in points or not ts[k] < middle < ts[k + 1]:  # at rounding: cannot refine
            return TSearch(min(lower, upper), upper, t_star, len(points))
        evaluate(middle)


def _chord_bound(a: float, beta: float, depth: int, t1: float, t2: float, d1: float,
                 d2: float) -> float:
    """min over t in [t1, t2] of a t^2 + chord(lam(t)), the chord of D through (lam(t1), d1)
    and (lam(t2), d2): a lower bound of a t^2 + D(lam(t)) there (D concave)."""
    lam1 = beta * t1 ** (-(depth - 2))
    lam2 = beta * t2 ** (-(depth - 2)) if np.isfinite(t2) else 0.0
    if not (np.isfinite(d1) and np.isfinite(d2)):
        return -np.inf  # an unknown value bounds nothing: refine there
    slope = max((d1 - d2) / (lam1 - lam2), 0.0) if lam1 > lam2 else 0.0
    t = float(min(max(slope ** (1.0 / depth), t1), t2))
    return a * t * t + d2 + slope * (beta * t ** (-(depth - 2)) - lam2)



def interpolation_feasible(X: np.ndarray, Y: np.ndarray) -> tuple[bool, float]:
    """Whether XW = Y has a solution, and the relative residual ||X pinv(X) Y - Y|| / ||Y||."""
    relative = interpolation_residual(X, Y)
    return relative <= INTERPOLATION_TOL, relative




def equal_spectrum_ratio(rank: int, depth: int, arch: str) -> float:
    """P/D for interpolation with the rescaled (or L-th power) regularization when W* has r
    equal singular values sigma (docs/math.md §3.2):

        standard:  P / D = ||W*||_{S_{2/L}} / ||W*||_* = (r sigma^{2/L})^{L/2} / (r sigma)
                         = r^{(L-2)/2}
        parallel:  P / D = 1  (zero duality gap at every depth).
    """
    if rank < 1 or depth < 2:
        raise ValueError(f"need rank >= 1 and depth >= 2, got {rank}, {depth}")
    return 1.0 if arch == "parallel" else float(rank) ** ((depth - 2) / 2)
