"""The two conic programs of the three-layer solver, for Clarabel (docs/math.md §6.2).

Both live over the same blocks of variables: a second-layer unit is h = sum_g J_g w_g with one
w_g in R^d per group g = (first-layer pattern k, sign s), J_g = s D1_k X, w_g in K_k, and its
norm budget sum_g ||w_g||. (The mathematics is in :mod:`dualviz.relu.three_layer`.)

* The pricing program of a leaf (:func:`solve_node`): the best second-layer unit for a dual
  vector l, each sample's sign of h fixed, or entering through a concave l_i relu(h_i) term.
  Its dual variable of h = sum_g J_g w_g is the vector e that bounds the leaf from above
  through the two-layer dual norm F(e).
* The restricted master program (:func:`solve_master`): the network over a few second-layer
  patterns D (units), each with a few groups (columns).

Clarabel solves  min 0.5 x^T P x + q^T x  s.t.  A x + s = b, s in K,  and returns the dual z of
the rows; the KKT condition P x + q + A^T z = 0 gives the multipliers read below.
"""

from __future__ import annotations

from dataclasses import dataclass

import clarabel
import numpy as np
from scipy import sparse

from ..solvers import guarded

# QDLDL on one thread (a job gets one core), tight tolerances: the certificate is limited by
# these solves.
SETTINGS = {"direct_solve_method": "qdldl", "max_threads": 1, "max_iter": 300,
            "tol_gap_abs": 1e-11, "tol_gap_rel": 1e-11, "tol_feas": 1e-11,
            "tol_ktratio": 1e-9}
GOOD = ("Solved", "AlmostSolved")

# leaf sample kinds
IN, OUT, NEG = 0, 1, 2


@dataclass(frozen=True, eq=False)
class Groups:
    """Column data of some groups: J (m x N x d), their cone rows stacked (r x d) and the
    local group each row belongs to (r,)."""

    J: np.ndarray
    rows: np.ndarray
    owner: np.ndarray

    @classmethod
    def of(cls, J: np.ndarray, rows: list[np.ndarray], chosen) -> Groups:
        chosen = list(chosen)
        d = J.shape[2]
        stacked = [rows[g] for g in chosen]
        owner = np.concatenate([np.full(len(r), j) for j, r in enumerate(stacked)] or
                               [np.zeros(0, dtype=int)]).astype(int)
        R = np.concatenate(stacked) if stacked else np.zeros((0, d))
        return cls(J[chosen], R.reshape(-1, d), owner)

    def __len__(self) -> int:
        return self.J.shape[0]


def _settings() -> clarabel.DefaultSettings:
    settings = clarabel.DefaultSettings()
    settings.verbose = False
    for key, value in SETTINGS.items():
        setattr(settings, key, value)
    return settings


def _solve(P, q, A, b, cones):
    solution, error = guarded(
        clarabel.DefaultSolver(P, q, A, b, cones, _settings()).solve)
    if solution is None:
        return f"solver_error: {error}", None
    status = str(solution.status).split(".")[-1]
    if status not in GOOD:
        return status, None
    return status, solution


class _Triplets:
    """Sparse (row, column, value) lists, concatenated once."""

    def __init__(self):
        self.r, self.c, self.v = [], [], []

    def add(self, rows, cols, vals) -> None:
        self.r.append(np.asarray(rows, dtype=int).ravel())
        self.c.append(np.asarray(cols, dtype=int).ravel())
        self.v.append(np.asarray(vals, dtype=float).ravel())

    def matrix(self, shape) -> sparse.csc_matrix:
        return sparse.csc_matrix((np.concatenate(self.v),
                                  (np.concatenate(self.r), np.concatenate(self.c))), shape=shape)


