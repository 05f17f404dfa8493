"""Closed forms for deep linear networks (numpy and scipy only).

Notation (docs/math.md §1): X is N x d, Y is N x K, W* = pinv(X) Y with singular values sigma,
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


def _whitened_end_to_end(X: np.ndarray, Y: np.ndarray, s: np.ndarray) -> np.ndarray:
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
        value = _limited(dual_of_lam, beta, lam_zero, limit_zero)
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
        if t not in points:
            points[t] = _limited(dual_of_lam, lam(t), lam_zero, limit_zero)
        return points[t]

    for t in np.exp(np.linspace(np.log(t_zero), np.log(t_hi), grid)):
        evaluate(float(t))

    def bracket(log_t: float) -> float:
        t = float(np.exp(log_t))
        value = a * t * t + evaluate(t)
        return value if np.isfinite(value) else np.inf

    ts = sorted(points)
    values = [a * t * t + points[t] for t in ts]
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


def _limited(dual_of_lam: Callable[[float], float], lam: float, lam_zero: float,
             limit_zero: float) -> float:
    """D(lam), or its known value without a solve where W = 0 is optimal (lam >= lam_zero)."""
    return limit_zero if lam >= lam_zero else dual_of_lam(lam)


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


@dataclass(frozen=True)
class ClosedForm:
    """What theory predicts for one experiment; None where no closed form exists.

    primal: optimal value of the chosen architecture; dual: the dual value (or, for weight
    decay, the rescaled dual optimized over t); spectrum: singular values of the optimal
    end-to-end matrix; dual_label says which dual it is; end_to_end: that optimal matrix
    (d x K) where the primal is known (a training restart starts from its factors).
    """

    primal: float | None
    dual: float | None
    spectrum: np.ndarray | None
    dual_label: str
    notes: tuple[str, ...] = field(default=())
    end_to_end: np.ndarray | None = None


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
    """Dispatch docs/math.md §3 on the experiment (deep linear networks only)."""
    label = dual_label(exp)
    if exp.activation != "linear":
        return ClosedForm(None, None, None, label, ("closed forms exist for linear nets only",))
    L, beta = exp.depth, exp.beta
    t = 1.0 if exp.regularization == "lth-power" else exp.t
    capacity = exp.width if exp.arch == "standard" else exp.branches
    if not np.any(Y):  # every objective and regularizer is >= 0, and W = 0 attains 0
        return ClosedForm(0.0, 0.0, np.zeros(0), label,
                          ("the target is zero: the zero network is optimal, at value 0",),
                          np.zeros((X.shape[1], Y.shape[1])))
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
    # W* = pinv(X) Y is optimal for every Schatten quasi-norm among the W with XW = Y: the
    # others add a part outside the row space of X, which only raises singular values.
    end_to_end = target_matrix(X, Y) if primal is not None else None
    return ClosedForm(primal, dual, sigma, label, notes, end_to_end)


def _squared(exp, X, Y, L, beta, t, capacity, label) -> ClosedForm:
    if not is_whitened(X):
        return ClosedForm(None, None, None, label,
                          ("no closed form for the squared loss unless X is whitened",))
    if exp.regularization == "weight-decay":
        primal, spectrum = squared_weight_decay_whitened(X, Y, beta, L, capacity)
        dual = minimize_over_t(lambda lam: squared_nuclear_whitened(X, Y, lam)[0], beta, L,
                               t_upper(X, Y, L), **squared_limits(X, Y)).lower
        return ClosedForm(primal, dual, spectrum, label, (),
                          _whitened_end_to_end(X, Y, spectrum))
    lam = rescaled_factor(beta, t, L)
    dual = squared_nuclear_whitened(X, Y, lam)[0]
    if exp.arch == "parallel" or L == 2:
        primal, spectrum = squared_nuclear_whitened(X, Y, lam, capacity)
        return ClosedForm(primal, dual, spectrum, label, (),
                          _whitened_end_to_end(X, Y, spectrum))
    return ClosedForm(None, dual, None, label,
                      ("standard net, squared loss, L >= 3: the Schatten-2/L problem has no "
                       "closed form; train it",))


# --------------------------------------------------------------------------------------------
# Three-layer ReLU nets on rank-one data (docs/math.md §5)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RankOneThreeLayer:
    """Three-layer ReLU nets, rescaled, interpolation, on rank-one data X = c a^T (docs/math.md §5).

    feasible: Y = c+ alpha^T + c- gamma^T (the only targets a ReLU net without bias can fit);
    alpha, gamma: the targets of the samples with c_i > 0 and c_i < 0 (shape (K,));
    T = t ||a||: the largest ||W_1^T a|| allowed by ||W_1||_F <= t;
    dual: D = (beta/T)(||alpha|| + ||gamma||), which the parallel net reaches;
    standard: P = beta min_theta Phi(alpha/(T cos theta), gamma/(T sin theta));
    theta: the minimizing theta (0 or pi/2 when gamma or alpha is 0; None if infeasible or
        Y = 0);
    zero_gap: feasible and (alpha, gamma non-negatively collinear, or one of them is 0);
    explanation: one plain-words paragraph with the numbers.
    """

    feasible: bool
    alpha: np.ndarray
    gamma: np.ndarray
    T: float
    dual: float | None
    standard: float | None
    theta: float | None
    zero_gap: bool
    explanation: str


def rank_one_split(c: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """alpha = Y^T c+/||c+||^2, gamma = Y^T c-/||c-||^2 and the residual of the split.

    c+ = max(c, 0), c- = max(-c, 0); a vector is 0 when its c-part is 0. The residual is
    ||Y - c+ alpha^T - c- gamma^T||_F: zero iff a ReLU net can interpolate Y from X = c a^T
    (after the first ReLU every hidden unit is c+ u_i or c- u_i, and c+, c- have disjoint
    supports, so every output column lies in span(c+, c-)).
    """
    c = np.asarray(c, dtype=float)
    Y = np.asarray(Y, dtype=float).reshape(c.size, -1)
    parts = []
    for side in (np.maximum(c, 0.0), np.maximum(-c, 0.0)):
        norm_sq = float(side @ side)
        parts.append(Y.T @ side / norm_sq if norm_sq > 0 else np.zeros(Y.shape[1]))
    alpha, gamma = parts
    fit = np.outer(np.maximum(c, 0.0), alpha) + np.outer(np.maximum(-c, 0.0), gamma)
    return alpha, gamma, float(np.linalg.norm(Y - fit))


def phi_rank_one(a1: np.ndarray, a2: np.ndarray) -> float:
    """Phi(a1, a2): the least (1/2)(||P||^2 + ||W||^2) over P >= 0 (m x 2), W with W^T P = [a1 a2].

    Phi = sqrt(||a1||^2 + ||a2||^2 + 2 sqrt(||a1||^2 ||a2||^2 - (a1.a2)^2)) (the nuclear norm
    of [a1 a2]) if a1.a2 >= 0, else ||a1|| + ||a2|| (one neuron each).
    """
    n1, n2 = float(np.linalg.norm(a1)), float(np.linalg.norm(a2))
    if float(np.dot(a1, a2)) < 0:
        return n1 + n2
    return float(np.sqrt(n1 * n1 + n2 * n2 + 2.0 * _wedge(a1, a2)))


def _wedge(u: np.ndarray, v: np.ndarray) -> float:
    """sqrt(||u||^2 ||v||^2 - (u.v)^2) = ||u|| ||v - (v.u/||u||^2) u||, computed stably."""
    nu = float(np.linalg.norm(u))
    if nu == 0:
        return 0.0
    unit = np.asarray(u, dtype=float) / nu
    return nu * float(np.linalg.norm(v - np.dot(v, unit) * unit))


def rank_one_standard_objective(theta: float, alpha, gamma, T: float) -> float:
    """Phi(alpha/(T cos theta), gamma/(T sin theta)) for theta in (0, pi/2).

    theta splits the first layer's budget: ||(W_1^T a)+|| = T cos theta feeds the samples with
    c_i > 0 and ||(W_1^T a)-|| = T sin theta those with c_i < 0.
    """
    return phi_rank_one(np.asarray(alpha) / (T * np.cos(theta)),
                        np.asarray(gamma) / (T * np.sin(theta)))


def minimize_rank_one_theta(alpha, gamma, T: float, grid: int = 401,
                            xatol: float = 1e-13) -> tuple[float, float]:
    """min over theta in (0, pi/2) of rank_one_standard_objective; returns (value, theta).

    Both alpha, gamma nonzero: the objective tends to +inf at both ends; in x = tan theta,
    T^2 Phi^2 = ||alpha||^2 (1 + x^2) + ||gamma||^2 (1 + 1/x^2) + 2 s (x + 1/x) with
    s = sqrt(||alpha||^2 ||gamma||^2 - (alpha.gamma)^2) when alpha.gamma >= 0, which is convex
    in x, so the minimum is unique. A grid of `grid` interior points brackets it, then bounded
    Brent refines it. One of them 0: the infimum is the limit at an end, ||alpha||/T at
    theta = 0 or ||gamma||/T at theta = pi/2.
    """
    na, ng = float(np.linalg.norm(alpha)), float(np.linalg.norm(gamma))
    if ng == 0:
        return na / T, 0.0
    if na == 0:
        return ng / T, float(np.pi / 2)

    def objective(theta: float) -> float:
        return rank_one_standard_objective(theta, alpha, gamma, T)

    thetas = np.linspace(0.0, np.pi / 2, grid + 2)[1:-1]
    values = [objective(x) for x in thetas]
    i = int(np.argmin(values))
    lo = thetas[i - 1] if i > 0 else 0.5 * thetas[0]
    hi = thetas[i + 1] if i < grid - 1 else 0.5 * (thetas[-1] + np.pi / 2)
    res = minimize_scalar(objective, bounds=(lo, hi), method="bounded",
                          options={"xatol": xatol, "maxiter": 500})
    if float(res.fun) <= values[i]:
        return float(res.fun), float(res.x)
    return float(values[i]), float(thetas[i])


def rank_one_opposed_value(alpha, gamma, T: float) -> tuple[float, float]:
    """alpha.gamma <= 0: min_theta (||alpha||/cos theta + ||gamma||/sin theta)/T in closed form.

    = (||alpha||^{2/3} + ||gamma||^{2/3})^{3/2}/T at tan^3 theta = ||gamma||/||alpha||.
    Returns (value, theta).
    """
    na, ng = float(np.linalg.norm(alpha)), float(np.linalg.norm(gamma))
    value = (na ** (2 / 3) + ng ** (2 / 3)) ** 1.5 / T
    return value, float(np.arctan2(np.cbrt(ng), np.cbrt(na)))


def rank_one_three_layer(c, a, Y, beta: float, t: float, tol: float = 1e-9) -> RankOneThreeLayer:
    """Standard and parallel three-layer ReLU nets (no bias), rescaled, interpolating
    Y from X = outer(c, a): docs/math.md §5.

    f_standard(X) = relu(relu(X W_1) W_2) W_3, ||W_1||_F <= t, cost (beta/2)(||W_2||^2 + ||W_3||^2);
    the parallel net sums branches relu(relu(X W_{1j}) w_{2j}) w_{3j} with the same costs.
    With T = t ||a||, c+ = max(c, 0), c- = max(-c, 0), alpha, gamma from rank_one_split:
    feasible iff Y = c+ alpha^T + c- gamma^T (relative residual <= tol; X = 0 needs Y = 0);
    D = (beta/T)(||alpha|| + ||gamma||) = max tr(Lambda^T Y) s.t. ||Lambda^T c+||,
    ||Lambda^T c-|| <= beta/T, reached by the parallel net (one branch per side);
    P = beta min_theta Phi(alpha/(T cos theta), gamma/(T sin theta)), which is
    (beta/T)(||alpha||^{2/3} + ||gamma||^{2/3})^{3/2} if alpha.gamma <= 0.
    P = D iff alpha, gamma are non-negatively collinear or one is 0 (e.g. c has one sign);
    y = c (scalar, c of both signs) gives P/D = sqrt(2).
    """
    if not (beta > 0 and t > 0):
        raise ValueError("beta and t must be positive")
    c = np.asarray(c, dtype=float).ravel()
    a = np.asarray(a, dtype=float).ravel()
    Y = np.asarray(Y, dtype=float).reshape(c.size, -1)
    T = float(t * np.linalg.norm(a))
    alpha, gamma, residual = rank_one_split(c, Y)
    y_norm = float(np.linalg.norm(Y))
    if T == 0 or not np.any(c):  # X = 0: only Y = 0 is reachable, at no cost
        alpha, gamma = np.zeros(Y.shape[1]), np.zeros(Y.shape[1])
        residual = y_norm
    if residual > tol * y_norm:
        return RankOneThreeLayer(False, alpha, gamma, T, None, None, None, False,
                                 _rank_one_infeasible_text(residual / y_norm, T))
    na, ng = float(np.linalg.norm(alpha)), float(np.linalg.norm(gamma))
    if na == 0 and ng == 0:
        return RankOneThreeLayer(True, alpha, gamma, T, 0.0, 0.0, None, True,
                                 "The target is zero: both nets fit it with zero weights, at no "
                                 "cost, so there is no gap.")
    dual = beta * (na + ng) / T
    if na > 0 and ng > 0 and float(alpha @ gamma) <= 0:
        value, theta = rank_one_opposed_value(alpha, gamma, T)
    else:
        value, theta = minimize_rank_one_theta(alpha, gamma, T)
    standard = beta * value
    zero_gap = na == 0 or ng == 0 or (
        float(alpha @ gamma) >= 0 and _wedge(alpha, gamma) <= 1e-6 * na * ng)
    if zero_gap:  # P = D exactly; the 1-D search only approximates it
        standard = dual
    return RankOneThreeLayer(True, alpha, gamma, T, dual, standard, theta, zero_gap,
                             _rank_one_text(c, alpha, gamma, T, beta, dual, standard, theta))


def _rank_one_infeasible_text(relative: float, T: float) -> str:
    if T == 0:
        return ("X is zero (c = 0 or a = 0), so every net outputs zero and cannot fit a nonzero "
                "target: no finite primal value, and the dual is unbounded.")
    return ("A ReLU net without bias maps the rank-one data X = c a^T to outputs of the form "
            "c+ alpha^T + c- gamma^T (one target vector for the samples with positive c, one for "
            f"the negative ones); this Y is not of that form (relative residual {relative:.2e}), "
            "so neither net can interpolate it: no finite primal value, and the dual is "
            "unbounded.")


def _fmt_vec(v: np.ndarray) -> str:
    return "(" + ", ".join(f"{x:.4g}" for x in v) + ")"


def _rank_one_text(c, alpha, gamma, T, beta, dual, standard, theta) -> str:
    head = (f"The data are rank one (X = c a^T), and with T = t||a|| = {T:.4g} the network "
            f"must send the samples with c > 0 to c times alpha = {_fmt_vec(alpha)} and those "
            f"with c < 0 to |c| times gamma = {_fmt_vec(gamma)}. ")
    na, ng = float(np.linalg.norm(alpha)), float(np.linalg.norm(gamma))
    if na == 0 or ng == 0:
        why = ("all of c has one sign" if not (np.any(c > 0) and np.any(c < 0))
               else "one of the two target vectors is zero")
        return (head + f"Since {why}, only one side needs to be fitted and the standard net "
                f"can spend its whole first-layer budget on it: it reaches the dual value "
                f"D = beta(||alpha|| + ||gamma||)/T = {dual:.6g}, the same as the parallel net. "
                "Zero duality gap.")
    angle = float(np.degrees(np.arctan2(_wedge(alpha, gamma), float(alpha @ gamma))))
    body = (f"The parallel net (and the dual) gives each side its own branch with the full "
            f"budget T and reaches D = beta(||alpha|| + ||gamma||)/T = {dual:.6g}. The standard "
            f"net must share one first layer between the two sides, splitting T into "
            f"T cos(theta) and T sin(theta) (best theta = {np.degrees(theta):.2f} degrees), "
            f"and reaches P = {standard:.6g}. ")
    if standard <= dual * (1 + 1e-9):
        return head + body + (f"alpha and gamma point the same way (angle {angle:.3g} degrees), "
                              "so the two sides can share neurons for free: P = D, zero "
                              "duality gap.")
    return head + body + (f"alpha and gamma are at {angle:.1f} degrees, so sharing costs "
                          f"something: P/D = {standard / dual:.6g}, a gap of "
                          f"{standard - dual:.4g} ({100 * (standard / dual - 1):.2f}% of D). "
                          "The gap closes only when alpha and gamma point the same way, one of "
                          "them is zero, or c has one sign.")


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


def spectrum_threshold(exp: Experiment) -> float | None:
    """The singular value of X^T Y below which the squared-loss closed form cuts to zero
    (docs/math.md §3.5): the prox threshold of weight decay, the soft threshold
    lambda = beta t^{-(L-2)} of the nuclear norm (a parallel net, or L = 2); None where the
    closed form is not a threshold (interpolation keeps every singular value)."""
    if exp.activation != "linear" or exp.objective != "squared":
        return None
    if exp.regularization == "weight-decay":
        return prox_threshold(exp.beta, exp.depth)
    if exp.arch == "parallel" or exp.depth == 2:
        t = 1.0 if exp.regularization == "lth-power" else exp.t
        return rescaled_factor(exp.beta, t, exp.depth)
    return None
