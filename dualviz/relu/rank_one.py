"""Three-layer ReLU nets on rank-one data X = c a^T: closed forms and the dual (docs/math.md §5).

Rescaled regularization (||W_1||_F <= t; L-th power is t = 1) and interpolation. With
T = t ||a||, c+ = max(c, 0), c- = max(-c, 0), a target is reachable iff
Y = c+ alpha^T + c- gamma^T; then the dual is D = (beta/T)(||alpha|| + ||gamma||), which the
parallel net attains, and the standard net's optimum is
P = beta min_theta Phi(alpha/(T cos theta), gamma/(T sin theta)), equal to D only when alpha and
gamma point the same way (or one is zero, or c has one sign).
"""

from __future__ import annotations

from dataclasses import dataclass

import cvxpy as cp
import numpy as np
from scipy.optimize import minimize_scalar

from ..solvers import DEFAULT_SOLVER, data_scale, solve_program


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


def rank_one_factors(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """c and a with X = c a^T and ||a|| = 1 (from the leading singular pair)."""
    U, S, Vt = np.linalg.svd(X, full_matrices=False)
    return U[:, 0] * S[0], Vt[0]


def rank_one_relu_dual(c: np.ndarray, Y: np.ndarray, bound: float,
                       solver: str = DEFAULT_SOLVER) -> tuple[float | None, str]:
    """The dual as an SOCP, by CVXPY (the cross-check of RankOneThreeLayer.dual):

    max_Lambda tr(Lambda^T Y) s.t. ||Lambda^T c+|| <= bound, ||Lambda^T c-|| <= bound,
    with bound = beta / T. Its value is (beta/T)(||alpha|| + ||gamma||). Solved on c / ||c||,
    Y / ||Y|| and bound 1 (the value scales as bound ||Y|| / ||c||); a zero Y has the value 0
    without a solve.
    """
    Y = Y.reshape(len(c), -1)
    if not np.any(Y):
        return 0.0, cp.OPTIMAL
    c_scale, y_scale = data_scale(np.asarray(c, dtype=float)[:, None]), float(np.linalg.norm(Y))
    Lam = cp.Variable(Y.shape)
    plus, minus = np.maximum(c, 0.0) / c_scale, np.maximum(-c, 0.0) / c_scale
    problem = cp.Problem(cp.Maximize(cp.trace(Lam.T @ (Y / y_scale))),
                         [cp.norm(Lam.T @ plus, 2) <= 1.0, cp.norm(Lam.T @ minus, 2) <= 1.0])
    value, status = solve_program(problem, solver)
    return (None if value is None else value * bound * y_scale / c_scale), status


@dataclass(frozen=True)
class RankOneSquared:
    """Three-layer ReLU nets (no bias), rescaled, squared loss, scalar target, on rank-one data
    X = c a^T (docs/math.md §6.7). A net's output is c+ A + c- B for two scalars A, B, so

        parallel  D = min_{A,B} 0.5 ||c+ A + c- B - y||^2 + (beta/T)(|A| + |B|)
        standard  P = min_{A,B} 0.5 ||c+ A + c- B - y||^2 + beta * cost(A, B),

    cost = (|A| + |B|)/T when A B >= 0 and (|A|^{2/3} + |B|^{2/3})^{3/2}/T otherwise (the
    interpolation formulas of rank_one_three_layer at K = 1). The loss separates over the
    supports of c+ and c-; P = D unless c+.y and c-.y have opposite signs."""

    parallel: float
    standard: float
    A: float  # the parallel optimum's outputs on the two sides
    B: float
    T: float

    @property
    def relative_gap(self) -> float:
        return (self.standard - self.parallel) / self.parallel if self.parallel else 0.0


def rank_one_squared(c, a, y, beta: float, t: float) -> RankOneSquared:
    """The two optima of RankOneSquared: D in closed form (two soft thresholds), P by a
    seeded grid over the quadrant of the targets' signs, polished by Nelder-Mead (the cost
    (|A|^{2/3} + |B|^{2/3})^{3/2} is not convex)."""
    from scipy.optimize import minimize

    c = np.asarray(c, dtype=float).ravel()
    y = np.asarray(y, dtype=float).ravel()
    T = float(t * np.linalg.norm(np.asarray(a, dtype=float)))
    plus, minus = np.maximum(c, 0.0), np.maximum(-c, 0.0)
    p, q = float(plus @ plus), float(minus @ minus)
    bp, bm = float(plus @ y), float(minus @ y)
    lam = beta / T
    const = 0.5 * float(y @ y)

    def soft(b: float, n: float) -> float:
        return float(np.sign(b) * max(abs(b) - lam, 0.0) / n) if n > 0 else 0.0

    A, B = soft(bp, p), soft(bm, q)
    parallel = const + 0.5 * p * A * A - bp * A + 0.5 * q * B * B - bm * B \
        + lam * (abs(A) + abs(B))
    if bp * bm >= 0:  # the parallel optimum has A B >= 0, where both costs agree
        return RankOneSquared(parallel, parallel, A, B, T)

    def opposed(z) -> float:  # |A| = z[0], |B| = z[1], each of its target's sign
        u, v = np.maximum(z, 0.0)
        return const + 0.5 * p * u * u - abs(bp) * u + 0.5 * q * v * v - abs(bm) * v \
            + lam * (u ** (2 / 3) + v ** (2 / 3)) ** 1.5

    top = max(abs(A), abs(B), abs(bp) / p, abs(bm) / q)
    grid = np.linspace(0.0, top, 6)
    best = min(opposed((u, v)) for u in grid for v in grid)
    for u in grid:
        for v in grid:
            res = minimize(opposed, [u, v], method="Nelder-Mead",
                           options={"xatol": 1e-13, "fatol": 1e-15, "maxiter": 4000})
            best = min(best, float(res.fun))
    return RankOneSquared(parallel, min(best, const), A, B, T)