def _unit(T: _Triplets, groups: Groups, eq_row: int, cone_row: int, soc_row: int,
          col_w: int, col_tau: int) -> None:
    """One unit's rows: -sum_g J_g w_g into the N equality rows from eq_row, the cone rows
    -R_g w_g (s >= 0) from cone_row, and the second-order cone rows -(tau_g, w_g)."""
    m, N, d = groups.J.shape
    T.add(eq_row + np.tile(np.repeat(np.arange(N), d), m),
          col_w + np.repeat(np.arange(m) * d, N * d) + np.tile(np.arange(d), m * N),
          -groups.J)
    r = len(groups.rows)
    T.add(cone_row + np.repeat(np.arange(r), d),
          col_w + np.repeat(groups.owner * d, d) + np.tile(np.arange(d), r), -groups.rows)
    T.add(soc_row + np.arange(m) * (d + 1), col_tau + np.arange(m), -np.ones(m))
    T.add(soc_row + (np.arange(m) * (d + 1))[:, None] + 1 + np.arange(d)[None, :],
          col_w + np.arange(m * d).reshape(m, d), -np.ones((m, d)))


def solve_node(groups: Groups, lam: np.ndarray, kinds: np.ndarray) -> tuple[str, dict | None]:
    """max  sum_{IN} lam_i h_i + sum_{NEG} lam_i relu(h_i)
       s.t. h = sum_g J_g w_g, w_g in K_g, sum_g ||w_g|| <= 1,  h_i >= 0 (IN), h_i <= 0 (OUT).

    kinds: (N,) of IN, OUT, NEG (NEG needs lam_i <= 0, so its term is concave; relu(h_i) is
    r_i >= h_i, r_i >= 0). Returns (status, {value, w (m x d), h, e}) with e the multiplier of
    h = sum_g J_g w_g: e_i >= lam_i (IN), e_i <= 0 (OUT), lam_i <= e_i <= 0 (NEG), and F(e)
    (over these groups) is the value, by duality.
    """
    m, N, d = groups.J.shape
    neg = np.flatnonzero(kinds == NEG)
    ins = np.flatnonzero(kinds == IN)
    outs = np.flatnonzero(kinds == OUT)
    o_tau, o_h = m * d, m * d + m
    o_r = o_h + N
    nx = o_r + len(neg)
    T = _Triplets()
    T.add(np.arange(N), o_h + np.arange(N), np.ones(N))  # h - sum_g J_g w_g = 0
    cone_row = N
    budget_row = cone_row + len(groups.rows)
    sign_row = budget_row + 1
    soc_row = sign_row + len(ins) + len(outs) + 2 * len(neg)
    _unit(T, groups, 0, cone_row, soc_row, 0, o_tau)
    T.add(np.full(m, budget_row), o_tau + np.arange(m), np.ones(m))
    T.add(sign_row + np.arange(len(ins)), o_h + ins, -np.ones(len(ins)))
    row = sign_row + len(ins)
    T.add(row + np.arange(len(outs)), o_h + outs, np.ones(len(outs)))
    row += len(outs)
    j = np.arange(len(neg))
    T.add(row + 2 * j, o_h + neg, np.ones(len(neg)))  # h_i - r_i <= 0
    T.add(row + 2 * j, o_r + j, -np.ones(len(neg)))
    T.add(row + 2 * j + 1, o_r + j, -np.ones(len(neg)))  # -r_i <= 0
    n_rows = soc_row + m * (d + 1)
    A = T.matrix((n_rows, nx))
    b = np.zeros(n_rows)
    b[budget_row] = 1.0
    q = np.zeros(nx)
    q[o_h + ins] = -lam[ins]
    q[o_r:] = -lam[neg]
    cones = [clarabel.ZeroConeT(N), clarabel.NonnegativeConeT(soc_row - N)]
    cones += [clarabel.SecondOrderConeT(d + 1)] * m
    status, solution = _solve(sparse.csc_matrix((nx, nx)), q, A, b, cones)
    if solution is None:
        return status, None
    x = np.asarray(solution.x)
    z = np.asarray(solution.z)
    return status, {"value": -float(q @ x), "w": x[:o_tau].reshape(m, d),
                    "h": x[o_h:o_h + N], "e": z[:N].copy()}


@dataclass(frozen=True, eq=False)
class MasterBlock:
    """One second-layer unit of the restricted master: pattern D (N,) bool, outer sign
    sigma = +-1, and its groups."""

    D: np.ndarray
    sigma: int
    groups: Groups


