"""A semismooth Newton augmented Lagrangian (SSNAL) solver for the restricted squared program.

The two-layer ReLU program over a working set of columns c = 1..m (docs/math.md §4 and
:mod:`dualviz.relu.working_set`) is

    (P)  min_u  0.5 ||y - sum_c J_c u_c||^2 + sum_c p_c(u_c),
         J_c = s_c D_c X,  p_c(u) = beta ||u|| + indicator(A_c u >= 0),  A_c = (2 D_c - I) X,
    (D)  max_lambda  lambda^T y - 0.5 ||lambda||^2  s.t.  ||Pi_{K_c}(J_c^T lambda)|| <= beta,

K_c = {u : A_c u >= 0}. SSNAL (Li, Sun & Toh 2018; Zhang, Zhang, Sun & Toh 2020 for the group
lasso) runs the augmented Lagrangian method on (D) with z_c = J_c^T lambda split off; its
multiplier is the primal u. For a penalty sigma the subproblem in lambda is

    psi(lambda) = 0.5 ||lambda||^2 - y^T lambda + ||prox_{sigma p}(v)||^2 / (2 sigma),
    grad psi    = lambda - y + J prox_{sigma p}(v),       v = sigma J^T lambda + u,

convex and once differentiable, followed by u <- prox_{sigma p}(sigma J^T lambda + u). The prox
is a shrunken projection,

    prox_{sigma p}(v)_c = (1 - sigma beta / ||Pi_{K_c}(v_c)||)_+ Pi_{K_c}(v_c)

(max v^T u over u in K_c, ||u|| = 1 is attained at Pi_{K_c}(v) / ||Pi_{K_c}(v)||), so psi is
minimised by Newton's method with the generalized Hessian

    I + sigma sum_c J_c (a_c F_c + b_c p_c p_c^T) J_c^T,
    a_c = 1 - sigma beta / ||p_c||,  b_c = sigma beta / ||p_c||^3,

summed over the columns with ||p_c|| > sigma beta, p_c = Pi_{K_c}(v_c), F_c the projection on
the null space of the cone rows active at p_c. The matrix is N x N and >= I, so it stays well
conditioned at any accuracy (an interior point's Newton systems do not), and warm started from
the previous round's u a solve takes a few Newton steps. Every u it returns lies in its cones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import cho_factor, cho_solve

from .cones import project_on_cone

TOL = 1e-10  # relative KKT residuals at which a solve stops
MAX_NEWTON = 200  # Newton steps per solve before it gives up (a warm solve takes 3-10)
MAX_OUTER = 60
ARMIJO = 1e-4
LINE_SEARCH_STEPS = 30
SIGMA_UP, SIGMA_DOWN = 5.0, 2.0


@dataclass(frozen=True, eq=False)
class NewtonSolve:
    """The result: U (m x d, each row in its cone), lambda = y - sum_c J_c u_c, and the
    penalty reached (for the record: a next solve whose new columns start at zero did better
    from sigma = 1 than from it, 60 s against 73 s at N = 500)."""

    converged: bool
    U: np.ndarray
    lam: np.ndarray
    sigma: float
    newton_steps: int
    primal_residual: float  # ||grad psi|| / (1 + ||y||) at the last subproblem
    dual_residual: float  # max_c dist(J_c^T lambda, dual set) / beta


@dataclass(frozen=True, eq=False)
class _Point:
    """psi and its gradient at lambda, with the prox and the columns where it is non-zero."""

    lam: np.ndarray
    value: float
    grad: np.ndarray
    prox: np.ndarray  # m x d
    live: list  # (column, p_c = Pi_{K_c}(v_c), ||p_c||, face)


def _null_basis(rows: np.ndarray) -> np.ndarray | None:
    """An orthonormal basis (d x k) of {u : rows u = 0}; None for no rows (the identity)."""
    if not rows.shape[0]:
        return None
    _, s, vt = np.linalg.svd(rows, full_matrices=True)
    rank = int(np.count_nonzero(s > 1e-10 * s[0]))
    return vt[rank:].T


class _Subproblem:
    """psi for fixed columns (J, A), data y, beta and a multiplier u; faces are cached per
    column so that most projections are a small least-squares problem."""

    def __init__(self, J: np.ndarray, A: np.ndarray, norms: np.ndarray, y: np.ndarray,
                 beta: float, faces: list):
        self.J, self.A, self.norms, self.y, self.beta, self.faces = J, A, norms, y, beta, faces

    def prox(self, V: np.ndarray, sigma: float) -> tuple[np.ndarray, list]:
        threshold = sigma * self.beta
        out = np.zeros_like(V)
        live = []
        lengths = np.linalg.norm(V, axis=1)
        candidates = np.flatnonzero(lengths > threshold)  # ||Pi_K(v)|| <= ||v||
        if not candidates.size:
            return out, live
        slack = np.einsum("cnd,cd->cn", self.A[candidates], V[candidates]) / self.norms
        for c, row_slack in zip(candidates, slack, strict=True):
            if row_slack.min() >= -1e-14 * lengths[c]:
                p, face = V[c], None  # inside the cone
            else:
                p, face = project_on_cone(self.A[c], V[c], self.norms, self.faces[c])
                self.faces[c] = face
            length = float(np.linalg.norm(p))
            if length > threshold:
                out[c] = (1.0 - threshold / length) * p
                live.append((c, p, length, face))
        return out, live

    def at(self, lam: np.ndarray, u: np.ndarray, sigma: float) -> _Point:
        G = np.einsum("cnd,n->cd", self.J, lam)
        prox, live = self.prox(sigma * G + u, sigma)
        value = 0.5 * lam @ lam - self.y @ lam + float((prox * prox).sum()) / (2 * sigma)
        grad = lam - self.y + np.einsum("cnd,cd->n", self.J, prox)
        return _Point(lam, value, grad, prox, live)

    def hessian(self, point: _Point, sigma: float) -> np.ndarray:
        """I + sigma G G^T, G the columns sqrt(a_c) J_c B_c and sqrt(b_c) J_c p_c (B_c a
        basis of the face's null space, so that B_c B_c^T = F_c)."""
        n = self.y.shape[0]
        blocks = []
        for c, p, length, face in point.live:
            a = 1.0 - sigma * self.beta / length
            b = sigma * self.beta / length ** 3
            basis = None if face is None else _null_basis(self.A[c][face])
            Jc = self.J[c] if basis is None else self.J[c] @ basis
            blocks += [np.sqrt(a) * Jc, np.sqrt(b) * (self.J[c] @ p)[:, None]]
        H = np.eye(n)
        if blocks:
            G = np.hstack(blocks)
            H += sigma * (G @ G.T)
        return H


def _line_search(problem: _Subproblem, point: _Point, direction: np.ndarray, slope: float,
                 u: np.ndarray, sigma: float) -> _Point | None:
    """Backtracking from the Newton step: Armijo's decrease of psi, or, once that decrease is
    below psi's rounding, a smaller gradient (near the solution psi no longer resolves it)."""
    step = 1.0
    for _ in range(LINE_SEARCH_STEPS):
        trial = problem.at(point.lam + step * direction, u, sigma)
        if trial.value <= point.value + ARMIJO * step * slope:
            return trial
        if abs(step * slope) <= 1e-12 * abs(point.value) and \
                np.linalg.norm(trial.grad) < np.linalg.norm(point.grad):
            return trial
        step /= 2
    return None


def solve_squared(J: np.ndarray, A: np.ndarray, norms: np.ndarray, y: np.ndarray, beta: float,
                  U0: np.ndarray, faces: list, sigma: float = 1.0,
                  tol: float = TOL) -> NewtonSolve:
    """(P) by SSNAL from U0 (m x d; rows outside their cones are fine, they are projected).

    J, A: m x N x d, the columns' J_c = s_c D_c X and A_c = (2 D_c - I) X. norms: the row norms
    of X (no zeros). faces: per column the active rows of its last projection (or None),
    updated in place. Stops when ||grad psi|| / (1 + ||y||) and the largest distance of a
    J_c^T lambda from its dual set relative to beta are both <= tol; the penalty moves to keep
    the two balanced.
    """
    problem = _Subproblem(J, A, norms, y, beta, faces)
    u = U0.copy()
    scale = 1.0 + float(np.linalg.norm(y))
    lam = y - np.einsum("cnd,cd->n", J, u)
    steps, primal, dual = 0, np.inf, np.inf
    for outer in range(MAX_OUTER):
        point = problem.at(lam, u, sigma)
        inner_tol = scale * max(0.1 ** (outer + 1), 0.1 * tol)
        while np.linalg.norm(point.grad) > inner_tol and steps < MAX_NEWTON:
            steps += 1
            H = problem.hessian(point, sigma)
            direction = -cho_solve(cho_factor(H), point.grad)
            slope = float(point.grad @ direction)
            trial = _line_search(problem, point, direction, slope, u, sigma)
            if trial is None:
                break  # no progress left at this precision: update the multiplier
            point = trial
        lam = point.lam
        primal = float(np.linalg.norm(point.grad)) / scale
        dual = float(np.linalg.norm(point.prox - u, axis=1).max(initial=0.0)) / (sigma * beta)
        u = point.prox
        if primal <= tol and dual <= tol:
            break
        if steps >= MAX_NEWTON:
            break
        if dual > primal:
            sigma *= SIGMA_UP
        elif primal > 10 * dual:
            sigma /= SIGMA_DOWN
    converged = primal <= tol and dual <= tol
    lam = y - np.einsum("cnd,cd->n", J, u)
    return NewtonSolve(converged, u, lam, sigma, steps, primal, dual)


__all__ = ["NewtonSolve", "solve_squared"]
