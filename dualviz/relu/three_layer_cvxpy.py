"""The three-layer convex program written out in CVXPY over every second-layer pattern.

The reference the certified solver (:mod:`dualviz.relu.three_layer`) is checked against and
benchmarked with (docs/math.md §6.2): one block of variables z_{D, k, s} in R^d per
second-layer pattern D (all 2^N - 1 non-zero 0/1 diagonals, or the ones given), first-layer
pattern k and sign s, for each outer sign, and the program

    min  0.5 || sum_D D Xt (q_D - r_D) - y ||^2 + (beta / t) sum_D (||q_D||_{2,1} + ||r_D||_{2,1})
    s.t. s (2 D1_k - I) X z_{k,s} >= 0,  (2 D - I) Xt z >= 0  for z in {q_D, r_D},

Xt z = sum_{k,s} D1_k X z_{k,s}; interpolation: min the penalty s.t. the prediction is y.
Solved by CVXPY with Clarabel at the tolerances of dualviz.solvers. Its size is
2 * (2^N - 1) * 2P vectors of d numbers: for tiny N only.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import cvxpy as cp
import numpy as np

from ..solvers import solve_program

MAX_CVXPY_N = 10  # 2^N - 1 second-layer patterns: beyond this the program is too large


@dataclass(frozen=True, eq=False)
class CvxpyThreeLayer:
    value: float | None
    status: str
    seconds: float  # the whole call: building the program and Clarabel
    variables: int


def all_second_layer_patterns(n: int) -> np.ndarray:
    """(2^n - 1) x n bool: every non-zero 0/1 diagonal."""
    if n > MAX_CVXPY_N:
        raise ValueError(f"all second-layer patterns are enumerated for N <= {MAX_CVXPY_N}, "
                         f"got N = {n}")
    codes = np.arange(1, 1 << n)
    return ((codes[:, None] >> np.arange(n)) & 1).astype(bool)


def three_layer_cvxpy(X, y, beta: float, t: float, masks, *, objective: str = "squared",
                      second=None) -> CvxpyThreeLayer:
    """The program above over first-layer patterns `masks` (P x N) and second-layer patterns
    `second` (default: all of them)."""
    started = time.perf_counter()
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float).ravel()
    masks = np.asarray(masks, dtype=bool)
    n, d = X.shape
    second = all_second_layer_patterns(n) if second is None else np.asarray(second, bool)
    signs = (2.0 * masks - 1.0)
    # J: G x N x d with group g = 2k + (s < 0): s D1_k X (the variable is then in K_k)
    J = masks[:, :, None] * X[None]
    J = np.stack([J, -J], axis=1).reshape(-1, n, d)
    G = J.shape[0]
    Jmat = J.transpose(1, 0, 2).reshape(n, G * d)  # h = Jmat @ vec(w)
    cone = np.zeros((2 * masks.shape[0] * n, G * d))  # rows of (2 D1_k - I) X w_g >= 0
    for g in range(G):
        k = g // 2
        cone[g * n:(g + 1) * n, g * d:(g + 1) * d] = signs[k][:, None] * X
    prediction = 0
    penalty = 0
    constraints = []
    variables = 0
    for D in second:
        Dm = D.astype(float)
        for sigma in (1.0, -1.0):
            w = cp.Variable((G, d))
            variables += G * d
            h = Jmat @ cp.vec(w, order="C")
            constraints += [cone @ cp.vec(w, order="C") >= 0,
                            cp.multiply(2 * Dm - 1, h) >= 0]
            prediction = prediction + sigma * cp.multiply(Dm, h)
            penalty = penalty + cp.sum(cp.norm(w, 2, axis=1))
    if objective == "interpolation":
        problem = cp.Problem(cp.Minimize(beta / t * penalty), [*constraints, prediction == y])
    else:
        problem = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(prediction - y)
                                         + beta / t * penalty), constraints)
    value, status = solve_program(problem)
    return CvxpyThreeLayer(value, status, time.perf_counter() - started, variables)