def solve_master(blocks: list[MasterBlock], y: np.ndarray, weight: float, objective: str,
                 penalty: float | None = 0.0) -> tuple[str, dict | None]:
    """The restricted master program over the blocks' units:

    squared:        min 0.5 ||y - sum_b sigma_b D_b h_b||^2 + weight sum ||w||
    interpolation:  min weight sum ||w|| + penalty ||y - sum_b sigma_b D_b h_b||_1
                    (penalty None: min weight sum ||w|| s.t. sum_b sigma_b D_b h_b = y)
    s.t. per block h_b = sum_g J_g w_g, (2 D_b - I) h_b >= 0, w_g in K_g.

    Returns (status, {value, W: list of (m_b x d), lam, E: list of block multipliers}): lam is
    the multiplier of the fit (lam = y - prediction for the squared loss), E[b] the multiplier
    of h_b = sum_g J_g w_g, which is sigma_b D_b lam + (2 D_b - I) mu_b with mu_b >= 0.
    """
    N = y.shape[0]
    d = blocks[0].groups.J.shape[2]
    sizes = [len(b.groups) for b in blocks]
    n_tau = sum(sizes)
    o_tau = n_tau * d
    o_h = o_tau + n_tau
    o_rho = o_h + N * len(blocks)
    interp = objective == "interpolation"
    exact_fit = interp and penalty is None
    interp = interp and not exact_fit  # the penalty form below
    nx = o_rho + (0 if exact_fit else 2 * N if interp else N)
    T = _Triplets()
    # fit rows: rho (= rho+ - rho-) + sum_b sigma_b D_b h_b = y
    if not exact_fit:
        T.add(np.arange(N), o_rho + np.arange(N), np.ones(N))
    if interp:
        T.add(np.arange(N), o_rho + N + np.arange(N), -np.ones(N))
    n_zero = N * (1 + len(blocks))
    n_cone = sum(len(b.groups.rows) for b in blocks)
    cone_row = n_zero
    layer2_row = n_zero + n_cone
    sign_row = layer2_row + N * len(blocks)
    soc_row = sign_row + (2 * N if interp else 0)
    col_w, col_tau = 0, o_tau
    for j, blk in enumerate(blocks):
        col_h = o_h + j * N
        D = blk.D.astype(float)
        live = np.flatnonzero(D)
        T.add(live, col_h + live, blk.sigma * D[live])
        T.add(N * (1 + j) + np.arange(N), col_h + np.arange(N), np.ones(N))
        _unit(T, blk.groups, N * (1 + j), cone_row, soc_row, col_w, col_tau)
        T.add(layer2_row + j * N + np.arange(N), col_h + np.arange(N), -(2.0 * D - 1.0))
        cone_row += len(blk.groups.rows)
        col_w += sizes[j] * d
        col_tau += sizes[j]
        soc_row += sizes[j] * (d + 1)
    if interp:
        T.add(sign_row + np.arange(2 * N), o_rho + np.arange(2 * N), -np.ones(2 * N))
    n_rows = soc_row
    A = T.matrix((n_rows, nx))
    b = np.zeros(n_rows)
    b[:N] = y
    q = np.zeros(nx)
    q[o_tau:o_h] = weight
    if interp or exact_fit:
        q[o_rho:] = 0.0 if exact_fit else penalty
        Pm = sparse.csc_matrix((nx, nx))
    else:
        Pm = sparse.csc_matrix((np.ones(N), (o_rho + np.arange(N), o_rho + np.arange(N))),
                               shape=(nx, nx))
    n_nonneg = n_cone + N * len(blocks) + (2 * N if interp else 0)
    cones = [clarabel.ZeroConeT(n_zero), clarabel.NonnegativeConeT(n_nonneg)]
    cones += [clarabel.SecondOrderConeT(d + 1)] * n_tau
    status, solution = _solve(Pm, q, A, b, cones)
    if solution is None:
        return status, None
    x = np.asarray(solution.x)
    z = np.asarray(solution.z)
    W, E, start = [], [], 0
    for j, m in enumerate(sizes):
        W.append(x[start * d:(start + m) * d].reshape(m, d))
        E.append(z[N * (1 + j):N * (2 + j)].copy())
        start += m
    return status, {"value": float(solution.obj_val), "W": W, "lam": -z[:N].copy(), "E": E}
